"""The policy read model on the real Redis: what it refuses to answer from."""

import pytest

from lanyard.contracts import events as ev
from lanyard.policy.adapters.redis_store import RedisReadModel
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
