"""Validating an access token we issued, as UserInfo and introspection do.

Signature, `typ` (`at+jwt` only: an ID, logout or refresh token presented as an access token
fails here, RFC 9068 §2.1 / RFC 8725 §3.11), issuer, audience and expiry come from the JWT; then
one Redis read of the grant's state (revoked by the revocation endpoint, a code replay, refresh
reuse, logout or check-in) and, for device-session tokens, of the session view's state in the
same round trip, which `DeviceSessions.is_active` decides on (a CLOSED session's tokens are dead
even before the revocation reached us). Constant cost per check.
"""

from __future__ import annotations

from typing import Any

from lanyard.idp.devices.ports import ACTIVITY_FIELDS
from lanyard.idp.oidc.jwt import ACCESS_TOKEN_TYP
from lanyard.idp.oidc.service import OidcProvider
from lanyard.runtime.tokens import InvalidToken


async def check_access_token(
    provider: OidcProvider, eid: str, token: str, *fields: str
) -> tuple[dict[str, Any], list[str | None]]:
    """(claims, the requested grant `fields`) of a live access token; raises InvalidToken, or
    TemporarilyUnavailable when the device-session view may be stale."""
    iss = provider.issuer(eid)
    claims = await provider.keys.verify(
        eid, token, issuer=iss, typs=(ACCESS_TOKEN_TYP,), audience=provider.config.audience(iss), leeway_s=0
    )
    gid = claims.get("gid")
    if not isinstance(gid, str):
        raise InvalidToken("not one of our access tokens")
    dsid = claims.get("dsid")
    if isinstance(dsid, str):
        # The grant and the device session's view in one round trip (same Redis, same hash tag).
        values, view = await provider.store.grant_fields_and_view(eid, gid, ("state", *fields), dsid, ACTIVITY_FIELDS)
    else:
        values, view = await provider.store.grant_fields(eid, gid, "state", *fields), None
    if values[0] != "active":
        raise InvalidToken("revoked")  # a revoked grant is the answer even when the session view is stale
    if isinstance(dsid, str) and not await provider.ports.device_sessions.is_active(eid, dsid, view):
        raise InvalidToken("device session ended")
    return claims, values[1:]
