"""Discovery (security.md §1.3 oidcc-discovery-endpoint-verification), mix-up and issuer rows
M1/M3, and the JWKS."""

import re

import pytest

pytestmark = pytest.mark.integration


async def test_discovery_endpoint_verification(world):
    r = await world.http.get(world.url("/.well-known/openid-configuration"))
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    m = r.json()
    assert m["issuer"] == world.issuer  # equals the discovery base
    for ep in ("authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri"):
        assert m[ep].startswith(world.issuer + "/") and m[ep].startswith("https://")
    assert "openid" in m["scopes_supported"]
    assert m["response_types_supported"] == ["code"]
    assert m["grant_types_supported"] == ["authorization_code", "refresh_token"]
    assert m["subject_types_supported"] == ["public"]
    assert set(m["id_token_signing_alg_values_supported"]) == {"RS256", "ES256"}
    assert "none" not in m["id_token_signing_alg_values_supported"]
    assert m["code_challenge_methods_supported"] == ["S256"]
    assert m["token_endpoint_auth_methods_supported"] == ["client_secret_basic", "client_secret_post", "none"]
    assert isinstance(m["claims_supported"], list) and "sub" in m["claims_supported"]
    assert m["claims_parameter_supported"] is True
    assert m["request_parameter_supported"] is False and m["request_uri_parameter_supported"] is False
    assert m["backchannel_logout_supported"] is True and m["backchannel_logout_session_supported"] is True
    assert m["introspection_endpoint"] and m["revocation_endpoint"] and m["end_session_endpoint"]
    assert all(re.fullmatch(r"[a-z]{2,3}(-[A-Za-z0-9]+)*", loc) for loc in m["ui_locales_supported"])
    jwks = (await world.http.get(m["jwks_uri"].removeprefix(world.base))).json()
    assert {k["kty"] for k in jwks["keys"]} == {"RSA", "EC"}


async def test_unknown_enterprise_404(world):
    for path in ("/.well-known/openid-configuration", "/jwks", "/userinfo"):
        r = await world.http.get(world.url(path, "nobody"))
        assert r.status_code == 404 and r.json()["error"] == "not_found"


async def test_M1_iss_on_success_and_error_and_advertised(world):
    meta = (await world.http.get(world.url("/.well-known/openid-configuration"))).json()
    assert meta["authorization_response_iss_parameter_supported"] is True
    await world.login()
    ok = world.q(await world.authorize(world.auth_params()))
    bad = world.q(await world.authorize(world.auth_params(response_type="token")))
    assert ok["iss"] == bad["iss"] == meta["issuer"]


async def test_M3_host_and_forwarded_headers_do_not_change_issuer(world):
    spoof = {
        "Host": "evil.test",
        "X-Forwarded-Host": "evil.test",
        "X-Forwarded-Proto": "http",
        "Forwarded": "host=evil.test",
    }
    m = (await world.http.get(world.url("/.well-known/openid-configuration"), headers=spoof)).json()
    assert m["issuer"] == world.issuer and "evil" not in str(m)
    await world.login()
    tokens = await world.tokens()
    r = await world.http.post(
        world.url("/introspect"), data={"token": tokens["access_token"]}, auth=("conf", world.secret), headers=spoof
    )
    assert r.json()["iss"] == world.issuer


async def test_enterprise_isolation_token_of_one_issuer_dead_at_another(world):
    await world.login()
    tokens = await world.tokens()
    r = await world.http.get(
        world.url("/userinfo", world.other_eid), headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert r.status_code == 401
    r = await world.http.post(
        world.url("/token", world.other_eid),
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        auth=("conf", world.secret),
    )
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
