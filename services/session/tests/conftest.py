"""Fakes for the session service's ports, honouring the same Protocols as the real adapters.

`tests/adapters` runs one contract suite over the in-memory store and the Redis store.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from lanyard.contracts import Event
from lanyard.session.domain import TIMER_KINDS, deadlines
from lanyard.session.ports import Change, FaceResult, InvalidFaceResult, TimerRef
from lanyard.session.service import SessionService
from lanyard.session.settings import SessionSettings

T0 = 1_800_000_000.0
LOCKER_VERSION = "4.3.0"
"""What the Locker app of these tests reports (the seed's minimum)."""


class FakeClock:
    def __init__(self, now: float = T0) -> None:
        self.t = now

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


class FakePublisher:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.fail = False

    async def publish(self, event: Event) -> None:
        if self.fail:
            raise ConnectionError("broker away")
        self.events.append(event)

    def types(self) -> list[str]:
        return [e.type for e in self.events]


class InMemoryStore:
    """SessionStore in memory: the same contract as RedisSessionStore, without Redis."""

    def __init__(self, clock: FakeClock, grace: float = 5.0) -> None:
        self.clock = clock
        self.grace = grace
        self.devices: dict[tuple[str, str], Any] = {}
        self.sessions: dict[tuple[str, str], Any] = {}
        self.current: dict[tuple[str, str], str] = {}
        self.timers: dict[str, float] = {}
        self.outbox: dict[str, tuple[float, Event]] = {}
        self.staged: dict[str, float] = {}  # when each event was staged (pending_events' order)
        self.org: dict[str, Any] = {}
        self.locker: dict[str, Any] = {}
        self.once: set[str] = set()
        self.challenges: dict[tuple[str, str], str] = {}
        self.proof_marks: set[tuple[str, str]] = set()

    async def get_device(self, eid, device_id):
        return self.devices.get((eid, device_id))

    async def put_device(self, device, events):
        self.devices[(device.enterprise_id, device.device_id)] = device
        self._park(events)

    async def list_devices(self, eid):
        return [d for (e, _), d in sorted(self.devices.items()) if e == eid]

    async def get_session(self, eid, dsid):
        return self.sessions.get((eid, dsid))

    async def get_session_marking_proof(self, eid, dsid, replay_key, ttl_s):
        first = (eid, replay_key) not in self.proof_marks
        self.proof_marks.add((eid, replay_key))
        return self.sessions.get((eid, dsid)), first

    async def current_session_id(self, eid, device_id):
        return self.current.get((eid, device_id))

    async def list_live(self, eid):
        return [s for (e, _), s in self.sessions.items() if e == eid and s.live]

    async def mutate(self, eid, dsid, decide, known=None):
        # `known` only saves the Redis store a read; this store always decides on what it holds.
        session = self.sessions.get((eid, dsid))
        if session is None:
            for k in TIMER_KINDS:
                self.timers.pop(f"{eid}|{dsid}|{k}", None)
            return None
        change = decide(session)
        if change is None:
            self._schedule(session)
            return None
        self._write(change)
        for s in change.sessions:
            if not s.live and self.current.get((s.enterprise_id, s.device_id)) == s.device_session_id:
                del self.current[(s.enterprise_id, s.device_id)]
        return change

    async def mutate_many(self, items):
        # Atomic like the Redis store's: every decision runs before anything is written.
        saved = (dict(self.sessions), dict(self.timers), dict(self.current), dict(self.outbox), dict(self.staged))
        try:
            return [await self.mutate(eid, dsid, decide) for eid, dsid, decide in items]
        except BaseException:
            self.sessions, self.timers, self.current, self.outbox, self.staged = saved
            raise

    async def open(self, eid, device_id, decide):
        current = self.current.get((eid, device_id))
        previous = self.sessions.get((eid, current)) if current else None
        change = decide(previous)
        self._write(change)
        self.current[(eid, device_id)] = change.sessions[-1].device_session_id
        return change

    def _write(self, change: Change) -> None:
        for s in change.sessions:
            self.sessions[(s.enterprise_id, s.device_session_id)] = s
            self._schedule(s)
        self._park(change.events)

    def _schedule(self, s) -> None:
        due = deadlines(s)
        for k in TIMER_KINDS:
            member = f"{s.enterprise_id}|{s.device_session_id}|{k}"
            if k in due:
                self.timers[member] = due[k]
            else:
                self.timers.pop(member, None)

    def _park(self, events) -> None:
        for i, e in enumerate(events):
            self.outbox[e.event_id] = (self.clock.now() + self.grace + i * 1e-3, e)
            self.staged[e.event_id] = self.clock.now() + i * 1e-3

    async def restore(self, devices, sessions, org_settings):
        written = 0
        for d in devices:
            if (d.enterprise_id, d.device_id) not in self.devices:
                self.devices[(d.enterprise_id, d.device_id)] = d
                written += 1
        for eid, settings in org_settings.items():
            if eid not in self.org:
                self.org[eid] = settings
                written += 1
        for s in sessions:
            if (s.enterprise_id, s.device_session_id) in self.sessions:
                continue
            self._write(Change((s,)))
            if s.live:
                self.current.setdefault((s.enterprise_id, s.device_id), s.device_session_id)
            written += 1
        return written

    async def claim_due_timers(self, now, lease_s, limit):
        due = sorted((d, m) for m, d in self.timers.items() if d <= now)[:limit]
        refs = []
        for _, m in due:
            self.timers[m] = now + lease_s
            eid, dsid, kind = m.split("|")
            refs.append(TimerRef(eid, dsid, kind))
        return refs

    async def claim_outbox(self, now, lease_s, limit):
        due = sorted((d, i) for i, (d, _) in self.outbox.items() if d <= now)[:limit]
        out = []
        for _, i in due:
            out.append(self.outbox[i][1])
            self.outbox[i] = (now + lease_s, self.outbox[i][1])
        return out

    async def outbox_done(self, event):
        self.outbox.pop(event.event_id, None)

    async def outbox_later(self, events, due):
        for i, e in enumerate(events):
            if e.event_id in self.outbox:
                self.outbox[e.event_id] = (due + i * 1e-3, e)

    async def pending_events(self, eid, device_id):
        mine = [e for _, e in self.outbox.values() if e.enterprise_id == eid and e.subject.device_id == device_id]
        return sorted(mine, key=lambda e: self.staged[e.event_id])

    async def get_org_settings(self, eid):
        from lanyard.session.domain import OrgSettings

        return self.org.get(eid, OrgSettings())

    async def get_locker_options(self, eid):
        from lanyard.session.domain import LockerOptions

        return self.locker.get(eid, LockerOptions())

    async def get_view_settings(self, eid):
        return await self.get_org_settings(eid), await self.get_locker_options(eid)

    async def put_locker_options(self, eid, options):
        if eid in self.locker and self.locker[eid].version >= options.version:
            return False
        self.locker[eid] = options
        return True

    async def park(self, events):
        self._park(events)

    async def put_org_settings(self, eid, settings):
        self.org[eid] = settings

    async def first_use(self, eid, kind, value, ttl_s):
        key = f"{eid}:{kind}:{value}"
        if key in self.once:
            return False
        self.once.add(key)
        return True

    async def put_challenge(self, eid, challenge, dsid, ttl_s):
        self.challenges[(eid, challenge)] = dsid

    async def take_challenge(self, eid, challenge):
        return self.challenges.pop((eid, challenge), None)


class FakeAssertions:
    """Assertions are JSON claims; `invalid` ones raise like TokenVerifier does."""

    async def verify(self, token, *, enterprise_id, audience, typ):
        assert audience == "lanyard-session" and typ == "checkout+jwt"
        if token == "invalid":
            raise ValueError("bad signature")
        return json.loads(token)


class FakeProofs:
    async def verify(self, proof, *, enterprise_id, method, url, expected_jkt, handle=None):
        from lanyard.session.ports import InvalidProof

        if proof != f"proof-for:{expected_jkt}":
            raise InvalidProof("not signed by the enrolled device key")
        return {"htm": method, "htu": url}

    def check(self, proof, *, method, url, handle=None):
        """A proof here is "proof-for:<jkt>"; each one is fresh (these tests do not replay)."""
        import uuid

        from lanyard.session.ports import CheckedProof, InvalidProof

        if not isinstance(proof, str) or not proof.startswith("proof-for:"):
            raise InvalidProof("malformed")
        jkt = proof.removeprefix("proof-for:")
        return CheckedProof({"htm": method, "htu": url}, jkt, f"{jkt}:{uuid.uuid4().hex}", 120)


class FakeFaces:
    """Face results are JSON of FaceResult's fields; "forged" fails the signature check."""

    def verify(self, result, *, expected_jkt):
        if result == "forged":
            raise InvalidFaceResult("bad signature")
        return FaceResult(**json.loads(result))


def face_result(challenge: str, subject: str = "u-1", match: float = 0.95, liveness: float = 0.95) -> str:
    return json.dumps(dataclasses.asdict(FaceResult(challenge, subject, match, liveness, T0)), separators=(",", ":"))


def assertion(device_id: str = "dev-1", user: str = "u-1", amr=("pwd", "otp"), jti: str | None = None) -> str:
    import uuid

    return json.dumps({"sub": user, "device_id": device_id, "amr": list(amr), "jti": jti or uuid.uuid4().hex})


@dataclasses.dataclass
class World:
    clock: FakeClock
    store: InMemoryStore
    publisher: FakePublisher
    service: SessionService

    assertion = staticmethod(assertion)
    face_result = staticmethod(face_result)

    @property
    def report(self):
        """What an up-to-date Locker app with its SSO extension reports at checkout."""
        from lanyard.session.domain import ClientReport

        return ClientReport(locker_version=LOCKER_VERSION, sso_extension_installed=True)

    async def enrol(self, device_id: str = "dev-1", eid: str = "ent-1"):
        from joserfc.jwk import ECKey

        from lanyard.session.service import EnrolRequest

        jwk = ECKey.generate_key("P-256").as_dict(private=False)
        device, _ = await self.service.enrol_device(
            eid, EnrolRequest(device_id, jwk, "iPhone 15", "SN1", "mdm-1"), "admin-1"
        )
        return device

    async def checkout(self, device_id: str = "dev-1", user: str = "u-1", eid: str = "ent-1", report=None, **kw):
        from lanyard.session.domain import ClientReport

        device = await self.store.get_device(eid, device_id) or await self.enrol(device_id, eid)
        report = report or ClientReport(locker_version=LOCKER_VERSION, sso_extension_installed=True)
        return await self.service.checkout(device, assertion(device_id, user, **kw), report=report)

    async def grant(self, session, version: int = 1, **kw) -> None:
        from lanyard.contracts import events as ev

        payload = {
            "device_session_id": session.device_session_id, "device_id": session.device_id,
            "user_id": session.user_id, "version": version, "apps": ["rover"], "auth_mode": "passcode",
            "inactivity_timeout_s": 60, "max_session_s": 600, "face_allowed": False, "policy_id": "p-1",
        }  # fmt: skip
        payload.update(kw)
        event = ev.EntitlementGranted(
            enterprise_id=session.enterprise_id, producer="policy", payload=ev.EntitlementGrantedPayload(**payload)
        )
        await self.service.entitlement_granted(event)

    async def session(self, dsid: str, eid: str = "ent-1"):
        return await self.store.get_session(eid, dsid)

    def sibling(self) -> SessionService:
        """A second instance over the same store (another process of the service)."""
        return SessionService(
            store=self.store, publisher=self.publisher, clock=self.clock, assertions=FakeAssertions(),
            proofs=FakeProofs(), faces=FakeFaces(), settings=self.service.settings,
        )  # fmt: skip


@pytest.fixture
def world() -> World:
    clock = FakeClock()
    store = InMemoryStore(clock)
    publisher = FakePublisher()
    settings = SessionSettings(default_max_session_s=3600, timer_lease_s=30, outbox_grace_s=5)
    service = SessionService(
        store=store, publisher=publisher, clock=clock, assertions=FakeAssertions(), proofs=FakeProofs(),
        faces=FakeFaces(), settings=settings,
    )  # fmt: skip
    return World(clock, store, publisher, service)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def memory_store(clock: FakeClock) -> InMemoryStore:
    return InMemoryStore(clock)
