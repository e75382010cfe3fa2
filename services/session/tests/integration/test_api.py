"""The HTTP surface: admin device routes, and bad input answered with a clear 4xx that changes nothing."""

import asyncio

import pytest
from joserfc.jwk import ECKey, RSAKey

pytestmark = pytest.mark.integration

CHECKED_IN = "session.device_checked_in.v1"


async def test_enrol_list_and_retire_devices(harness):
    h = harness
    inst = await h.start()
    enrolled = await h.enrol(inst, "dev-1")
    assert (await h.probe.wait_for("session.device_enrolled.v1", device_id="dev-1")).payload.mdm_id == "mdm-1"
    same = await inst.client.post(
        h.path("/devices"),
        json={"device_id": "dev-1", "public_jwk": h.keys["dev-1"].as_dict(private=False)},
        headers=h.admin(),
    )
    assert same.status_code == 200 and same.json()["jkt"] == enrolled["jkt"]
    listed = await inst.client.get(h.path("/devices"), headers=h.admin())
    assert [d["device_id"] for d in listed.json()["devices"]] == ["dev-1"]

    dsid = (await h.checkout(inst)).json()["device_session_id"]
    r = await inst.client.post(h.path("/devices/dev-1/retire"), headers=h.admin())
    assert r.status_code == 200 and r.json()["retired"] is True
    assert (await h.probe.wait_for(CHECKED_IN, device_session_id=dsid)).payload.reason == "device_retired"
    await h.probe.wait_for("session.device_retired.v1", device_id="dev-1")
    again = await h.checkout(inst)
    assert again.status_code == 409 and again.json()["error"] == "device_retired"


async def test_bad_input_gets_a_clear_4xx_and_changes_nothing(harness, redis_client):
    h = harness
    inst = await h.start()
    rsa = RSAKey.generate_key(2048).as_dict(private=False)
    r = await inst.client.post(h.path("/devices"), json={"device_id": "d", "public_jwk": rsa}, headers=h.admin())
    assert r.status_code == 400 and r.json()["error"] == "invalid_key"
    r = await inst.client.post(h.path("/devices"), json={"device_id": "bad id!", "public_jwk": {}}, headers=h.admin())
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    r = await inst.client.post(h.path("/devices"), content=b"not json", headers=h.admin())
    assert r.status_code == 400
    assert (await inst.client.get(h.path("/devices"), headers=h.admin())).json()["devices"] == []

    await h.enrol(inst)
    path = h.path("/devices/dev-1/checkout")
    no_proof = await inst.client.post(path, json={"assertion": "x.y.z"})
    assert no_proof.status_code == 401 and no_proof.json()["error"] == "invalid_proof"
    other_key = ECKey.generate_key("P-256")
    h.keys["impostor"] = other_key
    wrong = await inst.client.post(path, json={"assertion": "x.y.z"}, headers=h.proof("impostor", "POST", path))
    assert wrong.status_code == 401
    garbage = await inst.client.post(path, json={"assertion": "x.y.z"}, headers=h.proof("dev-1", "POST", path))
    assert garbage.status_code == 401 and garbage.json()["error"] == "invalid_assertion"
    foreign = h.issuer.checkout_assertion("another-enterprise", "u-1", "dev-1")
    r = await inst.client.post(path, json={"assertion": foreign}, headers=h.proof("dev-1", "POST", path))
    assert r.status_code == 401 and r.json()["error"] == "invalid_assertion"
    one_factor = h.issuer.checkout_assertion(h.eid, "u-1", "dev-1", amr=("pwd",))
    r = await inst.client.post(path, json={"assertion": one_factor}, headers=h.proof("dev-1", "POST", path))
    assert r.status_code == 403 and r.json()["error"] == "second_factor_required"
    assert await redis_client.smembers(f"session:{h.eid}:live") == set()
    assert (await inst.client.get(h.path("/device-sessions"), headers=h.admin())).json()["device_sessions"] == []

    missing = await h.locker(inst, "GET", "no-such-session-handle")
    assert missing.status_code == 404 and missing.json()["error"] == "session_not_found"


async def test_idempotency_key_replays_the_checkout_and_refuses_reuse(harness):
    h = harness
    inst = await h.start()
    await h.enrol(inst)
    first = await h.checkout(inst, **{"Idempotency-Key": "co-1"})
    assert first.status_code == 201
    path = h.path("/devices/dev-1/checkout")
    body = {"assertion": h.issuer.checkout_assertion(h.eid, "u-1", "dev-1"), **h.locker_report}
    reused = await inst.client.post(
        path, json=body, headers={**h.proof("dev-1", "POST", path), "Idempotency-Key": "co-1"}
    )
    assert reused.status_code == 422 and reused.json()["error"] == "idempotency_key_reused"
    assert len(h.probe.of_type("session.device_checked_out.v1")) <= 1


async def test_a_proof_for_another_session_handle_is_refused(harness):
    h = harness
    inst = await h.start()
    await h.enrol(inst, "dev-a")
    await h.enrol(inst, "dev-b")
    a = (await h.checkout(inst, "dev-a")).json()["device_session_id"]
    b = (await h.checkout(inst, "dev-b")).json()["device_session_id"]
    path = h.path(f"/device-sessions/{a}")
    by_b = await inst.client.get(path, headers=h.proof("dev-b", "GET", path, a))
    assert by_b.status_code == 401
    wrong_handle = await inst.client.get(path, headers=h.proof("dev-a", "GET", path, b))
    assert wrong_handle.status_code == 401
    checkin = await inst.client.post(h.path(f"/device-sessions/{a}/checkin"), headers=h.proof("dev-a", "GET", path, a))
    assert checkin.status_code == 401
    assert (await h.locker(inst, "GET", a, device_id="dev-a")).json()["state"] == "ACTIVE"


async def test_a_retry_racing_the_first_request_is_told_to_wait_and_never_runs_twice(harness):
    h = harness
    inst = await h.start()
    await h.enrol(inst)
    dsid = (await h.checkout(inst)).json()["device_session_id"]
    real, gate, entered = inst.service.publisher, asyncio.Event(), asyncio.Event()

    class SlowBroker:  # the first checkin's publish waits until the retry has been answered
        async def publish(self, event):
            entered.set()
            await gate.wait()
            await real.publish(event)

    inst.service.publisher = SlowBroker()
    key = {"headers": {"Idempotency-Key": "ci-1"}}
    first = asyncio.create_task(h.locker(inst, "POST", dsid, "/checkin", **key))
    await asyncio.wait_for(entered.wait(), 10)
    retry = await h.locker(inst, "POST", dsid, "/checkin", **key)
    assert retry.status_code == 409 and retry.json()["error"] == "request_in_progress"
    assert retry.headers["retry-after"] == "1"
    gate.set()
    assert (await first).status_code == 200
    inst.service.publisher = real
    again = await h.locker(inst, "POST", dsid, "/checkin", **key)
    assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
    await h.probe.wait_for("session.device_checked_in.v1", device_session_id=dsid)
    # The checkin ran once: one event. The outbox relay may publish that same event again while
    # the first request's publish is held (delivery is at least once; consumers deduplicate by
    # id), which a slow run showed as two records with one id.
    checked_in = h.probe.of_type("session.device_checked_in.v1", device_session_id=dsid)
    assert len({e.event_id for e in checked_in}) == 1
