"""Entitlement use cases over an in-memory read model and sink: idempotency, monotonic CLOSED, seats."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from lanyard.contracts import Event, decode_event
from lanyard.contracts import events as ev
from lanyard.policy import domain as d
from lanyard.policy.handlers import PolicyHandlers
from lanyard.policy.ports import CheckoutView
from lanyard.policy.service import Entitlements

NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
SNAPSHOT = d.Snapshot(
    policies=(d.UserPolicy("p", "P", True, users=("alice", "bob")),),
    deployments=(d.AppDeployment("rover", users=("alice", "bob")),),
    licences=(d.Licence("l", "sso", NOW - timedelta(days=1), NOW + timedelta(days=1), seats=1),),
    org=d.OrgSettings(password_autofill_and_sso=True),
    cloud_state="established",
    app_profiles={"rover": d.AppProfile("rover")},
)


HOLDS = {"sso": lambda s: s.granted, "apa": lambda s: s.holds_apa_seat}


class FakeReadModel:
    """Honours the parts of `ports.ReadModel` the entitlement use cases call."""

    def __init__(self) -> None:
        self.snap = SNAPSHOT
        self.dir = {"alice": d.DirectoryUser("alice"), "bob": d.DirectoryUser("bob")}
        self.sessions: dict[str, d.LiveSession] = {}
        self.closed: set[str] = set()
        self.pending_events: dict[str, bytes] = {}
        self.seats: dict[str, dict[str, int]] = {"sso": {}, "apa": {}}
        self.views = 0
        self.device_reports: dict[str, list[d.DeviceReport]] = {}

    @contextlib.asynccontextmanager
    async def lock(self, enterprise_id: str) -> AsyncIterator[None]:
        yield

    async def record_devices(self, e: str, reports: Sequence[d.DeviceReport]) -> None:
        self.device_reports.setdefault(e, []).extend(reports)

    async def checkout_view(self, e: str, checkouts: Sequence[tuple[str, str]]) -> CheckoutView:
        self.views += 1
        sso, apa = self.seats["sso"], self.seats["apa"]
        users = {u for u, _ in checkouts}
        dsids = [dsid for _, dsid in checkouts]
        return CheckoutView(
            users={u: self.dir.get(u) for u in users},
            snapshot=self.snap,
            seats=d.SeatCount(len(sso), frozenset(users & set(sso)), len(apa), frozenset(users & set(apa))),
            existing={i: self.sessions[i] for i in dsids if i in self.sessions},
            pending={i: self.pending_events[i] for i in dsids if i in self.pending_events},
            closed=frozenset(i for i in dsids if i in self.closed),
        )

    async def session(self, e: str, dsid: str) -> d.LiveSession | None:
        return self.sessions.get(dsid)

    async def is_closed(self, e: str, dsid: str) -> bool:
        return dsid in self.closed

    async def clear_pending(self, e: str, *dsids: str) -> None:
        for dsid in dsids:
            self.pending_events.pop(dsid, None)

    async def save_sessions(self, e: str, changes) -> None:
        for before, after, pending in changes:
            await self.save_session(e, before, after, pending)

    async def save_session(
        self, e: str, before: d.LiveSession | None, after: d.LiveSession, pending: bytes | None = None
    ) -> None:
        self.sessions[after.device_session_id] = after
        if pending is not None:
            self.pending_events[after.device_session_id] = pending
        for kind, holds in HOLDS.items():
            if holds(after) and not (before and holds(before)):
                self.seats[kind][after.user_id] = self.seats[kind].get(after.user_id, 0) + 1
            if before and holds(before) and not holds(after):
                self._release(kind, after.user_id)

    def _release(self, kind: str, user_id: str) -> None:
        self.seats[kind][user_id] -= 1
        if not self.seats[kind][user_id]:
            del self.seats[kind][user_id]

    async def close_session(self, e: str, dsid: str, before: d.LiveSession | None) -> None:
        self.closed.add(dsid)
        self.sessions.pop(dsid, None)
        for kind, holds in HOLDS.items():
            if before and holds(before):
                self._release(kind, before.user_id)

    async def live_sessions(self, e: str, user_id: str | None = None) -> list[d.LiveSession]:
        return [s for s in self.sessions.values() if user_id in (None, s.user_id)]

    async def users(self, e: str, ids: Sequence[str]) -> Mapping[str, d.DirectoryUser | None]:
        return {i: self.dir.get(i) for i in ids}

    async def snapshot(self, e: str) -> d.Snapshot:
        return self.snap

    async def seat_holders(self, e: str, kind: str = "sso") -> Mapping[str, int]:
        return dict(self.seats[kind])


class FakeSink:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.fail_for: set[str] = set()

    async def publish(self, event: Event) -> None:
        if event.payload.device_session_id in self.fail_for:
            raise ConnectionError("broker unreachable")
        self.events.append(event)


def checked_out(dsid: str, user: str = "alice") -> ev.DeviceCheckedOut:
    payload = ev.DeviceCheckedOutPayload(
        device_session_id=dsid, device_id=f"dev-{dsid}", user_id=user, sequence=1, amr=("pwd", "otp"),
        checked_out_at=NOW, device_jkt="j",
    )  # fmt: skip
    return ev.DeviceCheckedOut(enterprise_id="e1", producer="session", payload=payload)


def checked_in(dsid: str, user: str = "alice") -> ev.DeviceCheckedIn:
    payload = ev.DeviceCheckedInPayload(
        device_session_id=dsid, device_id=f"dev-{dsid}", user_id=user, sequence=2, reason="user"
    )
    return ev.DeviceCheckedIn(enterprise_id="e1", producer="session", payload=payload)


def build() -> tuple[FakeReadModel, FakeSink, Entitlements]:
    store, sink = FakeReadModel(), FakeSink()
    return store, sink, Entitlements(store, sink, lambda: NOW)


async def test_redelivered_checkout_publishes_once():
    _store, sink, ent = build()
    await ent.on_checked_out(checked_out("ds1"))
    await ent.on_checked_out(checked_out("ds1"))
    assert [e.type for e in sink.events] == ["entitlement.granted.v1"]
    assert sink.events[0].payload.version == 1


async def test_checkin_revokes_once_and_frees_the_seat():
    _store, sink, ent = build()
    await ent.on_checked_out(checked_out("ds1"))
    await ent.on_checked_in(checked_in("ds1"))
    await ent.on_checked_in(checked_in("ds1"))
    await ent.on_checked_out(checked_out("ds1"))  # arrives late: CLOSED is terminal
    assert [e.type for e in sink.events] == ["entitlement.granted.v1", "entitlement.revoked.v1"]
    await ent.on_checked_out(checked_out("ds2", "bob"))  # the single seat is free again
    assert sink.events[-1].type == "entitlement.granted.v1"


async def test_second_user_is_denied_when_the_only_seat_is_taken():
    _store, sink, ent = build()
    await ent.on_checked_out(checked_out("ds1"))
    await ent.on_checked_out(checked_out("ds2", "bob"))
    assert sink.events[-1].type == "entitlement.denied.v1"
    assert sink.events[-1].payload.reason == "sso_seats_exceeded"


async def test_a_failed_publish_keeps_the_announcement_and_the_retry_publishes_that_same_event():
    store, sink, ent = build()
    sink.fail_for = {"ds1"}
    with pytest.raises(ConnectionError):
        await ent.on_checked_out(checked_out("ds1"))
    assert sink.events == []
    saved = decode_event(store.pending_events["ds1"])  # the decision is saved with its announcement
    assert saved.type == "entitlement.granted.v1"
    sink.fail_for = set()
    await ent.on_checked_out(checked_out("ds1"))  # the consumer handles the record again
    assert [e.payload.version for e in sink.events] == [1]
    assert sink.events[0].event_id == saved.event_id, "the same event, so consumers deduplicate it"
    assert store.pending_events == {}
    await ent.on_checked_out(checked_out("ds1"))  # and once announced, never again
    assert len(sink.events) == 1


async def test_reevaluation_publishes_only_changes_and_records_only_acknowledged_ones():
    store, sink, ent = build()
    store.snap = replace(SNAPSHOT, licences=(replace(SNAPSHOT.licences[0], seats=5),))
    await ent.on_checked_out(checked_out("ds1"))
    await ent.on_checked_out(checked_out("ds2", "bob"))
    assert await ent.reevaluate("e1", "policy_changed") == 0
    store.snap = replace(store.snap, policies=())
    sink.fail_for = {"ds2"}
    try:
        await ent.reevaluate("e1", "policy_changed")
    except ConnectionError:
        pass
    assert store.sessions["ds1"].state == "ended" and store.sessions["ds2"].state == "granted"
    sink.fail_for = set()
    assert await ent.reevaluate("e1", "policy_changed") == 1
    revoked = [e for e in sink.events if e.type == "entitlement.revoked.v1"]
    assert [(e.payload.device_session_id, e.payload.reason) for e in revoked] == [
        ("ds1", "policy_changed"),
        ("ds2", "policy_changed"),
    ]
    assert store.seats == {"sso": {}, "apa": {}}


async def test_a_run_of_checkouts_is_decided_with_one_read_as_if_one_at_a_time():
    store, sink, ent = build()  # one SSO seat
    store.dir["carol"] = d.DirectoryUser("carol")
    run = [
        checked_out("ds1"),
        checked_out("ds2", "bob"),
        checked_out("ds3"),
        checked_out("ds1"),
        checked_out("ds4", "carol"),
    ]
    await ent.on_checked_out_many(run)
    assert store.views == 1
    decided = [(e.payload.device_session_id, e.type) for e in sink.events]
    assert decided == [
        ("ds1", "entitlement.granted.v1"),
        ("ds2", "entitlement.denied.v1"),  # the seat went to alice a moment earlier
        ("ds3", "entitlement.granted.v1"),  # alice's second device: the seat she holds
        ("ds4", "entitlement.denied.v1"),
    ]
    assert store.seats["sso"] == {"alice": 2}
    await ent.on_checked_out_many(run)  # the whole run redelivered: nothing new
    assert len(sink.events) == 4


async def test_a_failed_publish_in_a_run_keeps_only_that_announcement_for_the_retry():
    store, sink, ent = build()
    store.snap = replace(SNAPSHOT, licences=(replace(SNAPSHOT.licences[0], seats=5),))
    sink.fail_for = {"ds2"}
    with pytest.raises(ConnectionError):
        await ent.on_checked_out_many([checked_out("ds1"), checked_out("ds2", "bob")])
    assert [e.payload.device_session_id for e in sink.events] == ["ds1"]
    assert set(store.pending_events) == {"ds2"}
    sink.fail_for = set()
    await ent.on_checked_out(checked_out("ds2", "bob"))  # the runtime's one-by-one retry
    assert [e.payload.device_session_id for e in sink.events] == ["ds1", "ds2"] and store.pending_events == {}


class RecordingEntitlements:
    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str]]] = []

    async def on_checked_out_many(self, events):
        self.calls.append(("run", [e.payload.device_session_id for e in events]))

    async def on_checked_out(self, event):
        self.calls.append(("run", [event.payload.device_session_id]))

    async def on_checked_in(self, event):
        self.calls.append(("checkin", [event.payload.device_session_id]))


async def test_a_batch_is_split_by_enterprise_each_in_order():
    recorder = RecordingEntitlements()
    store = FakeReadModel()
    handlers = PolicyHandlers(store, recorder)
    other = checked_out("b1").model_copy(update={"enterprise_id": "e2"})
    batch = [checked_out("a1"), checked_out("a2"), other, checked_in("a1"), checked_out("a3")]
    await handlers.on_device_sessions([(event, None) for event in batch])
    # e1's events in their order (its checkin splits its runs); e2's run after them.
    assert recorder.calls == [("run", ["a1", "a2"]), ("checkin", ["a1"]), ("run", ["a3"]), ("run", ["b1"])]
    # Every checkout's device report is kept for readiness, per enterprise, in one write each.
    assert {e: len(r) for e, r in store.device_reports.items()} == {"e1": 3, "e2": 1}


async def test_interleaved_checkouts_of_several_enterprises_make_one_run_each():
    recorder = RecordingEntitlements()
    handlers = PolicyHandlers(FakeReadModel(), recorder)
    other = [checked_out(f"b{i}").model_copy(update={"enterprise_id": "e2"}) for i in (1, 2)]
    batch = [checked_out("a1"), other[0], checked_out("a2"), other[1]]
    await handlers.on_device_sessions([(event, None) for event in batch])
    assert recorder.calls == [("run", ["a1", "a2"]), ("run", ["b1", "b2"])]
