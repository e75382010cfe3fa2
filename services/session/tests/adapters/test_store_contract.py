"""One suite for both SessionStore implementations: the in-memory fake and the Redis adapter."""

import pytest

from lanyard.contracts import Subject
from lanyard.contracts import events as ev
from lanyard.session import domain
from lanyard.session.adapters.redis_store import RedisSessionStore
from lanyard.session.domain import Entitlement, OrgSettings, State
from lanyard.session.ports import Change, SessionConflict


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.integration)])
def store(request, clock):
    if request.param == "memory":
        return request.getfixturevalue("memory_store")
    return RedisSessionStore(request.getfixturevalue("redis_client"), clock, outbox_grace_s=5.0)


def new_session(clock, dsid="ds-0001", device="dev-1", eid="ent-1"):
    step = domain.start(
        enterprise_id=eid, device_session_id=dsid, device_id=device, user_id="u-1", device_jkt="jkt",
        amr=("pwd", "otp"), now=clock.now(), default_max_session_s=3600,
    )  # fmt: skip
    event = ev.DeviceCheckedOut(
        enterprise_id=eid, producer="session",
        payload=ev.DeviceCheckedOutPayload(
            device_session_id=dsid, device_id=device, user_id="u-1", sequence=1, amr=("pwd", "otp"),
            checked_out_at="2027-01-01T00:00:00Z", device_jkt="jkt",
        ),
    )  # fmt: skip
    return step.session, event


async def open_one(store, clock, **kw):
    session, event = new_session(clock, **kw)
    return await store.open(session.enterprise_id, session.device_id, lambda prev: Change((session,), (event,)))


async def test_open_sets_the_current_session_and_refuses_while_live(store, clock):
    change = await open_one(store, clock)
    assert await store.current_session_id("ent-1", "dev-1") == "ds-0001"
    assert [s.device_session_id for s in await store.list_live("ent-1")] == ["ds-0001"]

    def refuse(prev):
        assert prev is not None and prev.device_session_id == "ds-0001"
        raise SessionConflict(prev.device_session_id)

    with pytest.raises(SessionConflict):
        await store.open("ent-1", "dev-1", refuse)
    assert await store.get_session("ent-1", "ds-0001") == change.sessions[0]
    assert await store.list_live("ent-2") == []


async def test_closing_clears_the_pointer_the_live_index_and_the_timers(store, clock):
    await open_one(store, clock)
    assert len(await store.claim_due_timers(clock.now() + 3600, 30, 10)) == 1  # the default max-session timer
    closed = await store.mutate(
        "ent-1", "ds-0001", lambda s: Change((domain.check_in(s, clock.now(), "user").session,))
    )
    assert closed.sessions[0].state is State.CLOSED
    assert await store.current_session_id("ent-1", "dev-1") is None
    assert await store.list_live("ent-1") == []
    assert await store.claim_due_timers(clock.now() + 10**6, 30, 10) == []


async def test_closing_a_session_the_device_no_longer_points_at_leaves_the_pointer_alone(store, clock):
    await open_one(store, clock, dsid="ds-0001")
    stray, _ = new_session(clock, dsid="ds-0002")  # a second live session of dev-1, as a rebuild may leave
    assert await store.restore([], [stray], {}) == 1
    assert await store.current_session_id("ent-1", "dev-1") == "ds-0001"

    def check_in(s):
        return Change((domain.check_in(s, clock.now(), "user").session,))

    await store.mutate("ent-1", "ds-0002", check_in)
    assert await store.current_session_id("ent-1", "dev-1") == "ds-0001"  # still the device's session
    await store.mutate("ent-1", "ds-0001", check_in)
    assert await store.current_session_id("ent-1", "dev-1") is None


async def test_a_timer_is_claimed_once_and_comes_back_after_its_lease(store, clock):
    await open_one(store, clock)
    due = clock.now() + 3600
    assert await store.claim_due_timers(due - 1, 30, 10) == []
    [ref] = await store.claim_due_timers(due, 30, 10)
    assert (ref.enterprise_id, ref.device_session_id, ref.kind) == ("ent-1", "ds-0001", "max_session")
    assert await store.claim_due_timers(due + 29, 30, 10) == []
    assert len(await store.claim_due_timers(due + 30, 30, 10)) == 1


async def test_a_no_change_decision_restores_the_real_due_time(store, clock):
    await open_one(store, clock)
    await store.mutate(
        "ent-1", "ds-0001",
        lambda s: Change((domain.apply_entitlement(s, Entitlement(1, "passcode", 60, 600, False)),)),
    )  # fmt: skip
    [ref] = await store.claim_due_timers(clock.now() + 60, 1000, 10)
    assert ref.kind == "inactivity"
    assert await store.mutate("ent-1", "ds-0001", lambda s: None) is None
    assert [r.kind for r in await store.claim_due_timers(clock.now() + 60, 30, 10)] == ["inactivity"]


async def test_unknown_session_mutates_nothing(store, clock):
    assert await store.mutate("ent-1", "missing", lambda s: pytest.fail("decide called")) is None


async def test_a_device_s_unacknowledged_events_are_found_and_a_failed_relay_puts_them_back(store, clock):
    session, event = new_session(clock)
    event = event.model_copy(update={"subject": Subject(device_id="dev-1", device_session_id="ds-0001")})
    await store.open("ent-1", "dev-1", lambda prev: Change((session,), (event,)))
    assert [e.event_id for e in await store.pending_events("ent-1", "dev-1")] == [event.event_id]
    assert await store.pending_events("ent-1", "dev-2") == [] and await store.pending_events("ent-2", "dev-1") == []
    [claimed] = await store.claim_outbox(clock.now() + 5, 30, 10)
    await store.outbox_later([claimed], clock.now() + 7)  # the broker refused it: back soon, not after the lease
    assert await store.claim_outbox(clock.now() + 6.9, 30, 10) == []
    assert [e.event_id for e in await store.claim_outbox(clock.now() + 7.1, 30, 10)] == [event.event_id]
    assert [e.event_id for e in await store.pending_events("ent-1", "dev-1")] == [event.event_id]  # still unacked
    await store.outbox_done(event)
    assert await store.pending_events("ent-1", "dev-1") == []
    assert await store.claim_outbox(clock.now() + 100, 30, 10) == []


async def test_outbox_waits_for_the_grace_period_and_is_emptied_when_done(store, clock):
    change = await open_one(store, clock)
    assert await store.claim_outbox(clock.now(), 30, 10) == []
    [event] = await store.claim_outbox(clock.now() + 5, 30, 10)
    assert event.event_id == change.events[0].event_id and event.type == "session.device_checked_out.v1"
    assert await store.claim_outbox(clock.now() + 6, 30, 10) == []  # leased to the first claimer
    await store.outbox_done(event)
    assert await store.claim_outbox(clock.now() + 100, 30, 10) == []


async def test_single_use_values_challenges_settings_and_answers(store, clock):
    assert await store.first_use("ent-1", "assertion", "jti-1", 60)
    assert not await store.first_use("ent-1", "assertion", "jti-1", 60)
    assert await store.first_use("ent-2", "assertion", "jti-1", 60)

    challenge = "c" * 43
    await store.put_challenge("ent-1", challenge, "ds-0001", 60)
    assert await store.take_challenge("ent-2", challenge) is None
    assert await store.take_challenge("ent-1", challenge) == "ds-0001"
    assert await store.take_challenge("ent-1", challenge) is None

    assert await store.get_org_settings("ent-1") == OrgSettings()
    await store.put_org_settings("ent-1", OrgSettings(face_max_failures=2))
    assert (await store.get_org_settings("ent-1")).face_max_failures == 2


async def test_a_session_is_read_with_its_proofs_replay_mark(store, clock):
    # The Locker call's session and the proof's single use in one read: the first use of a
    # replay key says so, every later one (same enterprise) does not, whether or not the session
    # exists; another enterprise's mark is its own.
    change = await open_one(store, clock)
    session, first = await store.get_session_marking_proof("ent-1", "ds-0001", "jkt:jti-0001", 120)
    assert (session, first) == (change.sessions[0], True)
    assert await store.get_session_marking_proof("ent-1", "ds-0001", "jkt:jti-0001", 120) == (session, False)
    assert await store.get_session_marking_proof("ent-1", "ds-none", "jkt:jti-0002", 120) == (None, True)
    assert await store.get_session_marking_proof("ent-1", "ds-none", "jkt:jti-0002", 120) == (None, False)
    assert (await store.get_session_marking_proof("ent-2", "ds-0001", "jkt:jti-0001", 120))[1] is True


async def test_devices_round_trip(store, clock):
    device = domain.Device("ent-1", "dev-1", {"kty": "EC", "crv": "P-256", "x": "x", "y": "y"}, "jkt", "m", "s", "d")
    await store.put_device(device, [])
    assert await store.get_device("ent-1", "dev-1") == device
    assert await store.list_devices("ent-1") == [device]
    assert await store.list_devices("ent-2") == []


async def test_restore_writes_what_is_missing_with_timers_and_pointer_and_no_events(store, clock):
    live, _ = new_session(clock, dsid="ds-live", device="dev-1")
    old, _ = new_session(clock, dsid="ds-old", device="dev-2")
    closed = domain.check_in(old, clock.now() - 24 * 3600, "user").session  # a day before the loss
    settings = OrgSettings(checkin_previous_on_checkout=True)
    assert await store.restore([], [live, closed], {"ent-1": settings}) == 3
    assert await store.get_session("ent-1", "ds-live") == live
    assert await store.get_session("ent-1", "ds-old") == closed
    if isinstance(store, RedisSessionStore):
        left = await store._redis.ttl("session:ent-1:ds:ds-old")
        assert 6 * 24 * 3600 - 5 <= left <= 6 * 24 * 3600  # kept as long as it would have been
    assert await store.current_session_id("ent-1", "dev-1") == "ds-live"
    assert await store.current_session_id("ent-1", "dev-2") is None
    assert [s.device_session_id for s in await store.list_live("ent-1")] == ["ds-live"]
    assert await store.get_org_settings("ent-1") == settings
    assert await store.claim_outbox(clock.now() + 3600, 30, 10) == []
    due = await store.claim_due_timers(clock.now() + 3600, 30, 10)
    assert [(t.device_session_id, t.kind) for t in due] == [("ds-live", "max_session")]

    newer = domain.lock(domain.apply_entitlement(live, Entitlement(2, "face", 60, 600, True)), clock.now()).session
    await store.mutate("ent-1", "ds-live", lambda s: Change((newer,)))
    assert await store.restore([], [live], {"ent-1": OrgSettings()}) == 0  # the store's records are newer
    assert await store.get_session("ent-1", "ds-live") == newer
    assert await store.get_org_settings("ent-1") == settings


async def test_locker_options_keep_the_highest_version_and_parked_events_wait_in_the_outbox(store, clock):
    from lanyard.session.domain import LockerOptions

    assert await store.get_locker_options("ent-1") == LockerOptions()
    assert await store.put_locker_options("ent-1", LockerOptions(2, True, False)) is True
    assert await store.put_locker_options("ent-1", LockerOptions(1, False, True)) is False
    assert await store.put_locker_options("ent-1", LockerOptions(2, False, True)) is False
    assert await store.get_locker_options("ent-1") == LockerOptions(2, True, False)
    assert await store.get_locker_options("ent-2") == LockerOptions()
    await store.put_org_settings("ent-1", OrgSettings(face_max_failures=2))
    assert await store.get_view_settings("ent-1") == (OrgSettings(face_max_failures=2), LockerOptions(2, True, False))
    assert await store.get_view_settings("ent-2") == (OrgSettings(), LockerOptions())

    refused = ev.CheckoutRefused(
        enterprise_id="ent-1", producer="session",
        payload=ev.CheckoutRefusedPayload(device_id="dev-1", user_id="u-1", reason="locker_update_required",
                                          minimum_locker_version="4.3"),
    )  # fmt: skip
    await store.park([refused])
    [event] = await store.claim_outbox(clock.now() + 5, 30, 10)
    assert event.event_id == refused.event_id
    await store.outbox_done(event)


def _grant(version):
    def decide(s):
        nxt = domain.apply_entitlement(s, Entitlement(version, "passcode", 60, 600, False))
        return Change((nxt,)) if nxt else None

    return decide


async def test_many_mutations_decide_in_order_each_on_the_one_before(store, clock):
    await open_one(store, clock, dsid="ds-a", device="dev-a")
    await open_one(store, clock, dsid="ds-b", device="dev-b")

    def check_in(s):
        return Change((domain.check_in(s, clock.now(), "user").session,))

    results = await store.mutate_many([
        ("ent-1", "ds-a", _grant(2)),
        ("ent-1", "ds-a", _grant(1)),  # older than the grant just decided: no change
        ("ent-1", "ds-b", _grant(1)),
        ("ent-1", "ds-b", check_in),  # decides on the granted session, not the stored one
        ("ent-1", "missing", lambda s: pytest.fail("decide called for an unknown session")),
    ])  # fmt: skip
    assert [r is not None for r in results] == [True, False, True, True, False]
    a, b = await store.get_session("ent-1", "ds-a"), await store.get_session("ent-1", "ds-b")
    assert a.entitlement.version == 2 and a.state is State.ACTIVE
    assert b.entitlement.version == 1 and b.state is State.CLOSED
    assert [s.device_session_id for s in await store.list_live("ent-1")] == ["ds-a"]
    assert await store.current_session_id("ent-1", "dev-a") == "ds-a"
    assert await store.current_session_id("ent-1", "dev-b") is None
    # ds-a's inactivity timer came from its grant; ds-b, closed, has none left.
    refs = await store.claim_due_timers(clock.now() + 60, 30, 10)
    assert [(r.device_session_id, r.kind) for r in refs] == [("ds-a", "inactivity")]


async def test_many_mutations_write_nothing_when_one_decision_fails(store, clock):
    await open_one(store, clock, dsid="ds-a", device="dev-a")

    def refuse(s):
        raise domain.InvalidTransition(s.state, "refuse")

    with pytest.raises(domain.InvalidTransition):
        await store.mutate_many([("ent-1", "ds-a", _grant(1)), ("ent-1", "ds-a", refuse)])
    assert (await store.get_session("ent-1", "ds-a")).entitlement is None


@pytest.mark.integration
async def test_many_mutations_decide_again_when_another_instance_writes_a_session_meanwhile(
    redis_client, redis_url, clock
):
    """Another instance checks a session in between this write's read and its MULTI: the batch
    is decided again on what that instance wrote, never written over it."""
    import redis

    store = RedisSessionStore(redis_client, clock, outbox_grace_s=5.0)
    await open_one(store, clock, dsid="ds-a", device="dev-a")
    key = "session:ent-1:ds:ds-a"
    other = redis.Redis.from_url(redis_url, decode_responses=True)
    seen = []

    def grant_while_other_checks_in(s):
        seen.append(s.state)
        if len(seen) == 1:
            from lanyard.session.adapters.redis_store import session_from_json, session_to_json

            closed = domain.check_in(session_from_json(other.get(key)), clock.now(), "user").session
            other.set(key, session_to_json(closed))
        return _grant(1)(s)

    try:
        [result] = await store.mutate_many([("ent-1", "ds-a", grant_while_other_checks_in)])
    finally:
        other.close()
    assert seen == [State.ACTIVE, State.CLOSED]
    assert result is None  # a CLOSED session ignores the grant
    stored = await store.get_session("ent-1", "ds-a")
    assert stored.state is State.CLOSED and stored.entitlement is None


async def test_a_change_decided_on_the_session_as_read_is_written_once_with_its_effects(store, clock):
    """The checkin's path: decided on the session its caller just read, written with the pointer,
    the live index, the timers and the event's outbox entry, and `decide` runs once (the Redis
    store writes it in one script, no second read)."""
    await open_one(store, clock)
    read = await store.get_session("ent-1", "ds-0001")
    seen = []

    def check_in(s):
        seen.append(s)
        step = domain.check_in(s, clock.now(), "user")
        return Change((step.session,), (_checked_in_event(step.session),))

    change = await store.mutate("ent-1", "ds-0001", check_in, read)
    assert seen == [read]
    assert await store.get_session("ent-1", "ds-0001") == change.sessions[0]
    assert change.sessions[0].state is State.CLOSED
    assert await store.current_session_id("ent-1", "dev-1") is None
    assert await store.list_live("ent-1") == []
    assert await store.claim_due_timers(clock.now() + 10**6, 30, 10) == []
    assert [e.event_id for e in await store.pending_events("ent-1", "dev-1")] == [change.events[0].event_id]


async def test_a_session_that_moved_since_it_was_read_is_decided_again_on_what_is_stored(store, clock):
    """A grant landed between the caller's read and its checkin: the checkin is written on top of
    the grant, never over it."""
    await open_one(store, clock)
    read = await store.get_session("ent-1", "ds-0001")
    await store.mutate("ent-1", "ds-0001", _grant(1))
    seen = []

    def check_in(s):
        seen.append(s)
        return Change((domain.check_in(s, clock.now(), "user").session,))

    change = await store.mutate("ent-1", "ds-0001", check_in, read)
    assert seen[-1].entitlement is not None  # the last decision, the one written, saw the grant
    stored = await store.get_session("ent-1", "ds-0001")
    assert stored == change.sessions[0]
    assert stored.state is State.CLOSED and stored.entitlement is not None


async def test_a_refusal_on_the_session_as_read_is_decided_again_on_what_is_stored(store, clock):
    await open_one(store, clock)
    read = await store.get_session("ent-1", "ds-0001")
    await store.mutate("ent-1", "ds-0001", lambda s: Change((domain.check_in(s, clock.now(), "user").session,)))

    def face(s):  # as `face_result` decides: a closed session is refused
        if not s.live:
            raise domain.InvalidTransition(s.state, "verify a face on")
        return _grant(1)(s)

    with pytest.raises(domain.InvalidTransition):
        await store.mutate("ent-1", "ds-0001", face, read)
    assert (await store.get_session("ent-1", "ds-0001")).state is State.CLOSED


def _checked_in_event(s):
    return ev.DeviceCheckedIn(
        enterprise_id=s.enterprise_id, producer="session",
        subject=Subject(device_id=s.device_id, device_session_id=s.device_session_id),
        payload=ev.DeviceCheckedInPayload(
            device_session_id=s.device_session_id, device_id=s.device_id, user_id=s.user_id,
            sequence=s.sequence, reason="user",
        ),
    )  # fmt: skip


@pytest.mark.integration
async def test_a_checkout_decides_again_when_another_instance_opens_the_device_meanwhile(
    redis_client, redis_url, clock
):
    """Two checkouts of one device race: the one that loses its write decides again on the
    session the other opened (and may refuse), never writing over it."""
    import redis

    from lanyard.session.adapters.redis_store import session_to_json

    store = RedisSessionStore(redis_client, clock, outbox_grace_s=5.0)
    other = redis.Redis.from_url(redis_url, decode_responses=True)
    theirs, _ = new_session(clock, dsid="ds-theirs")
    mine, _ = new_session(clock, dsid="ds-mine")
    seen = []

    def decide(previous):
        seen.append(previous.device_session_id if previous else None)
        if len(seen) == 1:  # the other instance's checkout lands between this read and this write
            other.set("session:ent-1:ds:ds-theirs", session_to_json(theirs))
            other.set("session:ent-1:device:dev-1:current", "ds-theirs")
        if previous is not None and previous.live:
            raise SessionConflict(previous.device_session_id)
        return Change((mine,))

    try:
        with pytest.raises(SessionConflict):
            await store.open("ent-1", "dev-1", decide)
    finally:
        other.close()
    assert seen == [None, "ds-theirs"]
    assert await store.current_session_id("ent-1", "dev-1") == "ds-theirs"
    assert await store.get_session("ent-1", "ds-mine") is None
