"""The rebuild from Kafka, pure and over fakes: the fold gives back what the live path stored, and
the startup step rebuilds once, waits for another instance, and fails loudly past its bound."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from lanyard.contracts import events as ev
from lanyard.runtime.rebuild import RebuildTimeout
from lanyard.session.domain import State
from lanyard.session.projection import Projection
from lanyard.session.rebuild import SOURCES, Rebuild


def grant_event(session, version=1, **kw):
    payload = {
        "device_session_id": session.device_session_id, "device_id": session.device_id,
        "user_id": session.user_id, "version": version, "apps": ["rover"], "auth_mode": "passcode",
        "inactivity_timeout_s": 60, "max_session_s": 600, "face_allowed": False, "policy_id": "p-1", **kw,
    }  # fmt: skip
    return ev.EntitlementGranted(
        enterprise_id=session.enterprise_id,
        producer="policy",
        occurred_at=datetime.fromtimestamp(session.checked_out_at + 1, UTC),
        payload=ev.EntitlementGrantedPayload(**payload),
    )


async def live_history(world):
    """Drive the live service through every kind of transition; return what Kafka would hold."""
    grants = []

    async def grant(session, **kw):
        event = grant_event(session, **kw)
        grants.append(event)
        await world.service.entitlement_granted(event)

    closed = await world.checkout("dev-1")
    await grant(closed)
    world.clock.advance(10)
    await world.service.check_in(closed, "user")

    face = await world.checkout("dev-2", user="u-2")
    await grant(face, auth_mode="face", face_allowed=True, inactivity_timeout_s=30, max_session_s=3600)
    world.clock.advance(31)
    assert await world.service.fire_due_timers() == 1  # locked
    challenge, _ = await world.service.face_challenge(await world.session(face.device_session_id))
    await world.service.face_result(
        await world.session(face.device_session_id), world.face_result(challenge, subject="u-2")
    )
    world.clock.advance(5)
    challenge, _ = await world.service.face_challenge(await world.session(face.device_session_id))
    await world.service.face_result(
        await world.session(face.device_session_id), world.face_result(challenge, subject="u-2", match=0.1)
    )

    passcode = await world.checkout("dev-3", user="u-3")
    await world.enrol("dev-4")
    await world.service.retire_device("ent-1", "dev-4", "admin-1")
    return [*world.publisher.events, *grants], (closed, face, passcode)


async def test_the_fold_gives_back_what_the_live_path_stored(world):
    events, sessions = await live_history(world)
    projection = Projection(default_max_session_s=3600)
    for event in events + events:  # every record twice: redeliveries change nothing
        projection.apply(event)
    rebuilt = projection.result(world.clock.now())

    stored = {k: v for k, v in world.store.sessions.items()}
    assert {(s.enterprise_id, s.device_session_id): s for s in rebuilt.sessions} == stored
    assert {(d.enterprise_id, d.device_id): d for d in rebuilt.devices} == world.store.devices
    face = stored[("ent-1", sessions[1].device_session_id)]
    assert face.state is State.ACTIVE and face.sequence == 3 and face.face_failures == 1 and face.last_face_at
    assert rebuilt.ended == [] and rebuilt.skipped == 0 and rebuilt.events == len(events)


async def test_sso_activity_moves_the_inactivity_clock_of_an_active_session(world):
    session = await world.checkout()
    projection = Projection(default_max_session_s=3600)
    for event in [*world.publisher.events, grant_event(session)]:
        projection.apply(event)
    sso = ev.AuthorizationGranted.model_validate(
        {
            "enterprise_id": "ent-1", "producer": "idp",
            "occurred_at": datetime.fromtimestamp(session.checked_out_at + 40, UTC),
            "payload": {"device_session_id": session.device_session_id, "client_id": "rover", "user_id": "u-1",
                        "sid": "sid-1", "via": "sso_extension"},
        }
    )  # fmt: skip
    projection.apply(sso)
    (rebuilt,) = projection.result(session.checked_out_at + 50).sessions
    assert rebuilt.last_activity_at == session.checked_out_at + 40


async def test_sso_activity_older_than_the_lookback_is_not_read(world, clock, memory_store):
    session = await world.checkout()
    events = [*world.publisher.events, grant_event(session)]
    for minutes in (1, 2):  # SSO 1 and 2 minutes after checkout, read 31 minutes after it
        events.append(
            ev.AuthorizationGranted.model_validate(
                {
                    "enterprise_id": "ent-1", "producer": "idp",
                    "occurred_at": datetime.fromtimestamp(session.checked_out_at + 60 * minutes, UTC),
                    "payload": {"device_session_id": session.device_session_id, "client_id": "rover",
                                "user_id": "u-1", "sid": "sid-1", "via": "sso_extension"},
                }
            )
        )  # fmt: skip
    by_topic: dict[str, list] = {}
    for event in events:
        by_topic.setdefault(event.topic.name, []).append(event)
    clock.t = session.checked_out_at + 60 * 31
    history = FakeHistory(by_topic)
    step = Rebuild(
        store=memory_store, marker=FakeMarker(), history=history, clock=clock, default_max_session_s=3600,
        timeout_s=5, activity_lookback_s=120,
    )  # fmt: skip
    await step.run()
    restored = await memory_store.get_session("ent-1", session.device_session_id)
    assert restored.last_activity_at == session.checked_out_at  # nothing within the last 2 minutes

    clock.t = session.checked_out_at + 60 * 3  # now the second one is within the lookback
    await memory_store.mutate("ent-1", session.device_session_id, lambda s: None)
    memory_store.sessions.clear()
    await Rebuild(
        store=memory_store, marker=FakeMarker(), history=history, clock=clock, default_max_session_s=3600,
        timeout_s=5, activity_lookback_s=120,
    ).run()  # fmt: skip
    restored = await memory_store.get_session("ent-1", session.device_session_id)
    assert restored.last_activity_at == session.checked_out_at + 60 * 2


async def test_a_grant_after_checkin_is_ignored_and_a_revoked_live_session_is_reported(world):
    closed = await world.checkout("dev-1")
    world.clock.advance(5)
    await world.service.check_in(closed, "user")
    live = await world.checkout("dev-2")
    late = grant_event(closed)
    late = late.model_copy(update={"occurred_at": datetime.fromtimestamp(world.clock.now() + 60, UTC)})
    revoked = ev.EntitlementRevoked.model_validate(
        {"enterprise_id": "ent-1", "producer": "policy", "payload": {
            "device_session_id": live.device_session_id, "device_id": "dev-2", "user_id": "u-1",
            "reason": "policy_changed"}}
    )  # fmt: skip
    projection = Projection(default_max_session_s=3600)
    for event in [*world.publisher.events, late, revoked]:
        projection.apply(event)
    rebuilt = {s.device_session_id: s for s in projection.result(world.clock.now()).sessions}
    assert rebuilt[closed.device_session_id].entitlement is None
    assert projection.result(world.clock.now()).ended == [("ent-1", live.device_session_id)]


async def test_records_of_a_session_whose_checkout_is_past_retention_are_skipped(world):
    session = await world.checkout()
    await world.service.check_in(session, "user")
    projection = Projection(default_max_session_s=3600)
    for event in world.publisher.events:
        if event.type != "session.device_checked_out.v1":
            projection.apply(event)
    rebuilt = projection.result(world.clock.now())
    assert rebuilt.sessions == [] and rebuilt.skipped == 1 and len(rebuilt.devices) == 1


async def test_org_settings_latest_record_wins():
    projection = Projection(default_max_session_s=3600)
    for flag in (True, False, True):
        projection.apply(
            ev.OrgSettingsChanged(
                enterprise_id="ent-1",
                producer="policy",
                payload=ev.OrgSettingsChangedPayload(checkin_previous_on_checkout=flag, face_max_failures=2),
            )
        )
    settings = projection.result(0).org_settings["ent-1"]
    assert settings.checkin_previous_on_checkout and settings.face_max_failures == 2


# ------------------------------------------------------------------------------ the startup step


class FakeMarker:
    def __init__(self) -> None:
        self.summary = None
        self.holder: str | None = None

    async def complete(self) -> bool:
        return self.summary is not None

    async def acquire(self, owner, ttl_s) -> bool:
        if self.holder is None:
            self.holder = owner
        return self.holder == owner

    async def mark_complete(self, summary) -> None:
        self.summary = dict(summary)

    async def release(self, owner) -> None:
        if self.holder == owner:
            self.holder = None


class FakeHistory:
    def __init__(self, records: dict[str, list]) -> None:
        self.records = records
        self.reads: list[str] = []

    async def read(self, topic, since=None):
        self.reads.append(topic)
        for event in self.records.get(topic, []):
            if since is not None and event.occurred_at.timestamp() < since:
                continue
            await asyncio.sleep(0)
            yield event


def rebuild(store, marker, history, clock, timeout_s=5.0):
    return Rebuild(
        store=store, marker=marker, history=history, clock=clock, default_max_session_s=3600, timeout_s=timeout_s,
        wait_poll_s=0.01,
    )  # fmt: skip


async def test_a_lost_state_is_rebuilt_once_with_timers_and_without_events(world, clock, memory_store):
    events, _ = await live_history(world)
    by_topic: dict[str, list] = {}
    for event in events:
        by_topic.setdefault(event.topic.name, []).append(event)
    clock.t = world.clock.now()
    store, marker, history = memory_store, FakeMarker(), FakeHistory(by_topic)

    report = await rebuild(store, marker, history, clock).run()
    assert history.reads == [t.name for t in SOURCES]
    assert report.devices == 4 and report.sessions == 3 and report.live == 2 and report.written == 7
    assert marker.summary["sessions"] == 3 and marker.holder is None
    assert store.sessions == world.store.sessions and store.devices == world.store.devices
    assert store.timers == world.store.timers  # an idle session still expires
    assert store.current == world.store.current
    assert store.outbox == {}  # nothing to publish again

    assert await rebuild(store, marker, history, clock).run() is None  # the marker says complete
    assert history.reads == [t.name for t in SOURCES]


async def test_what_the_store_holds_is_newer_and_stays(world, clock, memory_store):
    events, (_, _, passcode) = await live_history(world)
    clock.t = world.clock.now()
    store = memory_store
    newer = replace(await world.session(passcode.device_session_id), last_activity_at=clock.now())
    await store.restore([], [newer], {})
    by_topic: dict[str, list] = {}
    for event in events:
        by_topic.setdefault(event.topic.name, []).append(event)
    await rebuild(store, FakeMarker(), FakeHistory(by_topic), clock).run()
    assert store.sessions[("ent-1", passcode.device_session_id)] == newer


async def test_another_instance_rebuilding_is_waited_for(clock, memory_store):
    marker, history = FakeMarker(), FakeHistory({})
    marker.holder = "other"

    async def other_finishes():
        await asyncio.sleep(0.05)
        await marker.mark_complete({"events": 0})
        marker.holder = None

    finishing = asyncio.create_task(other_finishes())
    assert await rebuild(memory_store, marker, history, clock).run() is None
    await finishing
    assert history.reads == []


async def test_past_its_bound_the_rebuild_fails_startup(clock, memory_store):
    marker = FakeMarker()
    marker.holder = "stuck"
    with pytest.raises(RebuildTimeout, match=r"did not finish within 0\.1s"):
        await rebuild(memory_store, marker, FakeHistory({}), clock, timeout_s=0.1).run()


async def test_a_fresh_system_rebuilds_nothing_and_is_marked_complete(clock, memory_store):
    marker = FakeMarker()
    report = await rebuild(memory_store, marker, FakeHistory({}), clock).run()
    assert report.events == 0 and report.written == 0 and await marker.complete()


async def test_a_live_session_whose_entitlement_ended_is_checked_in_after_the_rebuild(world):
    session = await world.checkout()
    revoked = ev.EntitlementRevoked.model_validate(
        {"enterprise_id": "ent-1", "producer": "policy", "payload": {
            "device_session_id": session.device_session_id, "device_id": "dev-1", "user_id": "u-1",
            "reason": "policy_changed"}}
    )  # fmt: skip
    by_topic: dict[str, list] = {}
    for event in [*world.publisher.events, revoked]:
        by_topic.setdefault(event.topic.name, []).append(event)
    for held in (world.store.devices, world.store.sessions, world.store.current, world.store.timers):
        held.clear()  # Redis lost it (and the checkin that was waiting in the outbox)
    published = len(world.publisher.events)

    step = rebuild(world.store, FakeMarker(), FakeHistory(by_topic), world.clock)
    await step.run()
    assert (await world.session(session.device_session_id)).live
    assert len(world.publisher.events) == published  # the rebuild itself publishes nothing
    await step.settle(world.service.check_in_ended)
    assert (await world.session(session.device_session_id)).closed_reason == "entitlement_revoked"
    (checked_in,) = world.publisher.events[published:]
    assert checked_in.type == "session.device_checked_in.v1" and checked_in.payload.sequence == 2


async def test_the_fold_keeps_the_highest_locker_options_and_the_rebuild_never_lowers_them(world, clock, memory_store):
    from lanyard.session.domain import LockerOptions

    def options(version: int, hide: bool) -> ev.LockerOptionsChanged:
        payload = ev.LockerOptionsChangedPayload(version=version, hide_password_autofill_prompt=hide)
        return ev.LockerOptionsChanged(enterprise_id="ent-1", producer="policy", payload=payload)

    projection = Projection(default_max_session_s=3600)
    for event in (options(1, False), options(3, True), options(2, False)):
        projection.apply(event)
    assert projection.result(clock.now()).locker_options == {"ent-1": LockerOptions(3, True, True)}

    await memory_store.put_locker_options("ent-1", LockerOptions(4, False, True))  # newer than the topic
    history = FakeHistory({"lanyard.policy-config.v1": [options(3, True)]})
    await Rebuild(
        store=memory_store, marker=FakeMarker(), history=history, clock=clock, default_max_session_s=3600,
        timeout_s=5, activity_lookback_s=120,
    ).run()  # fmt: skip
    assert (await memory_store.get_locker_options("ent-1")).version == 4
