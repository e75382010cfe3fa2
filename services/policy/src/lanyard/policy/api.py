"""HTTP API of the policy service: the admin API under /policy/e/{enterprise_id}/...

Roles (admin bearer tokens from the IdP): superadmin and admin change configuration; auditor
(and both others) may read, and so may a vendor services principal (scope `read`); the
enterprise's superadmin generates the provisioning code and only a services principal (scope
`establish_trust`) enters it (the seed: "The cloud connection must be established by Imprivata
Services"); an enterprise admin's attempt is refused, and announced like every attempt. Every
change publishes its lanyard.policy-config.v1 event with `actor` = the admin's user id (or
`services:<id>`) and answers only after the broker ack (and, bounded, after our
own projection applied it, so the admin reads their write). Errors are JSON
``{"error": ..., "error_description": ...}`` with a 4xx status, and change nothing; bodies are read
by the shared bounded parser, validation errors never repeat the value, free text is `FreeText`
(`lanyard.runtime.bodies`, `.errors`, `.text`). The POSTs (provisioning code, establishing
trust) honour `Idempotency-Key`; PUT and DELETE are idempotent by themselves.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from lanyard.contracts import events as ev
from lanyard.contracts.versions import MINIMUM_PATTERN
from lanyard.policy import domain
from lanyard.policy.service import PRODUCER, TrustActor, TrustRefused, release
from lanyard.runtime.bodies import BoundedRoute
from lanyard.runtime.errors import error_body
from lanyard.runtime.text import FreeText
from lanyard.runtime.tokens import (
    AdminPrincipal,
    ServicesPrincipal,
    TokenVerifier,
    require_roles,
    require_roles_or_services,
)

ID = r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$"
EnterpriseId = Annotated[str, Path(pattern=ID)]
ItemId = Annotated[str, Path(pattern=ID)]
IdList = tuple[Annotated[str, Field(pattern=ID)], ...]


def _verifier(request: Request) -> TokenVerifier:
    return request.app.state.verifier


def _services_verifier(request: Request) -> TokenVerifier:
    return request.app.state.services_verifier


ADMIN_ROLES = ("superadmin", "admin", "auditor")
WRITE = Depends(require_roles(_verifier, "superadmin", "admin"))
READ = Depends(require_roles_or_services(_verifier, _services_verifier, ADMIN_ROLES, "read"))
SUPER = Depends(require_roles(_verifier, "superadmin"))
TRUST = Depends(require_roles_or_services(_verifier, _services_verifier, ADMIN_ROLES, "establish_trust"))


class Body(BaseModel):
    """Request bodies refuse unknown fields: a typo must not silently do nothing."""

    model_config = ConfigDict(extra="forbid")


class UserPolicyBody(Body):
    name: Annotated[FreeText, Field(min_length=1, max_length=200)]
    sso_enabled: bool
    auth_mode: Literal["passcode", "face"] = "passcode"
    inactivity_timeout_s: int = Field(default=300, gt=0, le=7 * 24 * 3600)
    max_session_s: int = Field(default=12 * 3600, gt=0, le=7 * 24 * 3600)
    face_recency_s: int = Field(default=300, gt=0, le=24 * 3600)
    priority: int = Field(default=100, ge=0, le=1_000_000)
    users: IdList = ()
    groups: IdList = ()


class DeploymentBody(Body):
    users: IdList = ()
    groups: IdList = ()


class LicenceBody(Body):
    kind: Literal["sso", "apa"]
    valid_from: AwareDatetime
    valid_until: AwareDatetime
    seats: int = Field(gt=0, le=10_000_000)

    @model_validator(mode="after")
    def _ordered(self) -> LicenceBody:
        if self.valid_until <= self.valid_from:
            raise ValueError("valid_until must be after valid_from")
        return self


class OrgSettingsBody(Body):
    password_autofill_and_sso: bool = False
    require_second_factor: bool = True
    checkin_previous_on_checkout: bool = False
    face_match_threshold: float = Field(default=0.9, ge=0, le=1)
    face_liveness_threshold: float = Field(default=0.9, ge=0, le=1)
    face_max_failures: int = Field(default=5, gt=0, le=100)
    minimum_locker_version: str = Field(default="4.3", pattern=MINIMUM_PATTERN, max_length=24)


class EstablishTrustBody(Body):
    enterprise_id: Annotated[FreeText, Field(min_length=1, max_length=128)]
    code: Annotated[FreeText, Field(min_length=1, max_length=64)]


CONFIG_EVENTS: dict[str, tuple[Any, Any]] = {
    "policies": (ev.UserPolicyUpserted, ev.UserPolicyDeleted),
    "deployments": (ev.AppDeploymentUpserted, ev.AppDeploymentDeleted),
    "licences": (ev.LicenceUpserted, ev.LicenceDeleted),
}
"""The upsert and delete events of each configuration collection the admin API manages."""


def _payload(event_class: Any) -> Any:
    """The payload model of a contracts event class."""
    return event_class.model_fields["payload"].annotation


def error(status: int, code: str, description: str, **extra: Any) -> JSONResponse:
    """A JSON error response in the shared shape (plus, where documented, more members)."""
    return JSONResponse({**error_body(code, description), **extra}, status_code=status)


def api_router() -> APIRouter:
    """The policy service's routes, mounted under /policy behind the gateway."""
    router = APIRouter(prefix="/policy/e/{enterprise_id}", route_class=BoundedRoute)

    def svc(request: Request) -> Any:
        return request.app.state.policy

    async def published(request: Request, event: ev.Event, status: int = 200) -> JSONResponse:
        applied = await svc(request).commands.publish(event)
        body = {**event.payload.model_dump(mode="json"), "event_id": event.event_id, "applied": applied}
        return JSONResponse(body, status_code=status)

    # --------------------------------------- user policies, app deployments, licences

    def collection(path: str, kind: str, id_field: str, body_model: type[Body], label: str) -> None:
        """GET list, GET one, PUT (upsert) and DELETE for one kind of configuration item: the
        same rules for each (404 for a missing item, the admin as actor, answer after the ack)."""
        upserted, deleted = CONFIG_EVENTS[kind]

        async def list_items(request: Request, enterprise_id: EnterpriseId, who: AdminPrincipal = READ) -> Any:
            return {"items": await svc(request).store.list_items(enterprise_id, kind)}

        async def get_item(
            request: Request, enterprise_id: EnterpriseId, item_id: ItemId, who: AdminPrincipal = READ
        ) -> Any:
            item = await svc(request).store.get_item(enterprise_id, kind, item_id)
            return item or error(404, "not_found", f"no such {label}")

        async def put_item(
            request: Request, enterprise_id: EnterpriseId, item_id: ItemId, body: Any, who: AdminPrincipal = WRITE
        ) -> Any:
            payload = _payload(upserted)(**{id_field: item_id, **body.model_dump()})
            event = upserted(enterprise_id=enterprise_id, producer=PRODUCER, actor=who.user_id, payload=payload)
            return await published(request, event)

        async def delete_item(
            request: Request, enterprise_id: EnterpriseId, item_id: ItemId, who: AdminPrincipal = WRITE
        ) -> Any:
            if await svc(request).store.get_item(enterprise_id, kind, item_id) is None:
                return error(404, "not_found", f"no such {label}")
            payload = _payload(deleted)(**{id_field: item_id})
            event = deleted(enterprise_id=enterprise_id, producer=PRODUCER, actor=who.user_id, payload=payload)
            return await published(request, event)

        # The body's model is known only here; FastAPI reads it from the annotation.
        put_item.__annotations__ = {**put_item.__annotations__, "body": body_model}
        router.add_api_route(path, list_items, methods=["GET"])
        router.add_api_route(path + "/{item_id}", get_item, methods=["GET"])
        router.add_api_route(path + "/{item_id}", put_item, methods=["PUT"])
        router.add_api_route(path + "/{item_id}", delete_item, methods=["DELETE"])

    collection("/user-policies", "policies", "policy_id", UserPolicyBody, "user policy")
    collection("/app-deployments", "deployments", "client_id", DeploymentBody, "app deployment")
    collection("/licences", "licences", "licence_id", LicenceBody, "licence")

    # ------------------------------------------------------------------------- org settings

    @router.get("/org-settings")
    async def get_org(request: Request, enterprise_id: EnterpriseId, who: AdminPrincipal = READ) -> Any:
        s = svc(request)
        snapshot = await s.store.snapshot(enterprise_id)
        locked = domain.second_factor_locked(
            await s.store.created_at(enterprise_id), s.enforced_after, snapshot.org.require_second_factor_locked
        )
        org = {**snapshot.org.__dict__, "require_second_factor_locked": locked}
        if locked:
            org["require_second_factor"] = True
        return org

    @router.put("/org-settings")
    async def put_org(
        request: Request, enterprise_id: EnterpriseId, body: OrgSettingsBody, who: AdminPrincipal = WRITE
    ) -> Any:
        s = svc(request)
        current = (await s.store.snapshot(enterprise_id)).org
        # The first configuration event of an enterprise is its creation: this one, if none came before.
        created = await s.store.created_at(enterprise_id) or s.clock()
        locked = domain.second_factor_locked(created, s.enforced_after, current.require_second_factor_locked)
        try:
            settings = domain.apply_org_settings(current, domain.OrgSettings(**body.model_dump()), locked)
        except domain.SettingRefused as refused:
            return error(409 if refused.code == "setting_locked" else 400, refused.code, str(refused))
        payload = ev.OrgSettingsChangedPayload(**settings.__dict__)
        event = ev.OrgSettingsChanged(
            enterprise_id=enterprise_id, producer=PRODUCER, actor=who.user_id, payload=payload
        )
        return await published(request, event)

    # --------------------------------------------------------------------- cloud connection

    @router.get("/cloud-connection")
    async def get_cloud(request: Request, enterprise_id: EnterpriseId, who: AdminPrincipal = READ) -> Any:
        return await svc(request).cloud.view(enterprise_id)

    @router.post("/cloud-connection/provisioning-code")
    async def new_code(request: Request, enterprise_id: EnterpriseId, who: AdminPrincipal = SUPER) -> Response:
        async def work() -> Response:
            issued = await svc(request).cloud.generate_code(enterprise_id, who.user_id)
            return JSONResponse(
                {"enterprise_id": enterprise_id, "code": issued.code, "expires_at": issued.expires_at.isoformat()},
                status_code=201,
                headers={"Cache-Control": "no-store"},
            )

        # A retried "generate" replays the first code rather than voiding it with a second one.
        return await svc(request).idempotency.run(request, enterprise_id, work, subject=who.user_id)

    @router.post("/cloud-connection/establish-trust")
    async def establish(
        request: Request, enterprise_id: EnterpriseId, body: EstablishTrustBody, who: AdminPrincipal = TRUST
    ) -> Response:
        kind = "services" if isinstance(who, ServicesPrincipal) else "enterprise_admin"

        async def work() -> Response:
            try:
                creds = await svc(request).cloud.establish_trust(
                    enterprise_id, body.enterprise_id, body.code, TrustActor(who.user_id, kind)
                )
            except TrustRefused as refused:
                if refused.why == "services_only":
                    description = "only Imprivata-style Services (a services principal) may establish trust"
                    return error(403, "services_only", description)
                description = {
                    "expired": "the provisioning code expired; generate a new one",
                    "used": "the provisioning code was already used or is void; generate a new one",
                }.get(refused.why, "wrong enterprise id or provisioning code")
                return error(400, "invalid_provisioning_code", description, failed_attempts=refused.failed_attempts)
            return JSONResponse(
                {"enterprise_id": creds.enterprise_id, "client_id": creds.client_id,
                 "client_secret": creds.client_secret, "state": "established"},
                status_code=200,
                headers={"Cache-Control": "no-store"},
            )  # fmt: skip

        # A retry after a lost answer gets the credentials, not "code already used".
        return await svc(request).idempotency.run(request, enterprise_id, work, subject=who.user_id)

    # ---------------------------------------------------------------------------- readiness

    @router.get("/readiness")
    async def readiness(request: Request, enterprise_id: EnterpriseId, who: AdminPrincipal = READ) -> Any:
        checks = await svc(request).readiness.report(enterprise_id)
        return {
            "enterprise_id": enterprise_id,
            "ready": domain.is_ready(checks),
            "release": release(),
            "checks": [c.__dict__ for c in checks],
        }

    @router.get("/seats")
    async def seats(request: Request, enterprise_id: EnterpriseId, who: AdminPrincipal = READ) -> Any:
        return await svc(request).readiness.seats(enterprise_id)

    @router.get("/readiness/users/{user_id}")
    async def explain(
        request: Request,
        enterprise_id: EnterpriseId,
        user_id: ItemId,
        client_id: Annotated[str | None, Query(pattern=ID)] = None,
        who: AdminPrincipal = READ,
    ) -> Any:
        return await svc(request).readiness.explain(enterprise_id, user_id, client_id)

    return router
