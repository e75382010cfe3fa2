"""The token endpoint (RFC 6749 §3.2, §5): POST only, form-encoded, parameters once each, client
authentication, dispatch to a grant, JSON answers with `Cache-Control: no-store` always.

A stale device-session view makes the refresh grant answer 503 with
`{"error": "temporarily_unavailable"}`: RFC 6749 §5.2 has no such code, but failing closed with a
retryable status is what DESIGN §4 asks, and clients treat 503 as "try again".
"""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse

from lanyard.idp.oidc import grants
from lanyard.idp.oidc.errors import OAuthError, invalid_request, unsupported_grant_type
from lanyard.idp.oidc.http import json_error, json_ok
from lanyard.idp.oidc.service import OidcProvider


async def token(provider: OidcProvider, request: Request, eid: str) -> JSONResponse:
    """POST /token."""
    await provider.enterprise(eid)
    try:
        p, ac = await provider.client_form(eid, request)
        grant_type = p.get("grant_type")
        if grant_type == "authorization_code":
            body = await grants.authorization_code(provider, eid, ac, p)
        elif grant_type == "refresh_token":
            body = await grants.refresh_token(provider, eid, ac, p)
        elif grant_type is None:
            raise invalid_request("grant_type is required")
        else:
            raise unsupported_grant_type("supported: authorization_code, refresh_token")
    except OAuthError as err:
        return json_error(err)
    return json_ok(body)
