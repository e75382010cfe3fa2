"""Hostile requests (issue 12) through the gateway, as the report's hostile client saw the stack: every service answers
malformed, deep, oversized and mistyped requests with a 4xx in the documented shape — never a 5xx,
never the submitted value — and a retried admin POST is answered once."""

from __future__ import annotations

import secrets

import pytest

from lanyard.harness.admin import open_enterprise

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

JSON = {"content-type": "application/json"}


def shape(r) -> dict:
    assert r.status_code < 500, (r.request.method, r.request.url.path, r.status_code, r.text[:200])
    assert r.headers["content-type"].startswith("application/json"), r.text[:200]
    body = r.json()
    assert set(body) >= {"error", "error_description"}, body
    return body


async def test_hostile_requests_get_a_4xx_in_the_documented_shape_at_every_service(stack, http):
    ent = await open_enterprise(stack.base_url, stack.env, http)
    gw, eid = stack.base_url, ent.enterprise_id
    admin = {"Authorization": f"Bearer {ent.admin_token}"}
    deep = b'{"a":' + b"[" * 25_000 + b"]" * 25_000 + b"}"
    posts = [
        (f"/e/{eid}/admin/token", {}),
        (f"/e/{eid}/locker/authn", {}),
        (f"/e/{eid}/admin/users", admin),
        (f"/e/{eid}/admin/app-profiles", admin),
        (f"/session/e/{eid}/devices", admin),
        (f"/policy/e/{eid}/cloud-connection/establish-trust", admin),
    ]
    for path, headers in posts:
        for body in (deep, b'{"a": 1, "a": 2}', b"{", b"\xff\xfe"):
            r = await http.post(gw + path, content=body, headers={**JSON, **headers})
            assert r.status_code == 400 and shape(r)["error"] == "invalid_request", (path, body[:10])
        r = await http.post(gw + path, content=b"x" * 300_000, headers={**JSON, **headers})
        assert r.status_code == 413 and shape(r)["error"] == "invalid_request"  # nginx's own refusal
    r = await http.put(gw + f"/policy/e/{eid}/user-policies/p", content=deep, headers={**JSON, **admin})
    assert r.status_code == 400 and "nested deeper" in shape(r)["error_description"]

    password = "s3cr3t-" + secrets.token_hex(4)
    short = {"username": "u", "display_name": "U", "password": password[:7]}
    r = await http.post(gw + f"/e/{eid}/admin/users", json=short, headers=admin)
    assert r.status_code == 400 and "body.password" in shape(r)["error_description"] and password[:7] not in r.text
    long_password = password * 100
    r = await http.post(
        gw + f"/e/{eid}/locker/authn", json={"device_id": "d", "username": "u", "password": long_password}
    )
    assert r.status_code == 400 and long_password[:40] not in r.text
    r = await http.post(gw + f"/e/{eid}/admin/users", json={"username": "nul", "display_name": "N\x00"}, headers=admin)
    assert (
        r.status_code == 400
        and shape(r)["error_description"] == "body.display_name: must not contain control characters"
    )

    for path in (f"/e/{eid}/admin/users", f"/policy/e/{eid}/org-settings", f"/audit/e/{eid}/records",
                 f"/session/e/{eid}/devices"):  # fmt: skip
        r = await http.get(gw + path)
        assert r.status_code == 401 and shape(r)["error"] == "unauthorized" and r.headers["www-authenticate"], path
    made_up = f"made-up-{secrets.token_hex(4)}"  # a real token at a made-up enterprise: no key set is looked up
    for path in (f"/policy/e/{made_up}/readiness", f"/audit/e/{made_up}/records"):
        r = await http.get(gw + path, headers=admin)
        assert r.status_code == 401 and shape(r)["error_description"] == "unknown enterprise", path

    key = {"Idempotency-Key": secrets.token_hex(8)}
    first = await http.post(gw + f"/policy/e/{eid}/cloud-connection/provisioning-code", headers={**admin, **key})
    again = await http.post(gw + f"/policy/e/{eid}/cloud-connection/provisioning-code", headers={**admin, **key})
    assert first.status_code == 201 and again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
