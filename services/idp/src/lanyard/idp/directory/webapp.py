"""Web App Login Configuration (seed: "In your RP's administrator console, copy the RP client
credentials and Redirect URIs. In the Imprivata Admin Console, go to the gear icon > Web App
Login Configuration. Enter the RP client credentials and Redirect URIs."), under
`/e/{enterprise_id}/admin/web-app-logins`, superadmin only.

Some RPs generate their own client id and secret. Registering one makes a confidential SSO
application profile with the RP's client id; the secret is entered once, kept only as a hash and
never shown again (not in the answer, not in an event, not in a log). Redirect URIs, claims and
the rest follow exactly the rules of a generated profile (the same body model and checks). A
client id already registered in the enterprise is refused with 409; a weak secret with 400 and
the reason. "View IdP metadata" for it is `GET /admin/app-profiles/{client_id}/metadata`, and the
answer here carries it too. Both calls honour an Idempotency-Key like the rest of the admin API
(the kept answer holds no secret).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import Field

from lanyard.idp.directory.api import NO_STORE, ClaimMappingIn, ProfileIn, Side, Strict, Superadmin, once, profile_out
from lanyard.idp.directory.domain import RP_CLIENT_ID_PATTERN, AppProfile, ClaimMapping, Client
from lanyard.idp.directory.profiles import metadata
from lanyard.runtime.bodies import BoundedRoute

Secret = Annotated[str, Field(min_length=1, max_length=1024)]


class WebAppLoginIn(ProfileIn):
    """A profile as `ProfileIn`, plus the RP's credentials. It is always a confidential client."""

    client_id: str = Field(min_length=1, max_length=256, description=f"the RP's, matching {RP_CLIENT_ID_PATTERN}")
    client_secret: Secret
    client_type: Literal["confidential"] = "confidential"


class RpSecretIn(Strict):
    """The RP's new secret, after the RP rotated it; the old one keeps working `grace_period_s`."""

    client_secret: Secret
    grace_period_s: int = Field(default=0, ge=0, le=30 * 24 * 3600)


def _claims(items: list[ClaimMappingIn]) -> tuple[ClaimMapping, ...]:
    return tuple(ClaimMapping(m.claim, m.source) for m in items)


def webapp_router() -> APIRouter:
    """POST a registration; PUT a new RP secret."""
    r = APIRouter(prefix="/e/{enterprise_id}/admin/web-app-logins", route_class=BoundedRoute)

    @r.post("", status_code=201)
    async def register(enterprise_id: str, body: WebAppLoginIn, s: Side, who: Superadmin, request: Request) -> Response:
        return await once(request, s, enterprise_id, who, lambda: _register(enterprise_id, body, s, who))

    async def _register(enterprise_id: str, body: WebAppLoginIn, s: Any, who: Any) -> Response:
        client = Client(
            enterprise_id=enterprise_id,
            client_id=body.client_id,
            profile_name=body.profile_name,
            display_name=body.display_name,
            client_type="confidential",
            redirect_uris=tuple(body.redirect_uris),
            post_logout_redirect_uris=tuple(body.post_logout_redirect_uris),
            backchannel_logout_uri=body.backchannel_logout_uri,
            id_token_signed_response_alg=body.id_token_signed_response_alg,
            custom_claims=_claims(body.custom_claims),
            enabled=body.enabled,
            claims=tuple(body.claims),
            require_pkce=body.require_pkce,
        )
        profile = await s.profiles.register_rp_credentials(AppProfile(client), body.client_secret, who.user_id)
        out: dict[str, Any] = profile_out(profile)
        out["metadata"] = metadata(s.settings.public_base_url, enterprise_id, client.client_id)
        return JSONResponse(out, 201, headers=NO_STORE)

    @r.put("/{client_id}/secret")
    async def new_secret(
        enterprise_id: str, client_id: str, body: RpSecretIn, s: Side, who: Superadmin, request: Request
    ) -> Response:
        async def work() -> Response:
            until = await s.profiles.replace_rp_secret(
                enterprise_id, client_id, body.client_secret, who.user_id, body.grace_period_s
            )
            return JSONResponse(
                {"client_id": client_id, "previous_secret_valid_until": int(until) if until else None},
                headers=NO_STORE,
            )

        return await once(request, s, enterprise_id, who, work)

    return r
