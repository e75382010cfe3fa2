"""UserInfo, revocation and introspection: security.md §5.3 rows U1–U6, R1–R4, I1–I2."""

import pytest

pytestmark = pytest.mark.integration


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


async def test_U1_no_credentials_bare_challenge(world):
    r = await world.http.get(world.url("/userinfo"))
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"


async def test_U2_malformed_or_token_in_two_places(world):
    await world.login()
    at = (await world.tokens())["access_token"]
    r = await world.http.post(world.url("/userinfo"), headers=bearer(at), data={"access_token": at})
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    r = await world.http.get(world.url("/userinfo"), headers={"Authorization": "Basic Zm9vOmJhcg=="})
    assert r.status_code == 400 and 'error="invalid_request"' in r.headers["www-authenticate"]


async def test_U3_expired_revoked_unknown_token(world):
    await world.login()
    tokens = await world.tokens()
    for token in ("garbage", tokens["access_token"][:-3] + "abc"):
        r = await world.http.get(world.url("/userinfo"), headers=bearer(token))
        assert r.status_code == 401 and 'error="invalid_token"' in r.headers["www-authenticate"]
    iss = world.issuer
    key = await world.keys.signing_key(world.eid, "ES256")
    from joserfc import jwt

    expired = jwt.encode(
        {"alg": "ES256", "kid": key.kid, "typ": "at+jwt"},
        {"iss": iss, "sub": "u1", "aud": f"{iss}/userinfo", "exp": 1, "iat": 0, "gid": "x", "scope": "openid"},
        key,
    )
    assert (await world.http.get(world.url("/userinfo"), headers=bearer(expired))).status_code == 401
    await world.http.post(world.url("/revoke"), data={"token": tokens["access_token"]}, auth=("conf", world.secret))
    assert (await world.http.get(world.url("/userinfo"), headers=bearer(tokens["access_token"]))).status_code == 401


async def test_U3_after_device_checkin(world):
    r = await world.authorize(
        world.auth_params("pub"), headers={"Lanyard-Device-Session": "h1", "Lanyard-Device-Proof": "good-proof"}
    )
    state = world.q(r)["state"]
    params = {"redirect_uri": world.pub_redirects[0], "state": state}
    tokens = (await world.redeem(world.q(r)["code"], params, "pub")).json()
    assert (await world.http.get(world.url("/userinfo"), headers=bearer(tokens["access_token"]))).status_code == 200
    world.devices.state["ds1"] = "CLOSED"  # the read model saw the check-in before the revoker ran
    assert (await world.http.get(world.url("/userinfo"), headers=bearer(tokens["access_token"]))).status_code == 401
    assert (await world.introspect(tokens["access_token"])).json() == {"active": False}


async def test_U4_insufficient_scope(world):
    # every token we issue has openid; a resource token without it (minted as we would) is 403
    key = await world.keys.signing_key(world.eid, "ES256")
    await world.login()
    tokens = await world.tokens()
    from joserfc import jwt

    claims = jwt.decode(tokens["access_token"], await world.keys.verification_keys(world.eid)).claims
    claims["scope"] = "offline_access"
    narrowed = jwt.encode({"alg": "ES256", "kid": key.kid, "typ": "at+jwt"}, claims, key)
    r = await world.http.get(world.url("/userinfo"), headers=bearer(narrowed))
    assert r.status_code == 403 and 'error="insufficient_scope"' in r.headers["www-authenticate"]


async def test_U5_id_or_refresh_token_as_access_token(world):
    await world.login()
    tokens = await world.tokens()
    for token in (tokens["id_token"], tokens["refresh_token"]):
        r = await world.http.get(world.url("/userinfo"), headers=bearer(token))
        assert r.status_code == 401
        assert (await world.introspect(token)).json() == {"active": False} or token == tokens["refresh_token"]
    key = await world.keys.signing_key(world.eid, "RS256")
    from joserfc import jwt

    claims = jwt.decode(tokens["access_token"], await world.keys.verification_keys(world.eid)).claims
    logout_token = jwt.encode({"alg": "RS256", "kid": key.kid, "typ": "logout+jwt"}, claims, key)
    assert (await world.http.get(world.url("/userinfo"), headers=bearer(logout_token))).status_code == 401


async def test_U6_token_in_query_not_accepted(world):
    await world.login()
    at = (await world.tokens())["access_token"]
    r = await world.http.get(world.url("/userinfo"), params={"access_token": at})
    assert r.status_code in (400, 401)


async def test_R1_unknown_token_200(world):
    for token in ("nope", "a.b.c"):
        r = await world.http.post(world.url("/revoke"), data={"token": token}, auth=("conf", world.secret))
        assert r.status_code == 200


async def test_R2_other_clients_token_refused(world):
    await world.login()
    tokens = await world.tokens()
    for token in (tokens["access_token"], tokens["refresh_token"]):
        r = await world.http.post(world.url("/revoke"), data={"token": token}, auth=("conf2", world.secret + "2"))
        assert r.status_code == 400 and r.json()["error"] == "unauthorized_client"
    assert (await world.introspect(tokens["access_token"])).json()["active"] is True
    r = await world.http.post(world.url("/revoke"), data={"token": tokens["access_token"]}, auth=("conf", "bad"))
    assert r.status_code == 401


async def test_R3_unsupported_token_type(world):
    r = await world.http.post(
        world.url("/revoke"), data={"token": "x", "token_type_hint": "id_token"}, auth=("conf", world.secret)
    )
    assert r.status_code == 400 and r.json()["error"] == "unsupported_token_type"


async def test_R4_revoking_refresh_kills_family_and_access_tokens(world):
    await world.login()
    tokens = await world.tokens()
    rotated = (await world.refresh(tokens["refresh_token"])).json()
    r = await world.http.post(
        world.url("/revoke"),
        data={"token": rotated["refresh_token"], "token_type_hint": "refresh_token"},
        auth=("conf", world.secret),
    )
    assert r.status_code == 200
    for at in (tokens["access_token"], rotated["access_token"]):
        assert (await world.introspect(at)).json() == {"active": False}
    assert (await world.refresh(rotated["refresh_token"])).status_code == 400
    assert any(
        e.type == "oidc.tokens_revoked.v1" and e.payload.reason == "revocation_endpoint" for e in world.publisher.events
    )


async def test_R_public_client_revokes_with_client_id(world):
    await world.login()
    tokens = await world.tokens("pub")
    r = await world.http.post(world.url("/revoke"), data={"token": tokens["refresh_token"], "client_id": "pub"})
    assert r.status_code == 200
    assert (await world.refresh(tokens["refresh_token"], "pub")).status_code == 400


async def test_I1_unauthenticated_introspection_401(world):
    await world.login()
    tokens = await world.tokens("pub")
    assert (await world.introspect(tokens["access_token"], auth=None)).status_code == 401
    r = await world.http.post(world.url("/introspect"), data={"token": tokens["access_token"], "client_id": "pub"})
    assert r.status_code == 401
    assert (await world.introspect(tokens["access_token"], auth=("conf", "wrong"))).status_code == 401


async def test_I2_inactive_or_unknown_active_false(world):
    await world.login()
    tokens = await world.tokens()
    live = (await world.introspect(tokens["access_token"])).json()
    assert live["active"] is True and live["client_id"] == "conf" and live["sub"] == "u1" and live["scope"]
    rt = (await world.introspect(tokens["refresh_token"])).json()
    assert rt["active"] is True and rt["token_type"] == "refresh_token"
    assert (await world.introspect("unknown")).json() == {"active": False}
    # another enterprise's client cannot see it, and our token is nothing at the other issuer
    r = await world.http.post(
        world.url("/introspect", world.other_eid), data={"token": tokens["access_token"]}, auth=("conf", world.secret)
    )
    assert r.json() == {"active": False}


async def test_introspection_of_locked_session_stays_active_closed_is_not(world):
    r = await world.authorize(
        world.auth_params("pub"), headers={"Lanyard-Device-Session": "h1", "Lanyard-Device-Proof": "good-proof"}
    )
    tokens = (
        await world.redeem(
            world.q(r)["code"], {"redirect_uri": world.pub_redirects[0], "state": world.q(r)["state"]}, "pub"
        )
    ).json()
    world.devices.state["ds1"] = "LOCKED"
    assert (await world.introspect(tokens["access_token"])).json()["active"] is True
    world.devices.stale = True  # cannot vouch: fail closed
    assert (await world.introspect(tokens["access_token"])).json() == {"active": False}
