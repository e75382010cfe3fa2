"""Fakes of the other IdP sides' ports, event builders and an app factory for device-session tests."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
import uvicorn
from joserfc.jwk import ECKey, KeySet, RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from lanyard.contracts import Subject
from lanyard.contracts import events as ev
from lanyard.idp.app import Devices
from lanyard.idp.devices.domain import RevokedSession, sid_for
from lanyard.idp.directory.domain import Client, OrgSettings
from lanyard.idp.settings import DeviceSettings
from lanyard.runtime.proofs import thumbprint
from lanyard.runtime.testing import eventually, free_port

AUTHORIZE = "http://127.0.0.1:8480/e/{eid}/authorize"


class FakeRevoker:
    """SessionRevoker of the OIDC side: remembers calls; every app signed in on a device
    session shares its sid."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []
        self.clients: dict[tuple[str, str], tuple[str, ...]] = {}
        self.users: dict[tuple[str, str], str] = {}
        self.fail_times = 0
        self.revoked: set[tuple[str, str]] = set()  # the markers: revoked before
        self.slow: set[str] = set()  # device sessions whose revocation takes `delay_s`
        self.delay_s = 0.02
        self.in_flight = self.most_in_flight = 0

    def signed_in(self, eid: str, dsid: str, user_id: str, *client_ids: str) -> None:
        self.clients[(eid, dsid)] = client_ids
        self.users[(eid, dsid)] = user_id

    async def revoke_device_session(
        self, enterprise_id: str, device_session_id: str, reason: str, alongside=None, first_only=False
    ):
        if self.fail_times > 0:
            self.fail_times -= 1
            raise ConnectionError("oidc storage unavailable")
        if first_only and (enterprise_id, device_session_id) in self.revoked:
            return None
        self.revoked.add((enterprise_id, device_session_id))
        self.calls.append((enterprise_id, device_session_id, reason))
        if device_session_id in self.slow:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            try:
                await asyncio.sleep(self.delay_s)
            finally:
                self.in_flight -= 1
        # Like the real revoker: a repeat returns the same sessions, so an interrupted caller
        # can still queue its logouts.
        clients = self.clients.get((enterprise_id, device_session_id), ())
        if not clients:
            return []
        user = self.users[(enterprise_id, device_session_id)]
        sessions = [RevokedSession(sid_for(enterprise_id, device_session_id), user, clients)]
        if alongside is not None:
            await alongside(sessions)
        return sessions

    async def revoke_sid(self, enterprise_id: str, sid: str, reason: str, alongside=None):
        return None


class FakeClients:
    def __init__(self) -> None:
        self.by_id: dict[tuple[str, str], Client] = {}

    def add(
        self, eid: str, client_id: str, backchannel_logout_uri: str | None = None, id_token_alg: str | None = None
    ) -> Client:
        client = Client(
            enterprise_id=eid,
            client_id=client_id,
            profile_name=client_id,
            display_name=client_id,
            client_type="confidential" if backchannel_logout_uri else "public",
            redirect_uris=(f"com.example.{client_id}://cb",),
            backchannel_logout_uri=backchannel_logout_uri,
            id_token_signed_response_alg=id_token_alg,
        )
        self.by_id[(eid, client_id)] = client
        return client

    async def get(self, enterprise_id: str, client_id: str) -> Client | None:
        return self.by_id.get((enterprise_id, client_id))

    async def verify_secret(self, enterprise_id: str, client_id: str, secret: str) -> bool:
        return False


class FakeKeys:
    def __init__(self) -> None:
        self.key = RSAKey.generate_key(2048, parameters={"kid": "rs-test-1", "alg": "RS256", "use": "sig"})
        self.ec_key = ECKey.generate_key("P-256", parameters={"kid": "ec-test-1", "alg": "ES256", "use": "sig"})

    async def signing_key(self, enterprise_id: str, alg: str = "RS256") -> Any:
        return self.ec_key if alg == "ES256" else self.key

    async def jwks(self, enterprise_id: str) -> dict[str, Any]:
        return {"keys": [self.key.as_dict(private=False), self.ec_key.as_dict(private=False)]}

    async def verification_keys(self, enterprise_id: str) -> Any:
        return KeySet(
            [RSAKey.import_key(self.key.as_dict(private=False)), ECKey.import_key(self.ec_key.as_dict(private=False))]
        )


class FakeOrgSettings:
    def __init__(self, sso: bool = True) -> None:
        self.sso: dict[str, bool] = {}
        self.default = sso

    async def get(self, enterprise_id: str) -> OrgSettings:
        return OrgSettings(password_autofill_and_sso=self.sso.get(enterprise_id, self.default))

    async def apply(self, enterprise_id: str, settings: OrgSettings, event_id: str, occurred_at: float) -> bool:
        # The port's whole interface: a test on the shared broker also reads other tests' settings.
        self.sso[enterprise_id] = settings.password_autofill_and_sso
        return True


class MemoryPublisher:
    def __init__(self) -> None:
        self.events: list[Any] = []

    async def publish(self, event: Any) -> None:
        self.events.append(event)


@dataclass
class Ports:
    revoker: FakeRevoker = field(default_factory=FakeRevoker)
    clients: FakeClients = field(default_factory=FakeClients)
    keys: FakeKeys = field(default_factory=FakeKeys)
    org: FakeOrgSettings = field(default_factory=FakeOrgSettings)


@pytest.fixture(scope="session")
def keys() -> FakeKeys:
    return FakeKeys()  # RSA generation is slow: one key per run


@pytest.fixture
def ports(keys) -> Ports:
    return Ports(keys=keys)


# ------------------------------------------------------------------------------ a device


@dataclass
class Device:
    """A checked-out device: its key, its session handle, and events about it."""

    eid: str
    device_id: str
    dsid: str
    user_id: str
    key: ECKey
    seq: int = 0
    version: int = 0

    @classmethod
    def new(cls, eid: str | None = None) -> Device:
        return cls(
            eid=eid or f"ent-{uuid.uuid4().hex[:8]}",
            device_id=f"dev-{uuid.uuid4().hex[:8]}",
            dsid=f"ds-{uuid.uuid4().hex}",
            user_id=f"user-{uuid.uuid4().hex[:6]}",
            key=ECKey.generate_key("P-256"),
        )

    @property
    def jkt(self) -> str:
        return thumbprint(self.key.as_dict(private=False))

    @property
    def url(self) -> str:
        return AUTHORIZE.format(eid=self.eid)

    def proof(self, method: str = "GET", url: str | None = None, handle: str | None = None, **kw: Any) -> str:
        from lanyard.runtime.proofs import sign_device_proof

        return sign_device_proof(self.key, method, url or self.url, handle=handle or self.dsid, **kw)

    def _base(self) -> dict[str, Any]:
        self.seq += 1
        return {
            "device_session_id": self.dsid,
            "device_id": self.device_id,
            "user_id": self.user_id,
            "sequence": self.seq,
        }

    def _env(self, cls: type, payload: Any) -> Any:
        return cls(
            enterprise_id=self.eid,
            producer="test",
            subject=Subject(user_id=self.user_id, device_id=self.device_id, device_session_id=self.dsid),
            payload=payload,
        )

    def checked_out(self) -> ev.DeviceCheckedOut:
        p = ev.DeviceCheckedOutPayload(
            **self._base(), amr=("pwd", "otp"), checked_out_at=datetime.now(UTC), device_jkt=self.jkt
        )
        return self._env(ev.DeviceCheckedOut, p)

    def locked(self) -> ev.DeviceLocked:
        return self._env(ev.DeviceLocked, ev.DeviceLockedPayload(**self._base()))

    def face_verified(self, at: datetime | None = None) -> ev.FaceVerified:
        p = ev.FaceVerifiedPayload(**self._base(), verified_at=at or datetime.now(UTC), unlocked=True)
        return self._env(ev.FaceVerified, p)

    def checked_in(self, reason: str = "user") -> ev.DeviceCheckedIn:
        return self._env(ev.DeviceCheckedIn, ev.DeviceCheckedInPayload(**self._base(), reason=reason))

    def granted(self, *apps: str, mode: str = "passcode", face_recency_s: int = 300) -> ev.EntitlementGranted:
        self.version += 1
        p = ev.EntitlementGrantedPayload(
            device_session_id=self.dsid,
            device_id=self.device_id,
            user_id=self.user_id,
            version=self.version,
            apps=apps,
            auth_mode=mode,
            inactivity_timeout_s=300,
            max_session_s=3600,
            face_allowed=mode == "face",
            face_recency_s=face_recency_s,
            policy_id="pol-1",
        )
        return self._env(ev.EntitlementGranted, p)

    def denied(self, reason: str = "no_policy") -> ev.EntitlementDenied:
        p = ev.EntitlementDeniedPayload(
            device_session_id=self.dsid, device_id=self.device_id, user_id=self.user_id, reason=reason
        )
        return self._env(ev.EntitlementDenied, p)

    def revoked(self, reason: str = "app_undeployed") -> ev.EntitlementRevoked:
        p = ev.EntitlementRevokedPayload(
            device_session_id=self.dsid, device_id=self.device_id, user_id=self.user_id, reason=reason
        )
        return self._env(ev.EntitlementRevoked, p)


def fast_settings(**kw: Any) -> DeviceSettings:
    base: dict[str, Any] = {
        "grant_wait_s": 0.3,
        "max_staleness_s": 5.0,
        "freshness_tick_s": 0.1,
        "bcl_backoff_s": 0.05,
        "bcl_poll_s": 0.05,
        "bcl_timeout_s": 2.0,
        "bcl_max_attempts": 4,
    }
    base.update(kw)
    return DeviceSettings(**base)


@contextlib.asynccontextmanager
async def running_idp(ports: Ports, device_settings: DeviceSettings | None = None, **idp: Any) -> AsyncIterator[Any]:
    """The real idp app (real Kafka and Redis) with fakes for the other sides' ports, started,
    and with its device-session view shown fresh."""
    from lanyard.idp.app import create_app
    from lanyard.idp.settings import IdpSettings
    from lanyard.runtime.testing import eventually

    settings = IdpSettings(consumer_group=f"test-idp-{uuid.uuid4().hex[:8]}", **idp)
    app = create_app(
        settings,
        device_settings=device_settings or fast_settings(),
        session_revoker=ports.revoker,
        clients=ports.clients,
        keys=ports.keys,
        org_settings=ports.org,
    )
    async with app.router.lifespan_context(app):
        devices: Devices = app.state.devices
        await eventually(lambda: devices.freshness.fresh, 30, what="device-session view fresh")
        yield app


@pytest.fixture
def kit() -> Any:
    """The helpers above, for test modules (importlib mode does not put conftest on sys.path)."""
    import types

    return types.SimpleNamespace(
        Device=Device,
        Ports=Ports,
        fast_settings=fast_settings,
        running_idp=running_idp,
        MemoryPublisher=MemoryPublisher,
    )


# ------------------------------------------------------------------------ a relying party


class Receiver:
    """A relying party's back-channel logout endpoint with scripted answers per path."""

    def __init__(self) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.posts: list[tuple[str, str, str]] = []  # (path, content type, logout_token)
        self.script: dict[str, list[int]] = {}

    async def endpoint(self, request: Request) -> Response:
        form = await request.form()
        path = request.url.path
        self.posts.append((path, request.headers.get("content-type", ""), str(form.get("logout_token", ""))))
        if path.startswith("/slow"):
            await asyncio.sleep(1)
        codes = self.script.get(path) or [200]
        code = codes.pop(0) if len(codes) > 1 else codes[0]
        # A redirect names another path of this receiver: following it would post there.
        return Response(status_code=code, headers={"Location": "/followed"} if 300 <= code < 400 else None)

    def to(self, path: str) -> list[tuple[str, str, str]]:
        return [p for p in self.posts if p[0] == path]


@pytest.fixture
async def receiver():
    rp = Receiver()
    app = Starlette(routes=[Route("/{path:path}", rp.endpoint, methods=["POST"])])
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=rp.port, log_level="warning", lifespan="off", timeout_graceful_shutdown=2
        )
    )
    task = asyncio.create_task(server.serve())
    await eventually(lambda: server.started, 10, what="receiver started")
    yield rp
    server.should_exit = True
    await task
