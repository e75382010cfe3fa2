"""The UserInfo endpoint (OIDC Core §5.3, RFC 6750 §2–3), GET and POST.

The token comes from the `Authorization: Bearer` header or, for POST, a form-body
`access_token`; never from the URI query (RFC 9700 §4.3.2). Exactly one place, or 400. Without
credentials: 401 with a bare `WWW-Authenticate: Bearer` (no error code, RFC 6750 §3.1).
"""

from __future__ import annotations

import json

from fastapi import Request
from fastapi.responses import JSONResponse

from lanyard.idp.devices.ports import TemporarilyUnavailable
from lanyard.idp.oidc.bearer import check_access_token
from lanyard.idp.oidc.domain import released_claims
from lanyard.idp.oidc.errors import (
    OAuthError,
    insufficient_scope,
    invalid_request,
    invalid_token,
    temporarily_unavailable,
)
from lanyard.idp.oidc.http import NO_STORE, form_params, is_form, json_error, json_ok
from lanyard.idp.oidc.service import OidcProvider
from lanyard.runtime.tokens import InvalidToken


def _challenge(err: OAuthError) -> dict[str, str]:
    return {"WWW-Authenticate": f'Bearer error="{err.error}", error_description="{err.description}"'}


async def userinfo(provider: OidcProvider, request: Request, eid: str) -> JSONResponse:
    """GET/POST /userinfo."""
    await provider.enterprise(eid)
    places: list[str] = []
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            err = invalid_request("use the Bearer scheme")
            return json_error(err, _challenge(err))
        places.append(value.strip())
    if request.method == "POST" and is_form(request):
        try:
            p = await form_params(request)
        except OAuthError:
            p = None
        if p is None or "access_token" in p.repeated:
            err = invalid_request("malformed body")
            return json_error(err, _challenge(err))
        if p.get("access_token"):
            places.append(p.get("access_token") or "")
    if "access_token" in request.query_params:
        err = invalid_request("access tokens in the URI are not accepted")
        return json_error(err, _challenge(err))
    if not places:
        return JSONResponse({"error": "unauthorized"}, 401, headers={**NO_STORE, "WWW-Authenticate": "Bearer"})
    if len(places) > 1:
        err = invalid_request("send the access token in one place only")
        return json_error(err, _challenge(err))
    try:
        claims, (requested,) = await check_access_token(provider, eid, places[0], "claims")
    except InvalidToken as exc:
        err = invalid_token(exc.reason)
        return json_error(err, _challenge(err))
    except TemporarilyUnavailable:
        return json_error(temporarily_unavailable("device sessions cannot be verified right now"))
    scope = tuple(str(claims.get("scope", "")).split())
    if "openid" not in scope:
        err = insufficient_scope("the openid scope is required")
        return json_error(err, _challenge(err))
    user = await provider.ports.users.get(eid, claims["sub"])
    client = await provider.client(eid, claims.get("client_id"))
    if user is None or user.status != "active" or client is None:
        err = invalid_token("the user or application is no longer active")
        return json_error(err, _challenge(err))
    asked = json.loads(requested or "{}").get("userinfo") or {}
    return json_ok(released_claims(user, client, scope, asked if isinstance(asked, dict) else {}))
