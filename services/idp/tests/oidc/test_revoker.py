"""SessionRevoker against the real Redis: check-in revokes only that device session's grants,
through its index, and publishes what it ended."""

import time

import pytest

from lanyard.idp.devices.domain import DeviceLogin

pytestmark = pytest.mark.integration


async def device_tokens(world, handle="h1"):
    p = world.auth_params("pub")
    r = await world.authorize(p, headers={"Lanyard-Device-Session": handle, "Lanyard-Device-Proof": "good-proof"})
    q = world.q(r)
    return (await world.redeem(q["code"], p, "pub")).json()


async def test_revoke_device_session_ends_its_tokens_only(world, redis_client):
    world.devices.add("h2", DeviceLogin(world.eid, "ds2", "dev2", "u2", int(time.time()), ("badge", "otp"), "sid-ds2"))
    mine = [await device_tokens(world) for _ in range(3)]
    other = await device_tokens(world, "h2")
    revoked = await world.oidc.revoker.revoke_device_session(world.eid, "ds1", "checked_in")
    assert [(s.sid, s.user_id, s.client_ids) for s in revoked] == [("sid-ds1", "u1", ("pub",))]
    for t in mine:
        assert (await world.introspect(t["access_token"])).json() == {"active": False}
        assert (await world.refresh(t["refresh_token"], "pub")).status_code == 400
    assert (await world.introspect(other["access_token"])).json()["active"] is True
    types = world.publisher.types()
    assert types.count("oidc.tokens_revoked.v1") == 3 and types.count("oidc.session_revoked.v1") == 1
    session_event = next(e for e in world.publisher.events if e.type == "oidc.session_revoked.v1")
    assert session_event.payload.device_session_id == "ds1" and session_event.payload.reason == "checked_in"


async def test_revoke_device_session_idempotent_and_blocks_late_codes(world):
    p = world.auth_params("pub")
    r = await world.authorize(p, headers={"Lanyard-Device-Session": "h1", "Lanyard-Device-Proof": "good-proof"})
    code = world.q(r)["code"]
    await world.oidc.revoker.revoke_device_session(world.eid, "ds1", "checked_in")
    again = await world.oidc.revoker.revoke_device_session(world.eid, "ds1", "checked_in")
    assert [s.sid for s in again] == ["sid-ds1"]
    # A repeat (a retried checkin) revokes nothing new; it announces its own revocations again
    # under the same event ids, so a publish cut short by a broker outage is completed and
    # consumers (deduplicating by id) see each announcement once.
    for kind in ("oidc.tokens_revoked.v1", "oidc.session_revoked.v1"):
        ids = [e.event_id for e in world.publisher.events if e.type == kind]
        assert len(ids) == 2 and len(set(ids)) == 1, kind
    r = await world.redeem(code, p, "pub")  # a code issued before the check-in
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    # a grant racing the check-in cannot join the revoked session
    world.devices.state["ds1"] = "ACTIVE"
    r = await world.authorize(
        world.auth_params("pub"), headers={"Lanyard-Device-Session": "h1", "Lanyard-Device-Proof": "good-proof"}
    )
    assert world.q(r)["error"] == "login_required"


async def test_a_first_only_revocation_revokes_once_and_then_leaves_the_session_alone(world):
    # The device consumer revokes a closing session's grants while it writes the CLOSED view
    # (first_only); a redelivered checkin must then neither announce again nor queue logouts.
    tokens = await device_tokens(world)
    told: list[list[str]] = []

    async def queue_logouts(sessions):
        told.append([s.sid for s in sessions])

    first = await world.oidc.revoker.revoke_device_session(world.eid, "ds1", "checked_in", queue_logouts, True)
    assert [s.sid for s in first] == ["sid-ds1"] and told == [["sid-ds1"]]
    assert (await world.introspect(tokens["access_token"])).json() == {"active": False}
    again = await world.oidc.revoker.revoke_device_session(world.eid, "ds1", "checked_in", queue_logouts, True)
    assert again is None and told == [["sid-ds1"]]
    types = world.publisher.types()
    assert types.count("oidc.tokens_revoked.v1") == 1 and types.count("oidc.session_revoked.v1") == 1
    # A plain call still finishes a revocation (it announces under the same ids, as a retry does).
    plain = await world.oidc.revoker.revoke_device_session(world.eid, "ds1", "checked_in", queue_logouts)
    assert [s.sid for s in plain] == ["sid-ds1"] and told == [["sid-ds1"], ["sid-ds1"]]


async def test_revoke_cost_independent_of_other_sessions(world, redis_client):
    # The revoker reads one index set; count the keys a revocation touches with MONITOR-free
    # evidence: other sessions' grants keep their state and TTLs untouched.
    for i in range(20):
        world.devices.add(
            f"hx{i}", DeviceLogin(world.eid, f"dsx{i}", f"d{i}", "u2", int(time.time()), ("pwd",), f"sid-x{i}")
        )
        await device_tokens(world, f"hx{i}")
    await device_tokens(world)
    before = {k: await redis_client.hget(k, "state") async for k in redis_client.scan_iter("idp:oidc:*:grant:*")}
    await world.oidc.revoker.revoke_device_session(world.eid, "ds1", "checked_in")
    after = {k: await redis_client.hget(k, "state") for k in before}
    changed = [k for k in before if before[k] != after[k]]
    assert len(changed) == 1 and after[changed[0]] == "revoked"


async def test_revoke_sid_unknown_returns_none(world):
    assert await world.oidc.revoker.revoke_sid(world.eid, "sid-nobody", "logout") is None


async def test_a_grant_revoked_earlier_by_another_cause_is_not_announced_again(world):
    await device_tokens(world)
    await world.oidc.revoker.revoke_sid(world.eid, "sid-ds1", "logout")
    revoked = await world.oidc.revoker.revoke_device_session(world.eid, "ds1", "checked_in")
    assert [s.client_ids for s in revoked] == [("pub",)]  # its apps are still told
    tokens = [e for e in world.publisher.events if e.type == "oidc.tokens_revoked.v1"]
    assert [e.payload.reason for e in tokens] == ["logout"]


async def test_the_follow_up_runs_while_the_broker_refuses_the_announcements(world, monkeypatch):
    # The caller's follow-up (queueing back-channel logouts) needs only the revoked grants, so
    # it runs even when the announcements cannot be acknowledged; the call still raises, and
    # its retry announces what the first attempt could not.
    await device_tokens(world)

    async def broker_down(event):
        raise ConnectionError("broker unavailable")

    monkeypatch.setattr(world.publisher, "publish", broker_down)
    told: list[list[str]] = []

    async def queue_logouts(sessions):
        told.append([s.sid for s in sessions])

    with pytest.raises(ConnectionError):
        await world.oidc.revoker.revoke_device_session(world.eid, "ds1", "checked_in", queue_logouts)
    assert told == [["sid-ds1"]]
    monkeypatch.undo()
    again = await world.oidc.revoker.revoke_device_session(world.eid, "ds1", "checked_in", queue_logouts)
    assert [s.sid for s in again] == ["sid-ds1"] and told == [["sid-ds1"], ["sid-ds1"]]
    assert world.publisher.types().count("oidc.session_revoked.v1") == 1


async def test_a_failed_follow_up_fails_the_revocation_after_the_announcements(world):
    await device_tokens(world)

    async def queue_down(sessions):
        raise ConnectionError("redis unavailable")

    with pytest.raises(ConnectionError):
        await world.oidc.revoker.revoke_device_session(world.eid, "ds1", "checked_in", queue_down)
    # The announcements were not held back by the follow-up's failure.
    assert world.publisher.types().count("oidc.tokens_revoked.v1") == 1
