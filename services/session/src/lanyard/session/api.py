"""HTTP API of the session service, under /session/e/{enterprise_id}/ behind the gateway.

Admin routes (devices, live sessions, force checkin) need an admin bearer token of the
enterprise with the superadmin or admin role. Locker routes authenticate with a `Device-Proof`
header signed by the enrolled device key over the method and the public URL. POSTs honour an
`Idempotency-Key` header (`lanyard.runtime.idempotency`): the first final answer is kept for 24 h
and replayed for the same request (a Locker retry still signs a fresh device proof: proofs are
single-use and checked before the replay, so a stolen key-less request cannot fetch a stored
answer; a 503 is never kept, so a retry after one runs again).
Every refusal is a JSON `{"error", "error_description"}` with a 4xx (503 when the broker did not
acknowledge an event that is saved and will be published); bodies are read by the shared bounded
parser and validation errors never repeat the value (`lanyard.runtime.bodies`, `.errors`).

The Locker app says which release it is and whether it found its SSO extension installed with
every checkout; a release below the enterprise's minimum is refused with `locker_update_required`
(a message the app can show, and `minimum_locker_version`). The checkout answer and every Locker
status read carry whether SSO is available on the session and why not (`sso`) and the
enterprise's Locker options.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Path, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from lanyard.contracts.versions import RELEASE_PATTERN
from lanyard.runtime.bodies import BoundedRoute, parse_json, validated
from lanyard.runtime.errors import error_response
from lanyard.runtime.errors import install_error_handlers as install_shared_error_handlers
from lanyard.runtime.idempotency import Idempotency
from lanyard.runtime.text import FreeText
from lanyard.runtime.tokens import AdminPrincipal, TokenVerifier, require_roles
from lanyard.session.domain import ClientReport, Device
from lanyard.session.service import EnrolRequest, SessionError, SessionService, session_view

ID = r"^[A-Za-z0-9._-]{1,64}$"
HANDLE = r"^[A-Za-z0-9_-]{16,128}$"
Eid = Annotated[str, Path(pattern=ID)]
DeviceId = Annotated[str, Path(pattern=ID)]
Handle = Annotated[str, Path(pattern=HANDLE)]
Answer = tuple[int, dict[str, Any]]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EnrolBody(_Body):
    """An enrolment: the device's ids and its public EC P-256 key."""

    device_id: str = Field(pattern=ID)
    model: Annotated[FreeText, Field(max_length=128)] | None = None
    serial: Annotated[FreeText, Field(max_length=128)] | None = None
    mdm_id: Annotated[FreeText, Field(max_length=128)] | None = None
    public_jwk: dict[str, Any]


class CheckoutBody(_Body):
    """The IdP's checkout assertion, and what the Locker app reports about itself."""

    assertion: str = Field(min_length=1, max_length=16 * 1024)
    locker_version: str | None = Field(default=None, max_length=64, pattern=RELEASE_PATTERN)
    sso_extension_installed: StrictBool | None = None


class FaceResultBody(_Body):
    """The face provider's result, signed by the device key."""

    result: str = Field(min_length=1, max_length=8 * 1024)


def _service(request: Request) -> SessionService:
    return request.app.state.service


def _admin_verifier(request: Request) -> TokenVerifier:
    return request.app.state.admin_verifier


Admin = Annotated[AdminPrincipal, Depends(require_roles(_admin_verifier, "superadmin", "admin"))]


def _error(status: int, code: str, description: str) -> JSONResponse:
    return error_response(status, code, description)


def _device_view(device: Device) -> dict[str, Any]:
    return {
        "device_id": device.device_id,
        "model": device.model,
        "serial": device.serial,
        "mdm_id": device.mdm_id,
        "public_jwk": device.public_jwk,
        "jkt": device.jkt,
        "enrolled_at": device.enrolled_at,
        "retired": device.retired,
    }


def _public_url(request: Request) -> str:
    """The URL the device signed: the gateway's public origin plus this path."""
    return f"{_service(request).settings.public_base_url.rstrip('/')}{request.url.path}"


async def _idempotent(
    request: Request, enterprise_id: str, run: Callable[[], Awaitable[Answer]], admin: AdminPrincipal | None = None
) -> Response:
    """Run a state-changing call once per Idempotency-Key; replay its first final answer afterwards.
    A SessionError is an answer like any other (the app's handler renders it)."""
    idempotency: Idempotency = request.app.state.idempotency

    async def work() -> Response:
        status, body = await run()
        return JSONResponse(body, status_code=status)

    return await idempotency.run(request, enterprise_id, work, subject=admin.user_id if admin else None)


async def _locker_session(request: Request, enterprise_id: str, handle: str):
    service = _service(request)
    return await service.authenticate_session(
        enterprise_id, handle, request.headers.get("device-proof"), request.method, _public_url(request)
    )


def api_router() -> APIRouter:
    """The session service's routes, mounted under /session behind the gateway."""
    router = APIRouter(prefix="/session/e/{enterprise_id}", route_class=BoundedRoute)

    # ------------------------------------------------------------------ admin

    @router.post("/devices")
    async def enrol(request: Request, enterprise_id: Eid, body: EnrolBody, admin: Admin) -> Response:
        async def run() -> Answer:
            req = EnrolRequest(body.device_id, body.public_jwk, body.model, body.serial, body.mdm_id)
            device, created = await _service(request).enrol_device(enterprise_id, req, admin.user_id)
            return (201 if created else 200), _device_view(device)

        return await _idempotent(request, enterprise_id, run, admin)

    @router.get("/devices")
    async def list_devices(request: Request, enterprise_id: Eid, admin: Admin) -> dict[str, Any]:
        devices = await _service(request).list_devices(enterprise_id)
        return {"devices": [_device_view(d) for d in devices]}

    @router.post("/devices/{device_id}/retire")
    async def retire(request: Request, enterprise_id: Eid, device_id: DeviceId, admin: Admin) -> Response:
        async def run() -> Answer:
            device = await _service(request).retire_device(enterprise_id, device_id, admin.user_id)
            return 200, _device_view(device)

        return await _idempotent(request, enterprise_id, run, admin)

    @router.get("/device-sessions")
    async def list_live(request: Request, enterprise_id: Eid, admin: Admin) -> dict[str, Any]:
        service = _service(request)
        org = await service.org_settings(enterprise_id)
        live = await service.store.list_live(enterprise_id)
        return {"device_sessions": [session_view(s, org) for s in live]}

    @router.post("/device-sessions/{handle}/force-checkin")
    async def force_checkin(request: Request, enterprise_id: Eid, handle: Handle, admin: Admin) -> Response:
        async def run() -> Answer:
            service = _service(request)
            session = await service.force_check_in(enterprise_id, handle, admin.user_id)
            return 200, session_view(session, await service.org_settings(enterprise_id))

        return await _idempotent(request, enterprise_id, run, admin)

    # ------------------------------------------------------------------ Locker (device proof)

    @router.post("/devices/{device_id}/checkout")
    async def checkout(request: Request, enterprise_id: Eid, device_id: DeviceId, body: CheckoutBody) -> Response:
        service = _service(request)
        try:
            device = await service.authenticate_device(
                enterprise_id, device_id, request.headers.get("device-proof"), "POST", _public_url(request)
            )
        except SessionError as exc:
            return _error(exc.status, exc.code, exc.description)

        async def run() -> Answer:
            report = ClientReport(body.locker_version, body.sso_extension_installed)
            session = await service.checkout(device, body.assertion, report=report)
            view = await service.locker_view(session)
            return 201, {
                "device_session_id": session.device_session_id,
                "handle": session.device_session_id,
                "state": session.state.value,
                "sequence": session.sequence,
                "user_id": session.user_id,
                "sso": view["sso"],
                "locker_options": view["locker_options"],
            }

        return await _idempotent(request, enterprise_id, run)

    @router.get("/device-sessions/{handle}")
    async def get_session(request: Request, enterprise_id: Eid, handle: Handle) -> JSONResponse:
        service = _service(request)
        try:
            session = await _locker_session(request, enterprise_id, handle)
        except SessionError as exc:
            return _error(exc.status, exc.code, exc.description)
        return JSONResponse(await service.locker_view(session))

    def locker_post(path: str, action: Callable[[Request, Any, dict[str, Any]], Awaitable[Answer]], body_model=None):
        """A Locker POST: device proof first (never replayed), then the idempotent action."""

        async def route(request: Request, enterprise_id: Eid, handle: Handle) -> Response:
            try:
                session = await _locker_session(request, enterprise_id, handle)
            except SessionError as exc:
                return _error(exc.status, exc.code, exc.description)
            body: dict[str, Any] = {}
            if body_model is not None:
                body = validated(body_model, parse_json(await request.body() or b"{}")).model_dump()
            return await _idempotent(request, enterprise_id, lambda: action(request, session, body))

        router.add_api_route(path, route, methods=["POST"], name=path.rsplit("/", 1)[-1])

    async def activity(request: Request, session: Any, _: dict[str, Any]) -> Answer:
        service = _service(request)
        latest = await service.heartbeat(session)
        return 200, await service.locker_view(latest)

    async def checkin(request: Request, session: Any, _: dict[str, Any]) -> Answer:
        service = _service(request)
        closed = await service.check_in(session, "user", session.user_id)
        return 200, await service.locker_view(closed)

    async def face_challenge(request: Request, session: Any, _: dict[str, Any]) -> Answer:
        challenge, expires_at = await _service(request).face_challenge(session)
        return 201, {"challenge": challenge, "expires_at": expires_at}

    async def face_result(request: Request, session: Any, body: dict[str, Any]) -> Answer:
        after, transition = await _service(request).face_result(session, body["result"])
        return 200, {
            "verified": transition.kind == "face_verified",
            "unlocked": transition.unlocked,
            "reason": transition.reason,
            "failures": transition.failures,
            "limit_reached": transition.limit_reached,
            "state": after.state.value,
            "sequence": after.sequence,
        }

    locker_post("/device-sessions/{handle}/activity", activity)
    locker_post("/device-sessions/{handle}/checkin", checkin)
    locker_post("/device-sessions/{handle}/face/challenge", face_challenge)
    locker_post("/device-sessions/{handle}/face/result", face_result, FaceResultBody)
    return router


def install_error_handlers(app: FastAPI) -> None:
    """Bad input and refused auth answer with the same JSON error shape as everything else: the
    shared handlers, plus SessionError (also what an idempotent call keeps as its answer)."""
    install_shared_error_handlers(app)

    async def refused(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, SessionError)
        body = {"error": exc.code, "error_description": exc.description, **exc.extra}
        return JSONResponse(body, status_code=exc.status)

    app.add_exception_handler(SessionError, refused)
