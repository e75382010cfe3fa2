"""HTTP API of the Locker custom options, under /policy/e/{enterprise_id}/locker-options.

The seed: "you may want to hide the Password Autofill prompt by configuring a Locker Custom
Option". Options are org-level, typed (a string where a boolean belongs is refused, an unknown
option is refused by name), versioned (each change gets the next version; sending
`expected_version` refuses a change made against an older one with 409), published as
`policy.locker_options_changed.v1` with the admin as actor, and answered after the broker's ack.
The session service hands them to the Locker app with every checkout and status read.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import Field, StrictBool

from lanyard.policy.api import READ, WRITE, Body, EnterpriseId, error
from lanyard.policy.domain import LockerOptions
from lanyard.policy.service import VersionConflict
from lanyard.runtime.bodies import BoundedRoute
from lanyard.runtime.tokens import AdminPrincipal


class LockerOptionsBody(Body):
    """Every option, with its default when left out (a PUT replaces the whole set)."""

    hide_password_autofill_prompt: StrictBool = False
    show_sso_status_at_checkout: StrictBool = True
    expected_version: int | None = Field(default=None, ge=0, description="the version this change was made against")


def options_out(options: LockerOptions) -> dict[str, Any]:
    """The options as the API shows them."""
    return dict(options.__dict__)


def locker_router() -> APIRouter:
    """GET (admins and services principals) and PUT (superadmin, admin) of the Locker options."""
    router = APIRouter(prefix="/policy/e/{enterprise_id}", route_class=BoundedRoute)

    @router.get("/locker-options")
    async def get_options(request: Request, enterprise_id: EnterpriseId, who: AdminPrincipal = READ) -> Any:
        return options_out(await request.app.state.policy.store.locker_options(enterprise_id))

    @router.put("/locker-options")
    async def put_options(
        request: Request, enterprise_id: EnterpriseId, body: LockerOptionsBody, who: AdminPrincipal = WRITE
    ) -> Any:
        wanted = LockerOptions(
            hide_password_autofill_prompt=body.hide_password_autofill_prompt,
            show_sso_status_at_checkout=body.show_sso_status_at_checkout,
        )
        try:
            event, applied = await request.app.state.policy.locker_options.change(
                enterprise_id, wanted, body.expected_version, who.user_id
            )
        except VersionConflict as stale:
            return error(409, "version_conflict", str(stale))
        return JSONResponse({**event.payload.model_dump(mode="json"), "event_id": event.event_id, "applied": applied})

    return router
