"""The oidc part of the IdP: the OpenID Provider of every enterprise, one module per spec concern.

- `domain`: claims release and the grant record    - `ports`: what it consumes (`Ports`, `GrantStore`)
- `service`: `OidcProvider`, the shared steps      - `api`: the routes under `/e/{enterprise_id}`
- endpoints: `discovery`, `authorize`, `token` / `grants`, `userinfo`, `introspection`,
  `revocation`, `logout`                           - `revoker`: `SessionRevoker` for the devices part
- `jwt`, `bearer`, `errors`, `http`: token and protocol plumbing

`lanyard.idp.app.create_app` builds it over the directory's and devices' ports.
"""
