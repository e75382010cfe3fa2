"""The policy read model on the real Redis: what it refuses to answer from, and what it writes."""

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from lanyard.contracts import events as ev
from lanyard.policy.adapters.redis_store import RedisReadModel
from lanyard.policy.domain import Grant, LiveSession
from lanyard.runtime.errors import StateLost

pytestmark = pytest.mark.integration

MARKER = "policy:projection"


async def test_nothing_is_decided_from_a_projection_whose_marker_is_gone(redis_client):
    """Found by the soak (redis-flush:policy): between the flush and the restart, the running
    service decided a checkout against the emptied projection and denied the clinician
    (`unknown_user`). With the marker gone, the reads a decision needs raise `StateLost` (held
    and retried by the consumer, 503 on the API) until a rebuild put the marker back."""
    store = RedisReadModel(redis_client, complete_key=MARKER)
    user = ev.UserUpsertedPayload(user_id="alice", username="alice", display_name="A", groups=("nurses",))
    await store.apply(ev.UserUpserted(enterprise_id="e-1", producer="idp", payload=user), offset=0)
    await redis_client.set(MARKER, "{}")
    view = await store.checkout_view("e-1", [("alice", "ds-1")])
    assert view.users["alice"] is not None and view.seats.in_use == 0

    await redis_client.flushdb()
    with pytest.raises(StateLost):
        await store.checkout_view("e-1", [("alice", "ds-2")])
    with pytest.raises(StateLost):
        await store.snapshot("e-1")
    # What only schedules work (the licence clock, also during the rebuild) may still read.
    assert (await store.snapshot("e-1", complete=False)).licences == ()
    # A read model built without a marker (a service that never rebuilds) answers as before.
    assert (await RedisReadModel(redis_client).snapshot("e-1")).licences == ()


async def test_a_record_older_than_its_items_last_changes_nothing_and_deletions_are_remembered(redis_client):
    """Finding 11: records read again behind a commit never put an item back (by offset)."""
    store = RedisReadModel(redis_client)

    def user(status: str) -> ev.UserUpserted:
        payload = ev.UserUpsertedPayload(user_id="bob", username="bob", display_name="B", status=status)
        return ev.UserUpserted(enterprise_id="e-1", producer="idp", payload=payload)

    gone = ev.UserDeleted(enterprise_id="e-1", producer="idp", payload=ev.UserDeletedPayload(user_id="bob"))
    assert await store.apply(user("active"), offset=7)
    assert not await store.apply(user("disabled"), offset=3), "an older record is refused"
    assert (await store.get_item("e-1", "users", "bob"))["status"] == "active"
    assert await store.apply(user("active"), offset=7), "the same record again re-evaluates"
    assert await store.apply(gone, offset=9)
    assert not await store.apply(user("active"), offset=8), "a deletion is remembered"
    assert await store.get_item("e-1", "users", "bob") is None
    assert await store.apply(user("disabled"), offset=12)
    assert (await store.get_item("e-1", "users", "bob"))["status"] == "disabled"


async def test_saved_sessions_take_and_give_back_seats_in_one_step_never_below_zero(redis_client):
    """The checkout run's write: records, announcements, each user's sessions and both seat
    counts change together, and a seat given back twice never leaves a negative count."""
    store = RedisReadModel(redis_client)
    face = Grant(("rover",), "face", 900, 43_200, True, 300, "p-1")
    passcode = replace(face, face_allowed=False)
    now = datetime.now(UTC)
    alice = LiveSession("ds-a", "dev-a", "alice", ("pwd",), now)
    bob = LiveSession("ds-b", "dev-b", "bob", ("pwd",), now)
    alice_face = replace(alice, state="granted", version=1, grant=face)
    bob_passcode = replace(bob, state="granted", version=1, grant=passcode)
    await store.save_sessions("e-s", [(alice, alice_face, b'{"a":1}'), (bob, bob_passcode, None)])

    view = await store.checkout_view("e-s", [("alice", "ds-a"), ("bob", "ds-b")])
    assert view.existing == {"ds-a": alice_face, "ds-b": bob_passcode}
    assert view.pending == {"ds-a": b'{"a":1}'}
    assert view.seats.in_use == 2 and view.seats.holders == {"alice", "bob"}
    assert view.seats.apa_in_use == 1 and view.seats.apa_holders == {"alice"}
    assert [s.device_session_id for s in await store.live_sessions("e-s", "alice")] == ["ds-a"]

    # Alice's grant ends (both her seats come back), then the same change is saved again.
    ended = replace(alice_face, state="ended")
    await store.save_sessions("e-s", [(alice_face, ended, None)])
    await store.save_sessions("e-s", [(alice_face, ended, None)])
    seats = (await store.checkout_view("e-s", [("alice", "ds-a")])).seats
    assert (seats.in_use, seats.holders, seats.apa_in_use, seats.apa_holders) == (1, frozenset(), 0, frozenset())
    assert await redis_client.hgetall("policy:{e-s}:seats") == {"bob": "1"}
