"""The HTTP surface every part of the IdP shares: answer headers and the endpoint list.

`PAGE_HEADERS` go on every HTML page (login, authorization, logout): no framing, no caching, no
referrer, no sniffing, and a CSP that allows inline styles only and forms posting only to us
(`form-action 'self'`: a page that takes a password must never post it elsewhere).
"""

from __future__ import annotations

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
"""Token, assertion and credential answers (RFC 6749 §5.1)."""

PAGE_HEADERS = {
    **NO_STORE,
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}

ENDPOINTS: tuple[tuple[str, str], ...] = (
    ("authorization_endpoint", "/authorize"),
    ("token_endpoint", "/token"),
    ("userinfo_endpoint", "/userinfo"),
    ("jwks_uri", "/jwks"),
    ("end_session_endpoint", "/logout"),
    ("revocation_endpoint", "/revoke"),
    ("introspection_endpoint", "/introspect"),
)
"""Every OIDC endpoint of an enterprise's issuer, by its discovery-metadata name."""


def endpoints(issuer: str) -> dict[str, str]:
    """The absolute URL of each endpoint of `issuer` (discovery and "View IdP metadata")."""
    return {name: issuer + path for name, path in ENDPOINTS}
