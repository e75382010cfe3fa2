"""The directory part of the IdP: enterprises, users and groups, credentials (passwords, badges,
TOTP), app profiles, signing keys, org settings, the login page, the Locker authn API, the admin
API, the Web App Login Configuration, the vendor's services realm and the MDM profile.

Modules: `domain` (records and pure rules), `ports` (storage it needs; read ports it offers the
oidc and devices parts), `service` (use cases), `handlers` (policy-config consumer), `api`,
`login`, `webapp`, `services_realm`, `mdm` (HTTP). Its Redis adapters are in `lanyard.idp.adapters`.
"""
