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

    @contextlib.asynccontextmanager
    async def lock(self, enterprise_id: str) -> AsyncIterator[None]:
        yield

    async def checkout_view(self, e: str, user_id: str, dsid: str) -> CheckoutView:
        sso, apa = self.seats["sso"], self.seats["apa"]
        seats = d.Seats.counted(len(sso), user_id in sso, len(apa), user_id in apa)
        return CheckoutView(self.dir.get(user_id), self.snap, seats, self.sessions.get(dsid), dsid in self.closed)

    async def session(self, e: str, dsid: str) -> d.LiveSession | None:
        return self.sessions.get(dsid)

    async def is_closed(self, e: str, dsid: str) -> bool:
        return dsid in self.closed

    async def pending(self, e: str, dsid: str) -> bytes | None:
        return self.pending_events.get(dsid)

    async def clear_pending(self, e: str, dsid: str) -> None:
        self.pending_events.pop(dsid, None)

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
