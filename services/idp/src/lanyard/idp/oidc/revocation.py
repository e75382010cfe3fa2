"""Token revocation (RFC 7009).

Revoking either kind of token revokes its grant: the refresh-token family and every access token
issued from the same authorization (RFC 7009 §2.1 lets the server do so for access tokens and
asks it for refresh tokens). Unknown or already-invalid tokens get 200; another client's token
is refused with `unauthorized_client`; token type hints other than access_token/refresh_token
get `unsupported_token_type`.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse

from lanyard.idp.oidc.errors import OAuthError, invalid_request, unauthorized_client, unsupported_token_type
from lanyard.idp.oidc.grants import revoke_grant
from lanyard.idp.oidc.http import json_error
from lanyard.idp.oidc.jwt import ACCESS_TOKEN_TYP
from lanyard.idp.oidc.service import OidcProvider
from lanyard.idp.web import NO_STORE
from lanyard.runtime.tokens import InvalidToken


async def revoke(provider: OidcProvider, request: Request, eid: str) -> JSONResponse:
    """POST /revoke."""
    await provider.enterprise(eid)
    try:
        p, ac = await provider.client_form(eid, request)
        token, hint = p.get("token"), p.get("token_type_hint")
        if not token:
            raise invalid_request("token is required")
        if hint not in (None, "access_token", "refresh_token"):
            raise unsupported_token_type("only access and refresh tokens can be revoked")
        client_id = ac.client.client_id
        gid: str | None = None
        if token.count(".") == 2:
            try:
                claims = await provider.keys.verify(
                    eid, token, issuer=provider.issuer(eid), typs=(ACCESS_TOKEN_TYP,), check_exp=False
                )
            except InvalidToken:
                claims = None
            if claims is not None:
                if claims.get("client_id") != client_id:
                    raise unauthorized_client("the token was issued to another client")
                gid = claims.get("gid") if isinstance(claims.get("gid"), str) else None
        elif len(token) <= 128:
            found = await provider.store.read_refresh(eid, token)
            if found is not None:
                if found[1].client_id != client_id:
                    raise unauthorized_client("the token was issued to another client")
                gid = found[1].gid
        if gid is not None:
            await revoke_grant(provider, eid, gid, "revocation_endpoint")
    except OAuthError as err:
        return json_error(err)
    return JSONResponse({}, headers=NO_STORE)
