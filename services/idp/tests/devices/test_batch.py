"""The device consumer's batch path: a fetched batch applied in one Redis transaction gives the
views the record-at-a-time path gives, stays idempotent and monotonic, and still revokes every
session it closes (real Redis; the last test through the real broker)."""

from __future__ import annotations

import dataclasses

import pytest

from lanyard.idp.adapters.redis_devices import SessionStore
from lanyard.idp.devices.handlers import REVOCATIONS_AT_ONCE, to_fact
from lanyard.runtime.testing import eventually

pytestmark = pytest.mark.integration


def _facts(*events):
    return [to_fact(e)[1] for e in events]


async def test_a_batch_gives_the_views_one_by_one_gives_and_a_redelivery_changes_nothing(redis_client, kit):
    store = SessionStore(redis_client)
    a, b, c = kit.Device.new(), kit.Device.new(), kit.Device.new()
    out_a, grant_a, in_a = a.checked_out(), a.granted("rover"), a.checked_in()
    out_b, grant_b, lock_b = b.checked_out(), b.granted("rover", "haiku"), b.locked()
    out_c = c.checked_out()
    batch = [
        (a.eid, a.dsid, _facts(out_a, grant_a, in_a)),
        (b.eid, b.dsid, _facts(out_b, grant_b, lock_b)),
        (c.eid, c.dsid, _facts(out_c)),
    ]
    outcomes = await store.apply_many(batch)
    assert [o.view.state for o in outcomes] == ["CLOSED", "LOCKED", "ACTIVE"]
    assert all(o.changed for o in outcomes) and [o.closed for o in outcomes] == [True, False, False]

    # The same facts one at a time, on sessions of their own, end in the same stored views.
    for eid, dsid, facts in batch:
        for fact in facts:
            await store.apply(eid, "one-" + dsid, fact)
        assert await store.load(eid, "one-" + dsid) == await store.load(eid, dsid)

    # Redelivered (the batch is re-fetched after a failure): nothing changes.
    again = await store.apply_many(batch)
    assert not any(o.changed for o in again)
    assert [o.view for o in again] == [o.view for o in outcomes]


async def test_a_view_is_stored_as_it_was_decided_whatever_its_text(redis_client, kit):
    """Each view travels to Redis as one JSON argument: what is read back is what was decided,
    for any user id an enterprise's directory holds."""
    store = SessionStore(redis_client)
    d = dataclasses.replace(kit.Device.new(), user_id='Zoë "Ω" \\ 看護師 🩺')
    [outcome] = await store.apply_many([(d.eid, d.dsid, _facts(d.checked_out(), d.granted("rover", "épic")))])
    assert outcome.view.user_id == d.user_id and outcome.view.apps == ("rover", "épic")
    assert await store.load(d.eid, d.dsid) == outcome.view


async def test_a_batch_never_moves_a_view_backwards(redis_client, kit):
    store = SessionStore(redis_client)
    d = kit.Device.new()
    out, grant, locked = d.checked_out(), d.granted("rover"), d.locked()
    await store.apply_many([(d.eid, d.dsid, _facts(out, grant, locked))])
    # An older checkout arriving late in a later batch leaves the LOCKED view as it is.
    [outcome] = await store.apply_many([(d.eid, d.dsid, _facts(out))])
    assert not outcome.changed and outcome.view.state == "LOCKED"


async def test_a_view_another_instance_changes_during_a_batch_is_read_again_not_overwritten(redis_client, kit):
    """Two IdP instances apply facts of one session concurrently (its two topics): a checkin
    written by the other instance between this batch's read and its write must survive — the
    batch is applied again on the fresh view, never over it."""
    store, other = SessionStore(redis_client), SessionStore(redis_client)
    d, untouched = kit.Device.new(), kit.Device.new()
    await store.apply(d.eid, d.dsid, _facts(d.checked_out())[0])
    read_views, reads = store._read_views, []

    async def read_then_other_instance_checks_in(**kwargs):
        views = await read_views(**kwargs)
        reads.append(len(views))
        if len(reads) == 1:
            await other.apply(d.eid, d.dsid, _facts(d.checked_in())[0])
        return views

    store._read_views = read_then_other_instance_checks_in
    batch = [
        (d.eid, d.dsid, _facts(d.granted("rover"))),
        (untouched.eid, untouched.dsid, _facts(untouched.checked_out())),
    ]
    [closed, fresh] = await store.apply_many(batch)
    assert reads == [2, 2]  # read, lost the race, read again
    assert closed.view.state == "CLOSED" and (await store.load(d.eid, d.dsid)).state == "CLOSED"
    assert fresh.view.state == "ACTIVE" and await store.load(untouched.eid, untouched.dsid) == fresh.view


async def test_checkins_published_together_revoke_every_session_they_close(kafka_bootstrap, redis_client, kit, keys):
    ports = kit.Ports(keys=keys)
    devices = [kit.Device.new() for _ in range(8)]
    async with kit.running_idp(ports) as app:
        publisher = app.state.runtime.publisher
        await publisher.publish_all([e for d in devices for e in (d.checked_out(), d.granted("rover"))])
        closing, staying = devices[:4], devices[4:]
        await publisher.publish_all([d.checked_in() for d in closing])

        async def settled() -> bool:
            views = [await app.state.devices.store.load(d.eid, d.dsid) for d in devices]
            return (
                all(v is not None for v in views)
                and all(v.state == "CLOSED" and v.revocation_done for v in views[:4])
                and all(v.state == "ACTIVE" for v in views[4:])
            )

        await eventually(settled, 15, what="every view applied, the closed ones revoked")
        for d in closing:
            assert [c for c in ports.revoker.calls if c[1] == d.dsid] == [(d.eid, d.dsid, "checked_in:user")]
        assert not any(c[1] == d.dsid for d in staying for c in ports.revoker.calls)
        sessions = app.state.devices.sessions
        assert all([await sessions.may_refresh(d.eid, d.dsid, "rover") for d in staying])
        assert not any([await sessions.is_active(d.eid, d.dsid) for d in closing])


async def test_a_burst_of_checkins_is_revoked_a_bounded_number_at_a_time(kafka_bootstrap, redis_client, kit, keys):
    # A shift change: dozens of devices checked in at once. Every revocation takes Redis
    # connections from a pool of 100 that the IdP's requests share; all of them at once
    # exhausted it and failed the batch.
    ports = kit.Ports(keys=keys)
    devices = [kit.Device.new() for _ in range(30)]
    ports.revoker.slow.update(d.dsid for d in devices)  # earlier tests' replayed sessions stay quick
    async with kit.running_idp(ports) as app:
        publisher = app.state.runtime.publisher
        await publisher.publish_all([e for d in devices for e in (d.checked_out(), d.granted("rover"))])
        await publisher.publish_all([d.checked_in() for d in devices])

        async def all_revoked() -> bool:
            views = [await app.state.devices.store.load(d.eid, d.dsid) for d in devices]
            return all(v is not None and v.state == "CLOSED" and v.revocation_done for v in views)

        await eventually(all_revoked, 20, what="every session closed and revoked")
    assert {c[1] for c in ports.revoker.calls} >= {d.dsid for d in devices}
    assert 1 < ports.revoker.most_in_flight <= REVOCATIONS_AT_ONCE
