"""The devices part of the IdP: the read model of device sessions and entitlements, SSO by the
Locker SSO extension, one-hop revocation, fail-closed freshness and back-channel logout delivery.

Modules: `domain` (pure transition and authorization rules), `ports` (what it offers and needs),
`service` (the DeviceSessions port), `handlers` (the consumer of lanyard.device-sessions.v1 and
lanyard.entitlements.v1), `backchannel` (the logout-token worker). Its Redis adapters (read
model, freshness, logout queue) are in `lanyard.idp.adapters`; `lanyard.idp.app` builds it.
"""
