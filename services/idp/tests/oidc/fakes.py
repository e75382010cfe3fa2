"""In-memory fakes of the ports the OIDC side consumes; they honour the Protocols in ports.py."""

from __future__ import annotations

import hmac
import secrets
import time
from datetime import UTC, datetime
from typing import Any

from joserfc.jwk import ECKey, KeySet, RSAKey

from lanyard.contracts import Event
from lanyard.idp.devices.domain import DeviceLogin, DeviceSsoError, SessionLocked, TemporarilyUnavailable
from lanyard.idp.directory.domain import BrowserSession, Client, Enterprise, OrgSettings, User


class FakeEnterprises:
    def __init__(self, *eids: str) -> None:
        self.items = {e: Enterprise(e, f"Enterprise {e}", datetime.now(UTC)) for e in eids}

    async def get(self, enterprise_id: str) -> Enterprise | None:
        return self.items.get(enterprise_id)


class FakeUsers:
    def __init__(self) -> None:
        self.items: dict[tuple[str, str], User] = {}

    def add(self, user: User) -> User:
        self.items[(user.enterprise_id, user.user_id)] = user
        return user

    async def get(self, enterprise_id: str, user_id: str) -> User | None:
        return self.items.get((enterprise_id, user_id))

    async def by_username(self, enterprise_id: str, username: str) -> User | None:
        return next((u for (e, _), u in self.items.items() if e == enterprise_id and u.username == username), None)


class FakeClients:
    def __init__(self) -> None:
        self.items: dict[tuple[str, str], Client] = {}
        self.secrets: dict[tuple[str, str], str] = {}

    def add(self, client: Client, secret: str | None = None) -> Client:
        self.items[(client.enterprise_id, client.client_id)] = client
        if secret:
            self.secrets[(client.enterprise_id, client.client_id)] = secret
        return client

    async def get(self, enterprise_id: str, client_id: str) -> Client | None:
        return self.items.get((enterprise_id, client_id))

    async def verify_secret(self, enterprise_id: str, client_id: str, secret: str) -> bool:
        stored = self.secrets.get((enterprise_id, client_id))
        return stored is not None and hmac.compare_digest(stored.encode(), secret.encode())


class FakeKeys:
    """One RS256 and one ES256 key per enterprise, kid always set."""

    def __init__(self) -> None:
        self.sets: dict[str, KeySet] = {}

    def keyset(self, eid: str) -> KeySet:
        if eid not in self.sets:
            self.sets[eid] = KeySet(
                [
                    RSAKey.generate_key(2048, parameters={"kid": f"rs-{eid}-{secrets.token_hex(3)}", "use": "sig"}),
                    ECKey.generate_key("P-256", parameters={"kid": f"es-{eid}-{secrets.token_hex(3)}", "use": "sig"}),
                ]
            )
        return self.sets[eid]

    async def signing_key(self, enterprise_id: str, alg: str = "RS256") -> Any:
        kty = "RSA" if alg == "RS256" else "EC"
        return next(k for k in self.keyset(enterprise_id).keys if k.key_type == kty)

    async def jwks(self, enterprise_id: str) -> dict[str, Any]:
        return self.keyset(enterprise_id).as_dict(private=False)

    async def verification_keys(self, enterprise_id: str) -> Any:
        return KeySet.import_key_set(self.keyset(enterprise_id).as_dict(private=False))


class FakeOrgSettings:
    async def get(self, enterprise_id: str) -> OrgSettings:
        return OrgSettings(password_autofill_and_sso=True)


class FakeBrowserSessions:
    def __init__(self) -> None:
        self.by_cookie: dict[str, BrowserSession] = {}
        self.ended: list[str] = []

    async def create(self, enterprise_id: str, user_id: str, amr: tuple[str, ...]) -> tuple[str, BrowserSession]:
        cookie = secrets.token_urlsafe(16)
        session = BrowserSession(enterprise_id, "sid-" + secrets.token_hex(6), user_id, int(time.time()), amr)
        self.by_cookie[cookie] = session
        return cookie, session

    async def get(self, enterprise_id: str, cookie: str | None) -> BrowserSession | None:
        s = self.by_cookie.get(cookie or "")
        return s if s and s.enterprise_id == enterprise_id else None

    async def end(self, enterprise_id: str, sid: str) -> None:
        self.ended.append(sid)
        for c, s in list(self.by_cookie.items()):
            if s.sid == sid and s.enterprise_id == enterprise_id:
                del self.by_cookie[c]


class FakeDeviceSessions:
    """handle → DeviceLogin; `state` per dsid: ACTIVE, LOCKED, CLOSED; `stale` raises."""

    def __init__(self) -> None:
        self.logins: dict[str, DeviceLogin] = {}
        self.state: dict[str, str] = {}
        self.refuse: DeviceSsoError | None = None
        self.stale = False
        self.calls: list[tuple[str, str, str]] = []

    def add(self, handle: str, login: DeviceLogin) -> None:
        self.logins[handle] = login
        self.state[login.device_session_id] = "ACTIVE"

    async def authenticate(
        self, enterprise_id: str, client_id: str, handle: str, proof: str, method: str, url: str
    ) -> DeviceLogin:
        self.calls.append((method, url, proof))
        if self.stale:
            raise TemporarilyUnavailable()
        if self.refuse is not None:
            raise self.refuse
        login = self.logins.get(handle)
        if login is None or proof != "good-proof" or self.state.get(login.device_session_id) != "ACTIVE":
            raise DeviceSsoError("login_required", "no usable device session")
        return login

    async def is_active(
        self, enterprise_id: str, device_session_id: str, view_fields: dict[str, str | None] | None = None
    ) -> bool:
        if self.stale:
            raise TemporarilyUnavailable()
        return self.state.get(device_session_id) in ("ACTIVE", "LOCKED")

    async def may_refresh(
        self, enterprise_id: str, device_session_id: str, client_id: str, view_fields: dict[str, str] | None = None
    ) -> bool:
        if self.stale:
            raise TemporarilyUnavailable()
        if self.state.get(device_session_id) == "LOCKED":
            raise SessionLocked()
        return self.state.get(device_session_id) == "ACTIVE"


class FakeBackchannel:
    """Like the real queue, only clients with a back-channel logout URI are queued."""

    def __init__(self, clients: FakeClients) -> None:
        self.clients = clients
        self.queued: list[tuple[str, str, str, str, str | None]] = []

    async def enqueue(
        self, enterprise_id: str, client_id: str, sid: str, user_id: str, device_session_id: str | None = None
    ) -> None:
        client = await self.clients.get(enterprise_id, client_id)
        if client is not None and client.backchannel_logout_uri:
            self.queued.append((enterprise_id, client_id, sid, user_id, device_session_id))

    async def enqueue_revoked(self, enterprise_id: str, sessions, device_session_id: str | None = None) -> None:  # type: ignore[no-untyped-def]
        for session in sessions:
            for client_id in session.client_ids:
                await self.enqueue(enterprise_id, client_id, session.sid, session.user_id, device_session_id)


class FakePublisher:
    def __init__(self) -> None:
        self.events: list[Event] = []

    async def publish(self, event: Event) -> None:
        self.events.append(event)

    def types(self) -> list[str]:
        return [e.type for e in self.events]
