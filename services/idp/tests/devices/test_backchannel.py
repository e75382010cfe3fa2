"""Back-channel logout delivery to a real HTTP receiver (Starlette under uvicorn), from the Redis queue."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest
from joserfc import jwt

from lanyard.contracts import topics
from lanyard.idp.adapters.redis_backchannel import QUEUED_AT_ONCE, BackchannelQueue
from lanyard.idp.devices import backchannel
from lanyard.idp.devices.backchannel import BACKCHANNEL_EVENT, BackchannelWorker
from lanyard.idp.devices.domain import sid_for
from lanyard.idp.devices.ports import RevokedSession
from lanyard.runtime.testing import TopicProbe, eventually, free_port

pytestmark = pytest.mark.integration
BASE = "http://127.0.0.1:8480"


@contextlib.asynccontextmanager
async def worker_on(redis_client, ports, kit, **settings):
    """One IdP instance's queue and worker."""
    publisher = kit.MemoryPublisher()
    queue = BackchannelQueue(redis_client, ports.clients)
    worker = BackchannelWorker(queue, ports.keys, publisher, kit.fast_settings(**settings), BASE)
    await worker.start()
    try:
        yield queue, worker, publisher
    finally:
        await worker.stop()


def _events(publisher, kind: str):
    return [e for e in publisher.events if e.type == kind]


async def test_delivered_token_is_a_valid_logout_token(redis_client, receiver, kit, keys):
    ports = kit.Ports(keys=keys)
    eid, sid = "ent-a", sid_for("ent-a", "ds-1")
    ports.clients.add(eid, "portal", f"{receiver.base}/ok")
    async with worker_on(redis_client, ports, kit) as (queue, _, publisher):
        await queue.enqueue(eid, "portal", sid, "user-1", "ds-1")
        done = await eventually(lambda: _events(publisher, "oidc.backchannel_logout_delivered.v1"), 10)
    (path, ctype, token), *rest = receiver.posts
    assert not rest and path == "/ok" and ctype.startswith("application/x-www-form-urlencoded")
    decoded = jwt.decode(token, await ports.keys.verification_keys(eid), algorithms=["RS256"])
    assert decoded.header == {"alg": "RS256", "typ": "logout+jwt", "kid": keys.key.kid}
    c = decoded.claims
    assert c["iss"] == f"{BASE}/e/{eid}" and c["aud"] == "portal" and c["sid"] == sid and c["sub"] == "user-1"
    assert c["events"] == {BACKCHANNEL_EVENT: {}} and "nonce" not in c
    assert 0 < c["exp"] - c["iat"] <= 120 and abs(c["iat"] - time.time()) < 10 and len(c["jti"]) >= 16
    p = done[0].payload
    assert (p.client_id, p.sid, p.user_id, p.attempts, p.status_code, p.device_session_id) == (
        "portal",
        sid,
        "user-1",
        1,
        200,
        "ds-1",
    )
    assert done[0].enterprise_id == eid and await queue.pending() == 0


async def test_a_client_that_registered_es256_gets_its_logout_token_signed_like_its_id_tokens(
    redis_client, receiver, kit, keys
):
    ports = kit.Ports(keys=keys)
    eid, sid = "ent-es", sid_for("ent-es", "ds-1")
    ports.clients.add(eid, "rover", f"{receiver.base}/es", id_token_alg="ES256")
    async with worker_on(redis_client, ports, kit) as (queue, _, publisher):
        await queue.enqueue(eid, "rover", sid, "user-1", "ds-1")
        await eventually(lambda: _events(publisher, "oidc.backchannel_logout_delivered.v1"), 10)
    [(_, _, token)] = receiver.to("/es")
    decoded = jwt.decode(token, await ports.keys.verification_keys(eid), algorithms=["ES256"])
    assert decoded.header == {"alg": "ES256", "typ": "logout+jwt", "kid": keys.ec_key.kid}
    assert decoded.claims["sid"] == sid and decoded.claims["aud"] == "rover"


@pytest.mark.parametrize("status", [400, 307])
async def test_a_refusal_or_a_redirect_is_a_rejection_and_is_not_retried(redis_client, receiver, kit, keys, status):
    """A 4xx is the RP's answer, and a redirect is not followed (its target was never registered)."""
    ports = kit.Ports(keys=keys)
    ports.clients.add("ent-b", "portal", f"{receiver.base}/bad")
    receiver.script["/bad"] = [status]
    async with worker_on(redis_client, ports, kit) as (queue, _, publisher):
        await queue.enqueue("ent-b", "portal", "sid-b", "user-1")
        failed = await eventually(lambda: _events(publisher, "oidc.backchannel_logout_failed.v1"), 10)
        await asyncio.sleep(0.3)  # would-be retries have had their chance
    assert len(receiver.to("/bad")) == 1 and not receiver.to("/followed")
    assert (failed[0].payload.status_code, failed[0].payload.attempts) == (status, 1)
    assert not _events(publisher, "oidc.backchannel_logout_delivered.v1") and await queue.pending() == 0


async def test_an_rp_that_refuses_connections_is_retried_then_failed(redis_client, kit, keys):
    ports = kit.Ports(keys=keys)
    ports.clients.add("ent-c", "portal", f"http://127.0.0.1:{free_port()}/bcl")  # nothing listens
    async with worker_on(redis_client, ports, kit, bcl_max_attempts=2) as (queue, _, publisher):
        await queue.enqueue("ent-c", "portal", "sid-c", "user-1")
        failed = await eventually(lambda: _events(publisher, "oidc.backchannel_logout_failed.v1"), 15)
    p = failed[0].payload
    assert (p.attempts, p.status_code) == (2, None) and p.error.startswith("transport error: ")
    assert await queue.pending() == 0


async def test_a_500_is_retried_with_backoff_until_delivered(redis_client, receiver, kit, keys):
    ports = kit.Ports(keys=keys)
    ports.clients.add("ent-c", "portal", f"{receiver.base}/flaky")
    receiver.script["/flaky"] = [500, 503, 204]
    async with worker_on(redis_client, ports, kit) as (queue, _, publisher):
        await queue.enqueue("ent-c", "portal", "sid-c", "user-1")
        done = await eventually(lambda: _events(publisher, "oidc.backchannel_logout_delivered.v1"), 10)
    assert len(receiver.to("/flaky")) == 3
    assert (done[0].payload.attempts, done[0].payload.status_code) == (3, 204)
    tokens = {t for _, _, t in receiver.to("/flaky")}
    assert len(tokens) == 3  # a fresh token (new jti, iat) per attempt


async def test_retries_are_bounded_then_the_delivery_fails(redis_client, receiver, kit, keys):
    ports = kit.Ports(keys=keys)
    ports.clients.add("ent-d", "down", f"{receiver.base}/down")
    ports.clients.add("ent-d", "slow", f"{receiver.base}/slow")
    receiver.script["/down"] = [500]
    async with worker_on(redis_client, ports, kit, bcl_max_attempts=3, bcl_timeout_s=0.2) as (queue, _, publisher):
        await queue.enqueue("ent-d", "down", "sid-d", "user-1")
        await queue.enqueue("ent-d", "slow", "sid-d", "user-1")
        failed = await eventually(lambda: len(_events(publisher, "oidc.backchannel_logout_failed.v1")) == 2, 15)
    assert failed
    by_client = {e.payload.client_id: e.payload for e in _events(publisher, "oidc.backchannel_logout_failed.v1")}
    assert (by_client["down"].attempts, by_client["down"].status_code) == (3, 500)
    assert (by_client["slow"].attempts, by_client["slow"].error) == (3, "timeout")
    assert len(receiver.to("/down")) == 3


async def test_no_uri_means_nothing_is_queued_and_duplicates_are_queued_once(redis_client, receiver, kit, keys):
    ports = kit.Ports(keys=keys)
    ports.clients.add("ent-e", "native")
    ports.clients.add("ent-e", "portal", f"{receiver.base}/once")
    async with worker_on(redis_client, ports, kit) as (queue, _, publisher):
        await queue.enqueue("ent-e", "native", "sid-e", "user-1")
        await queue.enqueue("ent-e", "unknown-client", "sid-e", "user-1")
        for _ in range(3):
            await queue.enqueue("ent-e", "portal", "sid-e", "user-1")
        await eventually(lambda: _events(publisher, "oidc.backchannel_logout_delivered.v1"), 10)
        await queue.enqueue("ent-e", "portal", "sid-e", "user-1")  # after delivery: still once
        await asyncio.sleep(0.3)
    assert len(receiver.posts) == 1 and len(publisher.events) == 1


async def test_a_revoked_sessions_apps_are_queued_at_once_not_one_after_another(redis_client, receiver, kit, keys):
    # As many apps as the queue takes at once have their registrations looked up at the same
    # moment: a lookup that waits for all of them to be under way would wait forever if the apps
    # were queued one by one.
    ports = kit.Ports(keys=keys)
    apps = [f"app-{i}" for i in range(QUEUED_AT_ONCE)]
    for client_id in apps:
        ports.clients.add("ent-m", client_id, f"{receiver.base}/{client_id}")
    together = asyncio.Barrier(len(apps))
    look_up = ports.clients.get

    async def get_when_all_are_asked(enterprise_id, client_id):
        await together.wait()
        return await look_up(enterprise_id, client_id)

    ports.clients.get = get_when_all_are_asked
    async with worker_on(redis_client, ports, kit) as (queue, _, publisher):
        async with asyncio.timeout(5):
            await queue.enqueue_revoked("ent-m", [RevokedSession("sid-m", "user-m", tuple(apps))], "ds-m")
        await eventually(lambda: len(_events(publisher, "oidc.backchannel_logout_delivered.v1")) == len(apps), 10)
    assert sorted(path.lstrip("/") for path, _, _ in receiver.posts) == apps


async def test_two_instances_never_deliver_one_logout_twice(redis_client, receiver, kit, keys):
    ports = kit.Ports(keys=keys)
    ports.clients.add("ent-f", "portal", f"{receiver.base}/many")
    async with (
        worker_on(redis_client, ports, kit, bcl_batch=4) as (queue_a, _, pub_a),
        worker_on(redis_client, ports, kit, bcl_batch=4) as (queue_b, _, pub_b),
    ):
        for i in range(40):
            await (queue_a if i % 2 else queue_b).enqueue("ent-f", "portal", f"sid-{i}", "user-1")
        await eventually(lambda: len(pub_a.events) + len(pub_b.events) == 40, 30)
    sids = sorted(e.payload.sid for e in pub_a.events + pub_b.events)
    assert sids == sorted(f"sid-{i}" for i in range(40))
    assert len(receiver.to("/many")) == 40


async def test_deliveries_survive_a_restart_and_a_crashed_claim(redis_client, receiver, kit, keys):
    ports = kit.Ports(keys=keys)
    ports.clients.add("ent-g", "portal", f"{receiver.base}/later")
    # Instance 1 queues and claims, then dies before delivering.
    crashed = BackchannelQueue(redis_client, ports.clients)
    await crashed.enqueue("ent-g", "portal", "sid-g", "user-1")
    await crashed.enqueue("ent-g", "portal", "sid-h", "user-1")
    claimed = await crashed.claim(limit=1, lease_s=0.5)
    assert len(claimed) == 1 and claimed[0].attempts == 1
    # Instance 2 starts later: it delivers the unclaimed one at once, the claimed one after its lease.
    async with worker_on(redis_client, ports, kit) as (queue, _, publisher):
        await eventually(lambda: len(publisher.events) == 2, 10)
        assert await queue.pending() == 0
    assert len(receiver.to("/later")) == 2
    assert not await crashed.settle(claimed[0])  # the dead instance's lease is void


async def test_a_claim_whose_answer_was_lost_is_released_by_its_token(redis_client, kit, keys):
    """Redis crashing right after it ran a claim: the worker never learns what it leased; it
    releases by token once Redis answers, instead of the logouts waiting a whole lease."""
    ports = kit.Ports(keys=keys)
    ports.clients.add("ent-l", "portal", "http://127.0.0.1:9/unused")
    queue = BackchannelQueue(redis_client, ports.clients)
    await queue.enqueue("ent-l", "portal", "sid-l", "user-1")
    assert len(await queue.claim(limit=4, lease_s=30, token="claim-whose-answer-was-lost")) == 1
    assert await queue.claim(limit=4, lease_s=30) == []  # leased for 30 s
    assert await queue.release("someone-else's", 30) == 0
    assert await queue.release("claim-whose-answer-was-lost", 30) == 1
    [again] = await queue.claim(limit=4, lease_s=30)
    assert again.sid == "sid-l"


async def test_a_queued_logout_is_posted_at_once_without_a_claim_round(redis_client, receiver, kit, keys, monkeypatch):
    # The worker polls only every 30 s here: a logout delivered in seconds went straight from the
    # enqueue to the worker, leased to it in the same step (the claim loop ran once, at start).
    ports = kit.Ports(keys=keys)
    ports.clients.add("ent-t", "portal", f"{receiver.base}/taken")
    claims = 0
    real_claim = BackchannelQueue.claim

    async def counted_claim(self, *args, **kwargs):
        nonlocal claims
        claims += 1
        return await real_claim(self, *args, **kwargs)

    monkeypatch.setattr(BackchannelQueue, "claim", counted_claim)
    async with worker_on(redis_client, ports, kit, bcl_poll_s=30) as (queue, _, publisher):
        await eventually(lambda: claims == 1, 5)  # the start-up round
        await queue.enqueue("ent-t", "portal", "sid-t", "user-1", "ds-t")
        [done] = await eventually(lambda: _events(publisher, "oidc.backchannel_logout_delivered.v1"), 5)
        assert await queue.pending() == 0
    assert claims == 1 and len(receiver.to("/taken")) == 1
    assert (done.payload.attempts, done.payload.status_code, done.payload.device_session_id) == (1, 200, "ds-t")


async def test_a_busy_worker_leaves_new_logouts_to_its_claim_round(redis_client, receiver, kit, keys, monkeypatch):
    monkeypatch.setattr(backchannel, "MAX_TAKEN", 0)  # every new logout finds the worker full
    ports = kit.Ports(keys=keys)
    ports.clients.add("ent-u", "portal", f"{receiver.base}/claimed")
    async with worker_on(redis_client, ports, kit, bcl_poll_s=30) as (queue, worker, publisher):
        assert not worker.accepting
        for i in range(3):
            await queue.enqueue("ent-u", "portal", f"sid-u{i}", "user-1")
        await eventually(lambda: len(_events(publisher, "oidc.backchannel_logout_delivered.v1")) == 3, 5)
    assert len(receiver.to("/claimed")) == 3


async def test_an_enqueue_whose_answer_was_lost_is_delivered_long_before_its_lease_ends(
    redis_client, receiver, kit, keys
):
    """Redis ran the enqueue (stored, leased to this worker) and the answer never came: the
    worker releases that claim once Redis answers, instead of the logout waiting 30 s."""
    ports = kit.Ports(keys=keys)
    ports.clients.add("ent-v", "portal", f"{receiver.base}/lost")
    async with worker_on(redis_client, ports, kit, bcl_lease_s=30) as (queue, _, publisher):
        real_script = queue._enqueue

        async def ran_then_lost(*args, **kwargs):
            await real_script(*args, **kwargs)
            raise ConnectionError("connection closed by server")

        queue._enqueue = ran_then_lost
        with pytest.raises(ConnectionError):
            await queue.enqueue("ent-v", "portal", "sid-v", "user-1")
        queue._enqueue = real_script
        started = time.monotonic()
        [done] = await eventually(lambda: _events(publisher, "oidc.backchannel_logout_delivered.v1"), 10)
    assert time.monotonic() - started < 10 and len(receiver.to("/lost")) == 1
    assert done.payload.sid == "sid-v"


class _TakerThatDies:
    """An instance that took a delivery at enqueue and died before posting it."""

    lease_s = 0.5
    accepting = True

    def __init__(self) -> None:
        self.taken: list = []

    def take(self, delivery) -> None:
        self.taken.append(delivery)

    def lost(self, claim: str) -> None:
        raise AssertionError("the enqueue was answered")

    def wake(self) -> None:
        raise AssertionError("a taken delivery needs no claim round")


async def test_a_logout_whose_taker_died_is_delivered_by_another_instance_after_the_lease(
    redis_client, receiver, kit, keys
):
    ports = kit.Ports(keys=keys)
    ports.clients.add("ent-w", "portal", f"{receiver.base}/orphan")
    dead = BackchannelQueue(redis_client, ports.clients)
    dead.taker = taker = _TakerThatDies()
    await dead.enqueue("ent-w", "portal", "sid-w", "user-1")
    [orphan] = taker.taken
    assert (orphan.attempts, orphan.sid) == (1, "sid-w")
    async with worker_on(redis_client, ports, kit) as (queue, _, publisher):
        [done] = await eventually(lambda: _events(publisher, "oidc.backchannel_logout_delivered.v1"), 10)
        assert await queue.pending() == 0
    assert done.payload.attempts == 2 and len(receiver.to("/orphan")) == 1
    assert not await dead.settle(orphan)  # the dead instance's lease is void


async def test_checkin_through_the_app_reaches_the_relying_party_and_is_recorded(
    kafka_bootstrap, redis_client, receiver, kit, keys
):
    ports = kit.Ports(keys=keys)
    async with kit.running_idp(ports) as app:
        d = kit.Device.new()
        ports.clients.add(d.eid, "rover")
        ports.clients.add(d.eid, "portal", f"{receiver.base}/app-{d.dsid}")
        probe = await TopicProbe(kafka_bootstrap, topics.OIDC_EVENTS).start()
        try:
            await app.state.runtime.publisher.publish_all([d.checked_out(), d.granted("rover", "portal")])
            await eventually(lambda: _granted(app, d), 10)
            ports.revoker.signed_in(d.eid, d.dsid, d.user_id, "rover", "portal")
            await app.state.runtime.publisher.publish(d.checked_in())
            event = await probe.wait_for(
                "oidc.backchannel_logout_delivered.v1", 15, sid=sid_for(d.eid, d.dsid), client_id="portal"
            )
        finally:
            await probe.stop()
    assert event.enterprise_id == d.eid and event.payload.device_session_id == d.dsid
    assert event.subject.user_id == d.user_id
    assert len(receiver.to(f"/app-{d.dsid}")) == 1


async def _granted(app, d) -> bool:
    view = await app.state.devices.store.load(d.eid, d.dsid)
    return bool(view and view.granted)


def test_backoff_grows_and_is_capped(kit):
    from lanyard.idp.devices.backchannel import backoff_s

    s = kit.fast_settings(bcl_backoff_s=1.0, bcl_max_backoff_s=5.0)
    assert [backoff_s(n, s) for n in (1, 2, 3, 4, 5)] == [1.0, 2.0, 4.0, 5.0, 5.0]
