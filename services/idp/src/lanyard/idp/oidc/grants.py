"""The token endpoint's grants: authorization_code (RFC 6749 §4.1.3, RFC 7636 §4.6, OIDC Core
§3.1.3) and refresh_token (RFC 6749 §6, RFC 9700 §4.14.2).

Codes are consumed by one Lua script (GET+DEL+remember, see `adapters/redis_oidc.py`): of N concurrent
redemptions exactly one wins, and every other one — and any later one — gets `invalid_grant`
and revokes the grant (RFC 6749 §4.1.2: everything issued from the code). Refresh tokens rotate
on every use inside one script too; presenting a rotated token revokes the whole family (the
grant), including its access tokens, because every check reads the grant's state.

Checks that must not have side effects (client binding, scope, device-session state) run
before the rotation, so a wrong client or a momentarily unavailable session view never burns a
valid refresh token.

A refresh costs two Redis round trips: one script reads the token, its grant and the device
session's view; the rotation script re-checks token and grant atomically and rotates. The
device-session rule stays in Python (`DeviceSessions.may_refresh`) between the two, which is why
they are not one script.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import time
import uuid
from typing import Any

from lanyard.contracts.events import (
    TokensIssued,
    TokensIssuedPayload,
    TokensRefreshed,
)
from lanyard.idp.devices.ports import SessionLocked, TemporarilyUnavailable
from lanyard.idp.directory.ports import ADMIN_SCOPE, Client, admin_roles
from lanyard.idp.oidc.domain import Grant, released_claims
from lanyard.idp.oidc.errors import (
    invalid_grant,
    invalid_request,
    invalid_scope,
    temporarily_unavailable,
)
from lanyard.idp.oidc.http import Params
from lanyard.idp.oidc.jwt import ACCESS_TOKEN_TYP, ID_TOKEN_TYP, at_hash
from lanyard.idp.oidc.service import AuthenticatedClient, OidcProvider, log
from lanyard.runtime.tokens import ADMIN_AUDIENCE

_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")


def s256(verifier: str) -> str:
    """RFC 7636 §4.2: BASE64URL(SHA256(ASCII(code_verifier)))."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()


async def revoke_grant(provider: OidcProvider, eid: str, gid: str, reason: str) -> Grant | None:
    """Revoke one grant and publish oidc.tokens_revoked.v1 when it was not revoked already."""
    out = await provider.store.revoke_grant(eid, gid)
    if out is None:
        return None
    prev, grant = out
    if prev != "revoked":
        await provider.ports.publisher.publish(provider.tokens_revoked(eid, grant, reason))
        log.info("tokens_revoked", enterprise_id=eid, gid=gid, reason=reason)
    return grant


async def _access_token(provider: OidcProvider, eid: str, grant: Grant, scope: tuple[str, ...]) -> tuple[str, int]:
    cfg = provider.config
    iss = provider.issuer(eid)
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": iss,
        "sub": grant.user_id,
        "aud": cfg.audience(iss),
        "client_id": grant.client_id,
        "exp": now + cfg.access_token_ttl_s,
        "iat": now,
        "jti": uuid.uuid4().hex,
        "scope": " ".join(scope),
        "sid": grant.sid,
        "gid": grant.gid,
        "auth_time": grant.auth_time,
    }
    if grant.dsid:
        claims["dsid"] = grant.dsid
    if ADMIN_SCOPE in scope:
        # An admin token for the console: the roles are read now, on every issue and refresh, so
        # a demoted or disabled admin's console loses its rights within one access-token lifetime.
        roles = admin_roles(await provider.ports.users.get(eid, grant.user_id))
        if not roles:
            raise invalid_grant("the user holds no admin role")
        claims["aud"] = [claims["aud"], ADMIN_AUDIENCE]
        claims["roles"] = roles
    token = await provider.keys.sign(eid, claims, alg=cfg.access_token_alg, typ=ACCESS_TOKEN_TYP)
    return token, cfg.access_token_ttl_s


async def _id_token(provider: OidcProvider, eid: str, grant: Grant, client: Client, access_token: str) -> str:
    """The ID token for `client` (the one that authenticated at the token endpoint), signed with
    the alg it registered (`id_token_signed_response_alg`) or the IdP's default; the signer picks
    the enterprise's active key of that alg and names it in `kid`."""
    cfg = provider.config
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": provider.issuer(eid),
        "sub": grant.user_id,
        "aud": grant.client_id,
        "azp": grant.client_id,
        "exp": now + cfg.id_token_ttl_s,
        "iat": now,
        "auth_time": grant.auth_time,
        "amr": list(grant.amr),
        "acr": grant.acr,
        "sid": grant.sid,
        "at_hash": at_hash(access_token),
    }
    if grant.nonce:
        claims["nonce"] = grant.nonce
    requested = grant.claims.get("id_token") if isinstance(grant.claims.get("id_token"), dict) else {}
    if requested:
        user = await provider.ports.users.get(eid, grant.user_id)
        if user is not None:
            for name, value in released_claims(user, client, (), requested).items():
                claims.setdefault(name, value)
    alg = client.id_token_signed_response_alg or cfg.id_token_alg
    return await provider.keys.sign(eid, claims, alg=alg, typ=ID_TOKEN_TYP)


async def _active_user(provider: OidcProvider, eid: str, user_id: str, status: str | None = None) -> None:
    """A disabled, locked or deleted user redeems and refreshes nothing. `status` is the user's as the store
    read it with the code ('' for no such user), or None: then the directory is asked."""
    if status is None:
        user = await provider.ports.users.get(eid, user_id)
        status = user.status if user is not None else ""
    if status != "active":
        raise invalid_grant("the user is not active")


async def authorization_code(provider: OidcProvider, eid: str, ac: AuthenticatedClient, p: Params) -> dict[str, Any]:
    """Redeem a code: one winner, replay revokes, every binding checked."""
    code, redirect_uri, verifier = p.get("code"), p.get("redirect_uri"), p.get("code_verifier")
    if not code:
        raise invalid_request("code is required")
    if not redirect_uri:
        raise invalid_request("redirect_uri is required")
    if verifier is not None and not _VERIFIER.match(verifier):
        raise invalid_grant("malformed code_verifier")
    if len(code) > 128:
        raise invalid_grant("unknown code")
    won, record, grant, user_status = await provider.store.consume_code(eid, code)
    if not won:
        if record is not None:
            await revoke_grant(provider, eid, record["gid"], "code_replay")
            log.warning("code_replay", enterprise_id=eid, gid=record["gid"], client_id=ac.client.client_id)
        raise invalid_grant("the code is invalid, expired or already used")
    assert record is not None
    if record["client_id"] != ac.client.client_id:
        raise invalid_grant("the code was issued to another client")
    if record["redirect_uri"] != redirect_uri:
        raise invalid_grant("redirect_uri does not match the authorization request")
    challenge = record.get("code_challenge")
    if challenge:
        if verifier is None or not secrets.compare_digest(s256(verifier), challenge):
            raise invalid_grant("code_verifier does not match the code challenge")
    elif verifier is not None:
        raise invalid_grant("code_verifier sent but no code challenge was used (PKCE downgrade)")
    if grant is None or grant.state != "issued":  # revoked (or expired) before its redemption
        raise invalid_grant("the authorization was revoked")
    await _active_user(provider, eid, grant.user_id, user_status)
    access, expires_in = await _access_token(provider, eid, grant, grant.scope)
    id_token = await _id_token(provider, eid, grant, ac.client, access)
    refresh = secrets.token_urlsafe(32)
    if not await provider.store.activate_grant(eid, grant, refresh, provider.config.refresh_token_ttl_s):
        # A concurrent replay (or a check-in) revoked the grant after we consumed the code. We
        # still won the redemption, so we answer with what we minted; every check reads the
        # grant state, so these tokens are already dead (RFC 6749 §4.1.2's revocation wins).
        log.warning("grant_revoked_during_redemption", enterprise_id=eid, gid=grant.gid)
    await _announce(provider, eid, grant, TokensIssued, "authorization_code")
    return {
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": expires_in,
        "refresh_token": refresh,
        "id_token": id_token,
        "scope": " ".join(grant.scope),
    }


async def refresh_token(provider: OidcProvider, eid: str, ac: AuthenticatedClient, p: Params) -> dict[str, Any]:
    """Rotate a refresh token; reuse of a rotated one revokes the family."""
    token = p.get("refresh_token")
    if not token:
        raise invalid_request("refresh_token is required")
    if len(token) > 128:
        raise invalid_grant("unknown refresh token")
    # The token, its grant and its device session's view in one round trip; the rotation below
    # is the second (it re-checks the token and grant state atomically).
    found = await provider.store.read_refresh_and_view(eid, token)
    if found is None:
        raise invalid_grant("unknown or expired refresh token")
    rt, grant, view, user_status = found
    if rt.get("client_id") != ac.client.client_id or grant.client_id != ac.client.client_id:
        raise invalid_grant("the refresh token was issued to another client")
    if rt.get("state") not in ("current", "rotated"):  # superseded: its retry was answered again
        await revoke_grant(provider, eid, grant.gid, "refresh_reuse")
        log.warning("refresh_reuse", enterprise_id=eid, gid=grant.gid, client_id=grant.client_id)
        raise invalid_grant("refresh token reuse: the token family is revoked")
    if grant.state != "active":
        raise invalid_grant("the refresh token was revoked")
    # A disabled, locked or deleted user refreshes nothing (policy ends a device session's grants
    # for a disabled user; a browser sign-in's would otherwise live as long as its refresh token).
    await _active_user(provider, eid, grant.user_id, user_status)
    scope = grant.scope
    if p.get("scope") is not None:
        asked = tuple(dict.fromkeys((p.get("scope") or "").split()))
        if not set(asked) <= set(grant.scope):
            raise invalid_scope("scope wider than the original grant")
        scope = asked
    if grant.dsid:
        try:
            allowed = await provider.ports.device_sessions.may_refresh(eid, grant.dsid, grant.client_id, view)
        except TemporarilyUnavailable:
            raise temporarily_unavailable("device sessions cannot be verified right now; retry") from None
        except SessionLocked:
            # A LOCKED session mints nothing (DESIGN §2), but its refresh token is not dead: a face
            # verification unlocks it. invalid_grant (RFC 6749 §5.2: "invalid, expired, revoked")
            # would be false and makes apps (AppAuth among them) drop their tokens — a sign-out
            # until the next SSO; 503 temporarily_unavailable is what they keep tokens and retry on.
            raise temporarily_unavailable("the device session is locked until a face verification; retry") from None
        if not allowed:
            raise invalid_grant("the device session does not allow refresh")
    new = secrets.token_urlsafe(32)
    # A rotated token is reuse (RFC 9700 §4.14.2) unless it is a retry: the rotation is stored
    # before the answer (which waits for the broker), so a timed-out or 503 answer leaves the app
    # holding only the old token. Refusing that retry with invalid_grant signed a clinician out
    # mid-shift (the soak: a broker restart). The store decides atomically (adapters/redis_oidc).
    config = provider.config
    outcome = await provider.store.rotate_refresh(
        eid, token, new, grant, config.refresh_token_ttl_s, config.refresh_retry_grace_s
    )
    if outcome == "reuse":
        await revoke_grant(provider, eid, grant.gid, "refresh_reuse")
        raise invalid_grant("refresh token reuse: the token family is revoked")
    if outcome != "ok":
        raise invalid_grant("the refresh token was revoked")
    access, expires_in = await _access_token(provider, eid, grant, scope)
    body: dict[str, Any] = {
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": expires_in,
        "refresh_token": new,
        "scope": " ".join(scope),
    }
    if provider.config.id_token_on_refresh:
        body["id_token"] = await _id_token(provider, eid, grant, ac.client, access)
    await _announce(provider, eid, grant, TokensRefreshed, "refresh_token")
    return body


async def _announce(
    provider: OidcProvider, eid: str, grant: Grant, kind: type[TokensIssued] | type[TokensRefreshed], grant_type: str
) -> None:
    """oidc.tokens_issued / tokens_refreshed: acknowledged before the token response goes out
    (and SSO activity for the session service's inactivity timer)."""
    await provider.ports.publisher.publish(
        provider.event(
            kind,
            eid,
            TokensIssuedPayload(
                client_id=grant.client_id,
                user_id=grant.user_id,
                sid=grant.sid,
                grant_id=grant.gid,
                grant_type=grant_type,
                device_session_id=grant.dsid,
            ),
            user_id=grant.user_id,
            client_id=grant.client_id,
            device_session_id=grant.dsid,
        )
    )
