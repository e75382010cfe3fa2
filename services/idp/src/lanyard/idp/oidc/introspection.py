"""Token introspection (RFC 7662), for authenticated (confidential) clients only.

The hot path: for an access token, signature and claims locally (remembered per token for the
key cache's few seconds), then one Redis round trip for the grant state and, for device-session
tokens, the session view's state that `DeviceSessions.is_active` decides on; cost does not
depend on how many sessions are live. Anything that is not a live token of this enterprise —
unknown, expired, revoked, another enterprise's, a closed device session's, or a stale session
view (fail closed) — is `{"active": false}`. Access tokens may be introspected by any
authenticated client of the enterprise (resource servers are clients too); refresh tokens only
by the client they were issued to.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from lanyard.idp.devices.ports import TemporarilyUnavailable
from lanyard.idp.oidc.bearer import check_access_token
from lanyard.idp.oidc.errors import OAuthError, invalid_client, invalid_request
from lanyard.idp.oidc.http import json_error, json_ok
from lanyard.idp.oidc.service import OidcProvider
from lanyard.runtime.tokens import InvalidToken

INACTIVE = {"active": False}


async def _refresh(provider: OidcProvider, eid: str, token: str, client_id: str) -> dict[str, Any]:
    found = await provider.store.read_refresh(eid, token) if len(token) <= 128 else None
    if found is None:
        return INACTIVE
    rt, grant = found
    if rt.get("state") != "current" or grant.state != "active" or grant.client_id != client_id:
        return INACTIVE
    if grant.dsid and not await provider.ports.device_sessions.is_active(eid, grant.dsid):
        return INACTIVE
    return {
        "active": True,
        "token_type": "refresh_token",
        "client_id": grant.client_id,
        "sub": grant.user_id,
        "scope": " ".join(grant.scope),
        "iss": provider.issuer(eid),
        "sid": grant.sid,
    }


async def introspect(provider: OidcProvider, request: Request, eid: str) -> JSONResponse:
    """POST /introspect."""
    await provider.enterprise(eid)
    try:
        p, ac = await provider.client_form(eid, request)
        if ac.method == "none":
            raise invalid_client("introspection requires client authentication")
        token = p.get("token")
        if not token:
            raise invalid_request("token is required")
    except OAuthError as err:
        return json_error(err)
    try:
        if token.count(".") == 2:
            claims, _ = await check_access_token(provider, eid, token)
            body = {
                "active": True,
                "token_type": "Bearer",
                **{
                    k: claims[k]
                    for k in ("scope", "client_id", "sub", "aud", "iss", "exp", "iat", "jti", "sid", "auth_time")
                    if k in claims
                },
            }
            return json_ok(body)
        return json_ok(await _refresh(provider, eid, token, ac.client.client_id))
    except (InvalidToken, TemporarilyUnavailable):
        return json_ok(INACTIVE)
