"""Hostile JWTs and device proofs at every place one comes in, on the whole stack through the
gateway (issue 17). The verifiers' unit tests (libs/runtime/tests/unit/test_tokens.py,
test_proofs.py, services/idp/tests/oidc/test_jwt.py) prove the rules one by one; this proves
every entry point is wired to them: a bearer token at userinfo and at each service's admin API,
a token to introspect, an `id_token_hint` at logout, the checkout assertion, the device proof of
a Locker call and of the SSO extension's authorization request. Each hostile token is refused
with a 4xx in the documented shape (introspection: 200 `active: false`) — never a 5xx, never
accepted, never a stack trace or the token echoed back. A face result signed by another key is
a failed verification (counted towards the limit), never an unlock."""

from __future__ import annotations

import base64
import json
import time

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey

from lanyard.harness.admin import open_enterprise
from lanyard.harness.device import Device, redeem
from lanyard.runtime.proofs import sign_device_proof, sign_device_result

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def b64(data: dict | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def parts(token: str) -> tuple[dict, dict]:
    header, body = token.split(".")[:2]
    return tuple(json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4))) for p in (header, body))


def hostile(real: str, public_jwk: dict, id_token: str) -> dict[str, str]:
    """Tokens made from a real one without the IdP's private key, each a known attack."""
    header, claims = parts(real)
    signature = real.rsplit(".", 1)[1]
    body = b64(claims)
    public_pem = json.dumps(public_jwk, sort_keys=True).encode()
    return {
        "alg none": f"{b64({**header, 'alg': 'none'})}.{body}.",
        "HS256 with the public key": jwt.encode({**header, "alg": "HS256"}, claims, OctKey.import_key(public_pem)),
        "unknown kid": f"{b64({**header, 'kid': 'no-such-key'})}.{body}.{signature}",
        "hostile kid": f"{b64({**header, 'kid': '../../../etc/passwd' + '%00' * 50})}.{body}.{signature}",
        "key in the header": f"{b64({**header, 'jwk': public_jwk})}.{body}.{signature}",
        "oversized": f"{b64(header)}.{b64({**claims, 'pad': 'x' * 60_000})}.{signature}",
        "expired (resigned by nobody)": f"{b64(header)}.{b64({**claims, 'exp': int(time.time()) - 3600})}.{signature}",
        "wrong aud": f"{b64(header)}.{b64({**claims, 'aud': 'another-app'})}.{signature}",
        "id token as access token (typ JWT)": id_token,
        "nested JWS": f"{b64({**header, 'cty': 'JWT'})}.{b64(real.encode())}.{signature}",
        "tampered": f"{b64(header)}.{b64({**claims, 'sub': 'someone-else'})}.{signature}",
        "not a JWT": "a.b.c",
    }


def refused(r, token: str, where: str) -> None:
    assert 400 <= r.status_code < 500, (where, r.status_code, r.text[:200])
    assert "Traceback" not in r.text and token[:60] not in r.text, where


async def test_hostile_tokens_are_refused_at_every_place_a_jwt_comes_in(stack, http):
    ent = await open_enterprise(stack.base_url, stack.env, http)
    e, gw = ent.enterprise_id, stack.base_url
    app = await ent.add_app(name="Charts", client_type="confidential", redirect_uri="https://charts.example/cb")
    nurse = await ent.add_user("nurse")
    await ent.make_ready([nurse], [app])
    device = Device(gw, e, http)
    await ent.enrol_device(device.device_id, device.public_jwk)
    await device.check_out(nurse)
    auth = await device.sso(app)
    assert auth.code, auth
    tokens = await redeem(http, ent.issuer, app, auth)
    jwks = (await http.get(f"{ent.issuer}/jwks")).json()["keys"]
    header, _ = parts(tokens["access_token"])
    public = next(k for k in jwks if k["kid"] == header["kid"])

    for what, token in hostile(tokens["access_token"], public, tokens["id_token"]).items():
        bearer = {"Authorization": f"Bearer {token}"}
        r = await http.get(f"{ent.issuer}/userinfo", headers=bearer)
        refused(r, token, f"userinfo: {what}")
        for path in (
            f"/e/{e}/admin/users",
            f"/policy/e/{e}/org-settings",
            f"/audit/e/{e}/records",
            f"/session/e/{e}/devices",
        ):
            refused(await http.get(gw + path, headers=bearer), token, f"{path}: {what}")
        r = await http.post(f"{ent.issuer}/introspect", data={"token": token}, auth=(app.client_id, app.client_secret))
        if what == "oversized":  # over the token endpoints' body bound: refused before parsing
            refused(r, token, f"introspect: {what}")
        else:
            assert r.status_code == 200 and r.json() == {"active": False}, (what, r.text[:200])
        if token != tokens["id_token"]:  # the real ID token is a genuine hint: it would sign the user out
            r = await http.post(f"{ent.issuer}/logout", data={"id_token_hint": token}, follow_redirects=False)
            assert r.status_code < 500 and "Traceback" not in r.text, (what, r.status_code)
        r = await http.post(
            f"{gw}/session/e/{e}/devices/{device.device_id}/checkout",
            json={"assertion": token},
            headers={
                "Device-Proof": sign_device_proof(
                    device.key, "POST", f"{gw}/session/e/{e}/devices/{device.device_id}/checkout"
                )
            },
        )
        refused(r, token, f"checkout assertion: {what}")
    # The real tokens still work: every refusal above was about the token, not a broken stack.
    assert (
        await http.get(f"{ent.issuer}/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    ).status_code == 200


async def test_hostile_device_proofs_are_refused_at_the_locker_api_and_the_sso_extension(stack, http):
    ent = await open_enterprise(stack.base_url, stack.env, http)
    e, gw = ent.enterprise_id, stack.base_url
    app = await ent.add_app(name="Charts", client_type="confidential", redirect_uri="https://charts.example/cb")
    nurse = await ent.add_user("nurse")
    await ent.make_ready([nurse], [app])
    device = Device(gw, e, http)
    await ent.enrol_device(device.device_id, device.public_jwk)
    await device.check_out(nurse)
    other_key = ECKey.generate_key("P-256", private=True)
    activity = f"{gw}/session/e/{e}/device-sessions/{device.handle}/activity"

    replayed = sign_device_proof(device.key, "POST", activity, handle=device.handle)
    assert (await http.post(activity, headers={"Device-Proof": replayed})).status_code == 200
    cases = {
        "replayed": replayed,
        "for another URL": sign_device_proof(
            device.key, "POST", f"{gw}/session/e/{e}/devices/x/checkout", handle=device.handle
        ),
        "another method": sign_device_proof(device.key, "GET", activity, handle=device.handle),
        "another key": sign_device_proof(other_key, "POST", activity, handle=device.handle),
        "another session": sign_device_proof(device.key, "POST", activity, handle="not-this-one"),
        "stale": sign_device_proof(device.key, "POST", activity, handle=device.handle, iat=time.time() - 3600),
        "alg none": _unsigned(sign_device_proof(device.key, "POST", activity, handle=device.handle)),
        "oversized": sign_device_result(
            device.key,
            {
                "htm": "POST",
                "htu": activity,
                "iat": int(time.time()),
                "jti": "j",
                "dsh": device.handle,
                "pad": "x" * 20_000,
            },
            "device-proof+jwt",
        ),
        "wrong typ": sign_device_result(
            device.key,
            {"htm": "POST", "htu": activity, "iat": int(time.time()), "jti": "k", "dsh": device.handle},
            "JWT",
        ),
        "not a JWT": "garbage",
    }
    for what, proof in cases.items():
        refused(await http.post(activity, headers={"Device-Proof": proof}), proof, f"Locker proof: {what}")

    # The SSO extension's proof over the authorization request URL.
    auth = await device.sso(app)
    assert auth.code  # the honest request works
    url = f"{ent.issuer}/authorize?response_type=code&client_id={app.client_id}&redirect_uri=https://charts.example/cb&scope=openid"
    sso_cases = {
        "another key": sign_device_proof(other_key, "GET", url, handle=device.handle),
        "another URL": sign_device_proof(device.key, "GET", f"{ent.issuer}/token", handle=device.handle),
        "alg none": _unsigned(sign_device_proof(device.key, "GET", url, handle=device.handle)),
        "stale": sign_device_proof(device.key, "GET", url, handle=device.handle, iat=time.time() - 3600),
    }
    replay = sign_device_proof(device.key, "GET", url, handle=device.handle)
    await http.get(url, headers={"Lanyard-Device-Session": device.handle, "Lanyard-Device-Proof": replay})
    sso_cases["replayed"] = replay
    for what, proof in sso_cases.items():
        r = await http.get(
            url,
            headers={"Lanyard-Device-Session": device.handle, "Lanyard-Device-Proof": proof},
            follow_redirects=False,
        )
        assert r.status_code < 500 and "code=" not in r.headers.get("location", ""), (what, r.status_code)

    # A face result signed by another key; the session still works afterwards.
    challenge = f"{gw}/session/e/{e}/device-sessions/{device.handle}/face/challenge"
    c = (
        await http.post(
            challenge, headers={"Device-Proof": sign_device_proof(device.key, "POST", challenge, handle=device.handle)}
        )
    ).json()
    result_url = f"{gw}/session/e/{e}/device-sessions/{device.handle}/face/result"
    forged = sign_device_result(
        other_key,
        {
            "challenge": c["challenge"],
            "sub": device.user_id,
            "match_score": 0.99,
            "liveness_score": 0.99,
            "iat": int(time.time()),
        },
        "face-result+jwt",
    )
    r = await http.post(
        result_url,
        json={"result": forged},
        headers={"Device-Proof": sign_device_proof(device.key, "POST", result_url, handle=device.handle)},
    )
    # A failed verification is an answer (it counts towards the failure limit), never an unlock.
    assert r.status_code == 200 and r.json()["verified"] is False and r.json()["unlocked"] is False, r.text
    assert r.json()["reason"] == "bad_signature" and forged[:60] not in r.text
    assert (await device.heartbeat()).status_code == 200


def _unsigned(token: str) -> str:
    header, body = token.split(".")[:2]
    decoded = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    return f"{b64({**decoded, 'alg': 'none'})}.{body}."
