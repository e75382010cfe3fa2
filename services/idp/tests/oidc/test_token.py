"""Token endpoint: security.md §5.2 rows T1–T14, M2, and Basic-plan modules 28, 29, 32, 37;
plus concurrency against the real Redis (exactly one of N redemptions wins)."""

import asyncio
import base64
import re
from dataclasses import replace

import pytest

pytestmark = pytest.mark.integration


def assert_token_error(r, error, status=400):
    assert r.status_code == status, r.text
    assert r.json()["error"] == error
    assert r.headers["cache-control"] == "no-store"


async def test_T1_get_non_form_and_duplicates(world):
    assert_token_error(await world.http.get(world.url("/token")), "invalid_request")
    r = await world.http.post(
        world.url("/token"), json={"grant_type": "authorization_code"}, auth=("conf", world.secret)
    )
    assert_token_error(r, "invalid_request")
    r = await world.http.post(
        world.url("/token"),
        content="grant_type=refresh_token&grant_type=refresh_token&refresh_token=x",
        headers={"content-type": "application/x-www-form-urlencoded"},
        auth=("conf", world.secret),
    )
    assert_token_error(r, "invalid_request")


@pytest.mark.parametrize("grant_type", ["password", "implicit", "client_credentials", "urn:x"])
async def test_T2_unsupported_grant_types(world, grant_type):
    r = await world.http.post(
        world.url("/token"),
        data={"grant_type": grant_type, "username": "a", "password": "b"},
        auth=("conf", world.secret),
    )
    assert_token_error(r, "unsupported_grant_type")


async def test_T3_bad_client_authentication(world):
    await world.login()
    code, p = await world.code()
    r = await world.redeem(code, p, "conf", client_secret=None)
    r = await world.http.post(
        world.url("/token"),
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": p["redirect_uri"]},
        auth=("conf", "wrong"),
    )
    assert_token_error(r, "invalid_client", 401)
    assert r.headers["www-authenticate"].startswith("Basic")
    r = await world.http.post(
        world.url("/token"), data={"grant_type": "authorization_code", "code": code, "client_id": "conf"}
    )
    assert_token_error(r, "invalid_client", 401)
    r = await world.http.post(
        world.url("/token"), data={"grant_type": "authorization_code", "client_id": "conf", "client_secret": "nope"}
    )
    assert_token_error(r, "invalid_client", 401)
    r = await world.http.post(
        world.url("/token"), data={"grant_type": "authorization_code"}, headers={"Authorization": "Basic !!notb64"}
    )
    assert_token_error(r, "invalid_client", 401)


async def test_T3_basic_header_case_insensitive_and_urlencoded(world):
    await world.login()
    code, p = await world.code()
    cred = base64.b64encode(f"conf:{world.secret}".encode()).decode()
    r = await world.http.post(
        world.url("/token"),
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": p["redirect_uri"],
            "code_verifier": world.verifiers[p["state"]],
        },
        headers={"AUTHORIZATION": f"basic {cred}"},
    )
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("code", ["unknown-code", "", "x" * 500])
async def test_T4_unknown_or_malformed_code(world, code):
    r = await world.redeem(code, {"redirect_uri": world.conf_redirect})
    assert_token_error(r, "invalid_request" if code == "" else "invalid_grant")


async def test_T4_expired_code(world, redis_client):
    await world.login()
    code, p = await world.code()
    keys = [k async for k in redis_client.scan_iter("idp:oidc:*:code:*")]
    ttl = await redis_client.ttl(keys[0])
    assert 0 < ttl <= 60
    await redis_client.delete(*keys)  # what expiry does
    assert_token_error(await world.redeem(code, p), "invalid_grant")


async def test_T5_code_of_another_client(world):
    await world.login()
    code, p = await world.code()
    r = await world.http.post(
        world.url("/token"),
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": p["redirect_uri"]},
        auth=("conf2", world.secret + "2"),
    )
    assert_token_error(r, "invalid_grant")


async def test_T6_redirect_uri_mismatch(world):
    await world.login()
    code, p = await world.code()
    assert_token_error(await world.redeem(code, p, redirect_uri="https://rp.example.test/cb?x=1"), "invalid_grant")


async def test_T7_code_replay_revokes_everything_issued(world):
    await world.login()
    code, p = await world.code()
    first = await world.redeem(code, p)
    assert first.status_code == 200
    assert_token_error(await world.redeem(code, p), "invalid_grant")
    tokens = first.json()
    assert (await world.introspect(tokens["access_token"])).json() == {"active": False}
    assert_token_error(await world.refresh(tokens["refresh_token"]), "invalid_grant")
    r = await world.http.get(world.url("/userinfo"), headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert r.status_code == 401
    revoked = [e for e in world.publisher.events if e.type == "oidc.tokens_revoked.v1"]
    assert revoked and revoked[-1].payload.reason == "code_replay"


async def test_T7_concurrent_redemptions_exactly_one_wins(world):
    await world.login()
    for _ in range(3):
        code, p = await world.code()
        results = await asyncio.gather(*(world.redeem(code, p) for _ in range(12)))
        statuses = sorted(r.status_code for r in results)
        assert statuses.count(200) == 1 and statuses.count(400) == 11
        winner = next(r for r in results if r.status_code == 200).json()
        # the losers replayed the code: what the winner got is revoked
        assert (await world.introspect(winner["access_token"])).json() == {"active": False}


async def test_T8_verifier_missing_or_wrong(world):
    await world.login()
    code, p = await world.code("pub")
    assert_token_error(await world.redeem(code, p, "pub", code_verifier=None), "invalid_grant")
    code, p = await world.code("pub")
    assert_token_error(await world.redeem(code, p, "pub", code_verifier="A" * 50), "invalid_grant")


async def test_T9_pkce_downgrade(world):
    await world.login()
    code, p = await world.code(pkce=False)
    assert_token_error(await world.redeem(code, p, code_verifier="A" * 50), "invalid_grant")


@pytest.mark.parametrize("verifier", ["short", "A" * 129, "A" * 42 + "!", "A" * 43 + " "])
async def test_T10_malformed_verifier(world, verifier):
    await world.login()
    code, p = await world.code("pub")
    r = await world.redeem(code, p, "pub", code_verifier=verifier)
    assert r.status_code == 400 and r.json()["error"] in ("invalid_grant", "invalid_request")


async def test_T11_refresh_unknown_revoked_or_other_client(world):
    await world.login()
    tokens = await world.tokens()
    assert_token_error(await world.refresh("not-a-token"), "invalid_grant")
    r = await world.http.post(
        world.url("/token"),
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        auth=("conf2", world.secret + "2"),
    )
    assert_token_error(r, "invalid_grant")
    ok = await world.refresh(tokens["refresh_token"])  # the other client's attempt burnt nothing
    assert ok.status_code == 200
    await world.http.post(world.url("/revoke"), data={"token": ok.json()["refresh_token"]}, auth=("conf", world.secret))
    assert_token_error(await world.refresh(ok.json()["refresh_token"]), "invalid_grant")


async def test_T11_a_disabled_user_refreshes_nothing_and_the_refusal_burns_nothing(world):
    await world.login()
    tokens = await world.tokens()
    alice = next(u for u in world.users.items.values() if u.user_id == "u1")
    world.users.add(replace(alice, status="disabled"))
    assert_token_error(await world.refresh(tokens["refresh_token"]), "invalid_grant")
    world.users.add(alice)  # enabled again: the refusal rotated nothing
    assert (await world.refresh(tokens["refresh_token"])).status_code == 200


async def test_T11_refresh_after_device_checkin(world):
    r = await world.authorize(
        world.auth_params("pub"), headers={"Lanyard-Device-Session": "h1", "Lanyard-Device-Proof": "good-proof"}
    )
    code = world.q(r)["code"]
    p = world.auth_params("pub")
    p["state"] = [s for s in world.verifiers][-2]
    tokens = (await world.redeem(code, {**p, "redirect_uri": world.pub_redirects[0]}, "pub")).json()
    world.devices.state["ds1"] = "LOCKED"  # until a face verification: not dead, retry
    assert_token_error(await world.refresh(tokens["refresh_token"], "pub"), "temporarily_unavailable", 503)
    world.devices.state["ds1"] = "ACTIVE"
    world.devices.stale = True
    assert_token_error(await world.refresh(tokens["refresh_token"], "pub"), "temporarily_unavailable", 503)
    world.devices.stale = False
    assert (await world.refresh(tokens["refresh_token"], "pub")).status_code == 200  # not burnt by the 503


async def test_T12_rotated_refresh_replay_revokes_family(world):
    await world.login()
    tokens = await world.tokens()
    r1 = (await world.refresh(tokens["refresh_token"])).json()
    assert r1["refresh_token"] != tokens["refresh_token"]
    r2 = (await world.refresh(r1["refresh_token"])).json()  # the app used its new token: the old one is spent
    assert_token_error(await world.refresh(tokens["refresh_token"]), "invalid_grant")
    assert_token_error(await world.refresh(r2["refresh_token"]), "invalid_grant")
    assert (await world.introspect(r2["access_token"])).json() == {"active": False}
    assert any(
        e.type == "oidc.tokens_revoked.v1" and e.payload.reason == "refresh_reuse" for e in world.publisher.events
    )


async def test_T12_retry_of_a_lost_refresh_answer_is_answered_and_the_lost_token_dies(world):
    """The app never got the first answer (a timeout while the IdP waited for the broker): its
    retry with the same token works; the token of the lost answer, if it turns up, is reuse."""
    await world.login()
    tokens = await world.tokens()
    lost = (await world.refresh(tokens["refresh_token"])).json()
    retried = await world.refresh(tokens["refresh_token"])
    assert retried.status_code == 200, retried.text
    assert retried.json()["refresh_token"] != lost["refresh_token"]
    assert (await world.refresh(retried.json()["refresh_token"])).status_code == 200  # the family lives on
    assert_token_error(await world.refresh(lost["refresh_token"]), "invalid_grant")
    assert (await world.introspect(retried.json()["access_token"])).json() == {"active": False}


async def test_T12_replay_after_the_retry_grace_is_reuse(world):
    world.oidc.provider.config = world.config.model_copy(update={"refresh_retry_grace_s": 0})
    await world.login()
    tokens = await world.tokens()
    r1 = (await world.refresh(tokens["refresh_token"])).json()
    await asyncio.sleep(0.01)  # past a zero grace (the store compares milliseconds)
    assert_token_error(await world.refresh(tokens["refresh_token"]), "invalid_grant")
    assert_token_error(await world.refresh(r1["refresh_token"]), "invalid_grant")


async def test_T12_concurrent_refreshes_leave_one_token_and_any_other_kills_the_family(world):
    await world.login()
    tokens = await world.tokens()
    results = await asyncio.gather(*(world.refresh(tokens["refresh_token"]) for _ in range(8)))
    assert all(r.status_code == 200 for r in results)  # each is a retry of the one before
    outcomes = [(await world.refresh(r.json()["refresh_token"])).status_code for r in results]
    assert outcomes.count(200) <= 1 and outcomes.count(400) >= 7, outcomes
    for r in results:
        assert (await world.introspect(r.json()["access_token"])).json() == {"active": False}


async def test_T13_wider_scope_on_refresh(world):
    await world.login()
    tokens = await world.tokens(scope="openid profile")
    assert_token_error(await world.refresh(tokens["refresh_token"], scope="openid profile email"), "invalid_scope")
    narrower = await world.refresh(tokens["refresh_token"], scope="openid")
    assert narrower.status_code == 200 and narrower.json()["scope"] == "openid"


async def test_T14_success_response_shape(world):
    await world.login()
    code, p = await world.code()
    r = await world.redeem(code, p)
    assert r.status_code == 200
    assert r.headers["cache-control"] == "no-store" and r.headers["pragma"] == "no-cache"
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["token_type"] == "Bearer" and isinstance(body["expires_in"], int)
    assert len(code) >= 43 and len(body["refresh_token"]) >= 43  # 256-bit randoms
    assert re.fullmatch(r"[\x20-\x7e]+", body["refresh_token"])  # RFC 6749 A.17 charset


async def test_M2_code_bound_to_client_redirect_pkce_nonce(world):
    await world.login()
    code, p = await world.code("pub")
    assert_token_error(await world.redeem(code, p, "pub", code_verifier="B" * 43), "invalid_grant")
    assert_token_error(await world.redeem(code, p, "pub"), "invalid_grant")  # burnt: single use


async def test_basic_28_codereuse(world):
    await test_T7_code_replay_revokes_everything_issued(world)


async def test_basic_32_client_secret_post(world):
    await world.login()
    code, p = await world.code()
    r = await world.http.post(
        world.url("/token"),
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": p["redirect_uri"],
            "code_verifier": world.verifiers[p["state"]],
            "client_id": "conf",
            "client_secret": world.secret,
        },
    )
    assert r.status_code == 200


async def test_basic_37_refresh_token_bound_to_client(world):
    await test_T11_refresh_unknown_revoked_or_other_client(world)


async def test_events_issued_and_refreshed(world):
    await world.login()
    tokens = await world.tokens()
    await world.refresh(tokens["refresh_token"])
    types = world.publisher.types()
    assert types.index("oidc.authorization_granted.v1") < types.index("oidc.tokens_issued.v1")
    assert types[-1] == "oidc.tokens_refreshed.v1"
    assert all(e.enterprise_id == world.eid for e in world.publisher.events)
