"""The session service's front door (issue 12): bounded bodies on admin and Locker routes, errors that
never repeat the value, free text on device records, and Idempotency-Key keeping final answers only."""

import pytest
from joserfc.jwk import ECKey

from lanyard.runtime.bodies import unbounded_routes

pytestmark = pytest.mark.integration

JSON = {"content-type": "application/json"}


def assert_error(r, status: int, error: str = "invalid_request") -> str:
    assert r.status_code == status, r.text
    assert set(r.json()) == {"error", "error_description"} and r.json()["error"] == error, r.json()
    return r.json()["error_description"]


async def test_deep_or_repeated_json_is_a_400_on_admin_and_locker_routes(harness):
    h = harness
    inst = await h.start()
    assert unbounded_routes(inst.app) == []
    deep = b'{"device_id": "d", "public_jwk": {"k": ' + b"[" * 5000 + b"]" * 5000 + b"}}"
    r = await inst.client.post(h.path("/devices"), content=deep, headers={**JSON, **h.admin()})
    assert "nested deeper" in assert_error(r, 400)
    twice = b'{"device_id": "d1", "device_id": "d2", "public_jwk": {}}'
    r = await inst.client.post(h.path("/devices"), content=twice, headers={**JSON, **h.admin()})
    assert "repeats the key 'device_id'" in assert_error(r, 400)
    await h.enrol(inst)
    dsid = (await h.checkout(inst)).json()["device_session_id"]
    r = await h.locker(inst, "POST", dsid, "/face/result", content=b'{"result": ' + b"[" * 3000 + b"]" * 3000 + b"}")
    assert "nested deeper" in assert_error(r, 400)
    r = await h.locker(inst, "POST", dsid, "/face/result", json={"result": "x", "score": 0.99})
    assert "body.score: Extra inputs are not permitted" in assert_error(r, 400)


async def test_device_labels_are_free_text(harness):
    h = harness
    inst = await h.start()
    jwk = {"kty": "EC", "crv": "P-256", "x": "a", "y": "b"}
    for field in ("model", "serial", "mdm_id"):
        body = {"device_id": "dev-x", "public_jwk": jwk, field: "iPhone\x00 15"}
        r = await inst.client.post(h.path("/devices"), json=body, headers=h.admin())
        assert f"body.{field}: must not contain control characters" == assert_error(r, 400)
    key = ECKey.generate_key("P-256").as_dict(private=False)
    body = {"device_id": "dev-2", "public_jwk": key, "model": "  iPhone 15 Pro\n", "serial": "SN\u2009\u0032"}
    r = await inst.client.post(h.path("/devices"), json=body, headers=h.admin())
    assert r.status_code == 201 and (r.json()["model"], r.json()["serial"]) == ("iPhone 15 Pro", "SN\u20092")


async def test_a_503_is_never_the_answer_a_retry_gets_replayed(harness):
    h = harness
    inst = await h.start()
    await h.enrol(inst)
    dsid = (await h.checkout(inst)).json()["device_session_id"]
    real = inst.service.publisher

    class BrokerDown:
        async def publish(self, event):
            raise ConnectionError("broker unreachable")

    inst.service.publisher = BrokerDown()
    key = {"headers": {"Idempotency-Key": "checkin-1"}}
    first = await h.locker(inst, "POST", dsid, "/checkin", **key)
    assert first.status_code == 503 and first.json()["error"] == "event_pending"
    inst.service.publisher = real
    retry = await h.locker(inst, "POST", dsid, "/checkin", **key)
    assert retry.status_code == 200 and "idempotent-replayed" not in retry.headers
    assert retry.json()["state"] == "CLOSED"
    again = await h.locker(inst, "POST", dsid, "/checkin", **key)
    assert again.headers["idempotent-replayed"] == "true" and again.json() == retry.json()


async def test_an_admin_key_is_scoped_to_the_admin(harness):
    h = harness
    inst = await h.start()
    await h.enrol(inst, "dev-a")
    path = h.path("/devices/dev-a/retire")
    first = await inst.client.post(path, headers={**h.admin(), "Idempotency-Key": "r-1"})
    assert first.status_code == 200
    again = await inst.client.post(path, headers={**h.admin(), "Idempotency-Key": "r-1"})
    assert again.headers["idempotent-replayed"] == "true"
    other_token = h.issuer.admin_token(h.eid, "admin-2", "admin")
    other = await inst.client.post(path, headers={"Authorization": f"Bearer {other_token}", "Idempotency-Key": "r-1"})
    assert other.status_code == 200 and "idempotent-replayed" not in other.headers
