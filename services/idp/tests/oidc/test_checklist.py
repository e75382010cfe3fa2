"""security.md §2: the RFC 9700 and RFC 8252 obligations on the authorization server, one test
per row. Rows proven in detail elsewhere delegate to those tests and say where."""

import pytest

pytestmark = pytest.mark.integration


async def test_9700_2_1_exact_redirect_match_loopback_port_exception(world):
    await world.login()
    assert (await world.authorize(world.auth_params(redirect_uri=world.conf_redirect + "/"))).status_code == 400
    assert "code" in world.q(await world.authorize(world.auth_params("pub", redirect_uri="http://127.0.0.1:4711/cb")))


async def test_9700_2_1_no_open_redirector(world):
    r = await world.authorize({"client_id": "nope", "redirect_uri": "https://evil.test/", "response_type": "code"})
    assert r.status_code == 400 and "location" not in r.headers


async def test_9700_2_1_no_credential_forwarding_303(world):
    r = await world.http.post(world.url("/authorize"), data=world.auth_params())
    assert r.status_code == 303  # never 307: a POST body is not re-sent


async def test_9700_2_1_1_pkce_supported_enforced_and_downgrade_refused(world):
    await world.login()
    assert (await world.tokens("pub"))["access_token"]
    code, p = await world.code(pkce=False)
    r = await world.redeem(code, p, code_verifier="x" * 43)
    assert r.json()["error"] == "invalid_grant"


async def test_9700_2_1_1_pkce_detectable_s256_only(world):
    m = (await world.http.get(world.url("/.well-known/openid-configuration"))).json()
    assert m["code_challenge_methods_supported"] == ["S256"]


async def test_9700_2_1_2_no_implicit(world):
    await world.login()
    assert (
        world.q(await world.authorize(world.auth_params(response_type="token")))["error"] == "unsupported_response_type"
    )


# 2.2.1 sender-constrained tokens (DPoP/mTLS): not offered; public clients' refresh tokens are
# rotated instead (next test), which RFC 9700 §2.2.2 accepts.


async def test_9700_2_2_2_refresh_rotation_for_public_clients(world):
    await world.login()
    tokens = await world.tokens("pub")
    new = (await world.refresh(tokens["refresh_token"], "pub")).json()
    assert new["refresh_token"] != tokens["refresh_token"]
    newer = (await world.refresh(new["refresh_token"], "pub")).json()  # the old one is spent once its successor is used
    assert (await world.refresh(tokens["refresh_token"], "pub")).status_code == 400
    assert (await world.refresh(newer["refresh_token"], "pub")).status_code == 400  # family revoked


async def test_9700_4_14_2_refresh_bound_to_scope(world):
    await world.login()
    tokens = await world.tokens(scope="openid")
    assert (await world.refresh(tokens["refresh_token"], scope="openid email")).json()["error"] == "invalid_scope"


async def test_9700_2_3_audience_restricted_short_access_tokens(world):
    await world.login()
    tokens = await world.tokens()
    body = (await world.introspect(tokens["access_token"])).json()
    assert body["aud"] == f"{world.issuer}/userinfo" and body["aud"] != "conf"
    assert body["exp"] - body["iat"] <= 300


async def test_9700_2_4_no_password_grant(world):
    r = await world.http.post(
        world.url("/token"),
        data={"grant_type": "password", "username": "alice", "password": "x"},
        auth=("conf", world.secret),
    )
    assert r.json()["error"] == "unsupported_grant_type"


async def test_9700_2_5_confidential_clients_authenticate(world):
    await world.login()
    code, p = await world.code()
    r = await world.http.post(
        world.url("/token"),
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": p["redirect_uri"], "client_id": "conf"},
    )
    assert r.status_code == 401


async def test_9700_2_6_metadata_published_and_no_cors_on_authorize(world):
    r = await world.http.get(world.url("/.well-known/openid-configuration"))
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "*"
    r = await world.authorize(world.auth_params(), headers={"Origin": "https://x.test"})
    assert "access-control-allow-origin" not in r.headers


async def test_9700_2_6_no_plain_http_redirects_except_loopback(world):
    await world.login()
    assert (await world.authorize(world.auth_params(redirect_uri="http://rp.example.test/cb"))).status_code == 400


async def test_9700_2_6_client_cannot_influence_sub(world):
    await world.login()
    tokens = await world.tokens(claims='{"id_token": {"sub": {"value": "admin"}}}')
    body = (await world.introspect(tokens["access_token"])).json()
    assert body["sub"] == "u1"


async def test_9700_4_2_codes_single_use_and_replay_revokes(world):
    await world.login()
    code, p = await world.code()
    first = (await world.redeem(code, p)).json()
    assert (await world.redeem(code, p)).status_code == 400
    assert (await world.introspect(first["access_token"])).json() == {"active": False}


async def test_9700_4_2_no_referrer_on_authorization_responses(world):
    await world.login()
    r = await world.authorize(world.auth_params())
    assert r.headers["referrer-policy"] == "no-referrer"


async def test_9700_4_4_mix_up_iss(world):
    await world.login()
    assert world.q(await world.authorize(world.auth_params()))["iss"] == world.issuer


# 4.13 reverse-proxy header spoofing: test_discovery.test_M3_*.


async def test_9700_4_16_clickjacking_headers(world):
    r = await world.authorize({"client_id": "nope"})
    assert r.headers["x-frame-options"] == "DENY" and "frame-ancestors 'none'" in r.headers["content-security-policy"]


async def test_9700_10_10_tokens_unguessable(world):
    await world.login()
    tokens = await world.tokens()
    assert len(tokens["refresh_token"]) >= 43  # 32 random bytes, base64url


async def test_8252_8_1_pkce_required_for_public(world):
    await world.login()
    assert world.q(await world.authorize(world.auth_params("pub", pkce=False)))["error"] == "invalid_request"


@pytest.mark.parametrize("uri", ["com.example.app:/oauth2redirect", "https://mobile.example.test/app/redirect/"])
async def test_8252_7_1_7_2_custom_scheme_and_claimed_https(world, uri):
    await world.login()
    assert "code" in world.q(await world.authorize(world.auth_params("pub", redirect_uri=uri)))


async def test_8252_7_3_loopback_any_port_ipv6(world):
    world.clients.items[(world.eid, "pub")] = world.clients.items[(world.eid, "pub")].__class__(
        **{**world.clients.items[(world.eid, "pub")].__dict__, "redirect_uris": ("http://[::1]/cb",)}
    )
    world.oidc.provider._clients.clear()
    await world.login()
    assert "code" in world.q(await world.authorize(world.auth_params("pub", redirect_uri="http://[::1]:8123/cb")))


async def test_8252_8_4_client_type_recorded_public_has_no_secret(world):
    await world.login()
    code, p = await world.code("pub")
    r = await world.http.post(
        world.url("/token"),
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": p["redirect_uri"],
            "client_id": "pub",
            "client_secret": "anything",
            "code_verifier": world.verifiers[p["state"]],
        },
    )
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"


# 8.5 (do not require secrets from native apps): public clients use "none" (test_basic_38).
# 8.6 silent approval needs an assured client identity: exact-registered redirect URIs plus PKCE;
#     device SSO additionally needs the user's entitlement for the app (devices side).
# 8.12 embedded user-agents: nothing to detect server-side in our deployment (SSO extension).
