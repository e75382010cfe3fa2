"""Authorization endpoint: security.md §5.1 rows A1–A24 and the Basic-plan modules (§1.2) that
exercise it. Each test is named after its row."""

import time
from urllib.parse import urlencode

import pytest
from joserfc import jwt

from lanyard.idp.devices.domain import DeviceSsoError

pytestmark = pytest.mark.integration


def assert_error_page(r):
    assert r.status_code >= 400 and "location" not in r.headers
    assert r.headers["content-type"].startswith("text/html")
    assert r.headers["x-frame-options"] == "DENY"


def assert_redirect_error(world, r, error, state=None):
    assert r.status_code == 303, r.text
    q = world.q(r)
    assert q["error"] == error, q
    assert q["iss"] == world.issuer
    if state is not None:
        assert q["state"] == state
    return q


async def test_A1_missing_or_unknown_client_id_error_page(world):
    await world.login()
    for client_id in (None, "nope"):
        r = await world.authorize(world.auth_params(client_id=client_id))
        assert_error_page(r)


@pytest.mark.parametrize(
    "uri",
    [
        "https://rp.example.test/cb?x=2",
        "https://rp.example.test/cb?y=1",
        "https://rp.example.test/cb/",
        "https://RP.example.test/cb",
        "https://rp.example.test/a/../cb",
        "https://rp.example.test@evil.test/cb",
        "https://rp.example.test/cb#frag",
        "http://rp.example.test/cb",
        "https://rp.example.test:8443/cb",
        "https://rp.example.test/%63b",
        "https://evil.test/cb",
    ],
)
async def test_A2_redirect_uri_not_exactly_registered_error_page(world, uri):
    await world.login()
    r = await world.authorize(world.auth_params(redirect_uri=uri))
    assert_error_page(r)


async def test_A2_loopback_any_port_but_nothing_else(world):
    await world.login()
    ok = await world.authorize(world.auth_params("pub", redirect_uri="http://127.0.0.1:51234/cb"))
    assert ok.status_code == 303 and ok.headers["location"].startswith("http://127.0.0.1:51234/cb?code=")
    for bad in ("http://127.0.0.1:51234/cb2", "http://localhost:51234/cb", "http://127.0.0.1:99999/cb"):
        assert_error_page(await world.authorize(world.auth_params("pub", redirect_uri=bad)))


async def test_A3_redirect_uri_omitted_error_page(world):
    await world.login()
    assert_error_page(await world.authorize(world.auth_params(redirect_uri=None)))


async def test_A4_registration_rules_are_the_directory_sides():
    # Redirect URIs are validated when an app profile is saved (lanyard.idp.directory.domain.validate_redirect_uri,
    # owned by the directory side); static clients here cannot register anything.
    from lanyard.idp.directory.domain import InvalidUri, validate_redirect_uri

    for bad in ("myapp:/cb", "https://rp.example.test/cb#x"):
        with pytest.raises(InvalidUri):
            validate_redirect_uri(bad)


async def test_A5_response_type_missing(world):
    await world.login()
    p = world.auth_params(response_type=None)
    assert_redirect_error(world, await world.authorize(p), "invalid_request", p["state"])


@pytest.mark.parametrize("rt", ["token", "id_token token", "code id_token", "none"])
async def test_A6_unsupported_response_type(world, rt):
    await world.login()
    p = world.auth_params(response_type=rt)
    assert_redirect_error(world, await world.authorize(p), "unsupported_response_type", p["state"])


async def test_A7_public_client_without_code_challenge(world):
    await world.login()
    p = world.auth_params("pub", pkce=False)
    q = assert_redirect_error(world, await world.authorize(p), "invalid_request", p["state"])
    assert "code challenge required" in q["error_description"]


@pytest.mark.parametrize("method", ["plain", "S512", None])
async def test_A8_challenge_method_not_s256(world, method):
    await world.login()
    p = world.auth_params(code_challenge_method=method)
    assert_redirect_error(world, await world.authorize(p), "invalid_request", p["state"])


@pytest.mark.parametrize("challenge", ["short", "a" * 44, "a" * 42 + "=", "+" * 43])
async def test_A9_malformed_code_challenge(world, challenge):
    await world.login()
    p = world.auth_params(code_challenge=challenge)
    assert_redirect_error(world, await world.authorize(p), "invalid_request", p["state"])


async def test_A10_duplicate_parameters(world):
    await world.login()
    p = world.auth_params()
    base = urlencode(p)
    r = await world.http.get(world.url("/authorize") + "?" + base + "&scope=openid")
    assert_redirect_error(world, r, "invalid_request", p["state"])
    for name in ("client_id", "redirect_uri"):
        r = await world.http.get(world.url("/authorize") + "?" + base + "&" + urlencode({name: p[name]}))
        assert_error_page(r)
    r = await world.http.get(world.url("/authorize") + "?" + base + "&state=other")
    q = assert_redirect_error(world, r, "invalid_request")
    assert "state" not in q  # a repeated state cannot be echoed byte for byte


async def test_A11_unknown_parameters_ignored(world):
    await world.login()
    r = await world.authorize(world.auth_params(extra="foobar", vendor_x="1"))
    assert "code" in world.q(r)


@pytest.mark.parametrize("scope", ["profile email", "openid bogus", "openid phone"])
async def test_A12_scope_without_openid_or_unknown(world, scope):
    await world.login()
    p = world.auth_params(scope=scope)
    assert_redirect_error(world, await world.authorize(p), "invalid_scope", p["state"])


async def test_A13_prompt_none_without_session(world):
    p = world.auth_params(prompt="none")
    assert_redirect_error(world, await world.authorize(p), "login_required", p["state"])


async def test_A14_prompt_none_with_other_values(world):
    await world.login()
    p = world.auth_params(prompt="none login")
    assert_redirect_error(world, await world.authorize(p), "invalid_request", p["state"])


async def test_A15_foreign_tampered_none_or_other_user_hint(world):
    await world.login()
    tokens = await world.tokens()
    good = tokens["id_token"]
    h, c, s = good.split(".")
    tampered = h + "." + c[:-4] + ("AAAA" if not c.endswith("AAAA") else "BBBB") + "." + s
    unsigned = world.unsigned(good)
    foreign_key = world.keys.keyset(world.other_eid).keys[0]
    foreign = jwt.encode(
        {"alg": "RS256", "kid": foreign_key.kid, "typ": "JWT"}, {"iss": world.issuer, "sub": "u1"}, foreign_key
    )
    for hint in (tampered, unsigned, foreign):
        p = world.auth_params(prompt="none", id_token_hint=hint)
        assert_redirect_error(world, await world.authorize(p), "invalid_request", p["state"])
    world.logout_cookie()
    await world.login("u2")
    p = world.auth_params(prompt="none", id_token_hint=good)
    assert_redirect_error(world, await world.authorize(p), "login_required", p["state"])


async def test_A16_max_age_exceeded_reauthenticates(world):
    cookie, session = await world.browser.create(world.eid, "u1", ("pwd", "otp"))
    object.__setattr__(session, "auth_time", int(time.time()) - 50)
    world.http.cookies.set(world.config.browser_cookie, cookie)
    r = await world.authorize(world.auth_params(max_age="10"))
    assert r.status_code == 303 and r.headers["location"].startswith(f"/e/{world.eid}/login?next=")
    p = world.auth_params(max_age="10", prompt="none")
    assert_redirect_error(world, await world.authorize(p), "login_required", p["state"])


async def test_A17_code_flow_without_nonce_succeeds(world):
    await world.login()
    tokens = await world.tokens(nonce=None)
    assert "nonce" not in jwt.decode(tokens["id_token"], world.keys.keyset(world.eid)).claims


async def test_A18_request_and_request_uri_not_supported(world):
    await world.login()
    p = world.auth_params(request="eyJhbGciOiJub25lIn0.e30.")
    assert_redirect_error(world, await world.authorize(p), "request_not_supported", p["state"])
    p = world.auth_params(request_uri="https://rp.example.test/req.jwt")
    assert_redirect_error(world, await world.authorize(p), "request_uri_not_supported", p["state"])


async def test_A19_oversized_inputs_rejected_early(world):
    await world.login()
    r = await world.authorize(world.auth_params(state="s" * 9000))
    assert r.status_code == 414 and "location" not in r.headers
    r = await world.authorize(world.auth_params(login_hint="<script>" + "x" * 3000))
    assert_error_page(r)
    assert "<script>" not in r.text


async def test_A20_error_description_charset(world):
    await world.login()
    r = await world.authorize(world.auth_params(prompt="none login"))
    desc = world.q(r)["error_description"]
    assert all(0x20 <= ord(c) <= 0x7E and c not in '"\\' for c in desc)
    from lanyard.idp.oidc.errors import safe_description

    assert safe_description('a\r\nb\t"c\\') == "a  b  c "


async def test_A21_pages_not_frameable(world):
    r = await world.authorize({"client_id": "nope"})
    assert r.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]


async def test_A22_no_cors_on_authorize(world):
    r = await world.http.options(
        world.url("/authorize"), headers={"Origin": "https://evil.test", "Access-Control-Request-Method": "GET"}
    )
    assert not any(h.lower().startswith("access-control-") for h in r.headers)
    r = await world.authorize(world.auth_params(), headers={"Origin": "https://evil.test"})
    assert "access-control-allow-origin" not in r.headers


async def test_A23_redirects_are_303(world):
    await world.login()
    p = world.auth_params()
    r = await world.http.post(world.url("/authorize"), data=p)
    assert r.status_code == 303 and "code" in world.q(r)
    world.logout_cookie()
    r = await world.http.post(world.url("/authorize"), data=world.auth_params())
    assert r.status_code == 303


async def test_A24_state_echoed_byte_for_byte(world):
    await world.login()
    state = "a b+c/%20=é&?\u2603"
    r = await world.authorize(world.auth_params(state=state))
    assert world.q(r)["state"] == state
    r = await world.authorize(world.auth_params(state=state, response_type="token"))
    assert world.q(r)["state"] == state


# ---------------------------------------------------------------- Basic plan modules (§1.2)


async def test_basic_01_oidcc_server_happy_path_id_token_checks(world):
    await world.login()
    tokens = await world.tokens(acr_values="urn:lanyard:acr:mfa")
    p = tokens["_params"]
    claims = jwt.decode(tokens["id_token"], await world.keys.verification_keys(world.eid)).claims
    now = time.time()
    assert claims["iss"] == world.issuer and claims["aud"] == "conf" and claims["azp"] == "conf"
    assert claims["exp"] > now and claims["iat"] <= now + 5 and claims["auth_time"] <= now + 5
    assert claims["nonce"] == p["nonce"] and claims["sub"] == "u1" and claims["acr"] == "urn:lanyard:acr:mfa"
    assert claims["amr"] == ["pwd", "otp"] and claims["sid"] and claims["at_hash"]
    assert isinstance(tokens["expires_in"], int)


async def test_basic_02_response_type_missing(world):
    await test_A5_response_type_missing(world)


async def test_basic_03_idtoken_signature_defaults_to_rs256(world):
    await world.login()
    tokens = await world.tokens()
    header = jwt.decode(tokens["id_token"], await world.keys.verification_keys(world.eid)).header
    assert header["alg"] == "RS256" and header["kid"]


# basic_04 oidcc-idtoken-unsigned: not applicable with static clients (no id_token_signed_response_alg
# registration); we never sign with `none` (see test_jwt J1).


@pytest.mark.parametrize("how", ["get", "post-header", "post-body"])
async def test_basic_05_07_userinfo_get_post_header_post_body(world, how):
    await world.login()
    at = (await world.tokens())["access_token"]
    if how == "get":
        r = await world.http.get(world.url("/userinfo"), headers={"Authorization": f"Bearer {at}"})
    elif how == "post-header":
        r = await world.http.post(world.url("/userinfo"), headers={"Authorization": f"Bearer {at}"})
    else:
        r = await world.http.post(world.url("/userinfo"), data={"access_token": at})
    assert r.status_code == 200 and r.json()["sub"] == "u1"


async def test_basic_08_no_nonce_code_flow(world):
    await test_A17_code_flow_without_nonce_succeeds(world)


@pytest.mark.parametrize(
    ("scope", "present", "absent"),
    [
        ("openid profile", {"name", "preferred_username"}, {"email"}),
        ("openid email", {"email"}, {"name"}),
        ("openid profile email", {"name", "email"}, set()),
    ],
)
async def test_basic_09_10_13_scope_claims_via_userinfo(world, scope, present, absent):
    await world.login()
    at = (await world.tokens(scope=scope))["access_token"]
    body = (await world.http.get(world.url("/userinfo"), headers={"Authorization": f"Bearer {at}"})).json()
    assert present <= set(body) and not (absent & set(body))
    assert body["department"] == "ICU"  # the profile's custom claim


# basic_11/12 oidcc-scope-address/phone: we hold no addresses or phone numbers, so those scopes are
# not advertised and are refused (test_A12); the suite skips unadvertised scopes.


async def test_basic_14_alternate_order(world):
    await world.login()
    p = world.auth_params(scope="email offline_access profile openid")
    r = await world.http.get(world.url("/authorize") + "?" + urlencode(dict(reversed(list(p.items())))))
    assert "code" in world.q(r)


@pytest.mark.parametrize("display", ["page", "popup"])
async def test_basic_15_16_display(world, display):
    await world.login()
    assert "code" in world.q(await world.authorize(world.auth_params(display=display)))


async def test_basic_17_prompt_login_reauthenticates_and_auth_time_grows(world):
    cookie, session = await world.browser.create(world.eid, "u1", ("pwd", "otp"))
    object.__setattr__(session, "auth_time", int(time.time()) - 100)
    world.http.cookies.set(world.config.browser_cookie, cookie)
    p = world.auth_params(prompt="login")
    r = await world.authorize(p)
    assert r.status_code == 303 and r.headers["location"].startswith(f"/e/{world.eid}/login?next=")
    next_path = r.headers["location"].split("next=")[1]
    from urllib.parse import unquote

    resume = unquote(next_path.split("&")[0])
    again = await world.http.get(resume)  # the old session does not satisfy prompt=login
    assert again.headers["location"].startswith(f"/e/{world.eid}/login")
    await world.login()  # the login page signs the user in anew
    done = await world.http.get(resume)
    q = world.q(done)
    assert q["state"] == p["state"] and q["iss"] == world.issuer
    tokens = (await world.redeem(q["code"], p)).json()
    claims = jwt.decode(tokens["id_token"], await world.keys.verification_keys(world.eid)).claims
    assert claims["auth_time"] > session.auth_time
    assert "via" in str(world.publisher.events[-2].payload) or world.publisher.events
    assert any(getattr(e.payload, "via", None) == "interactive" for e in world.publisher.events)
    assert (await world.http.get(resume)).status_code == 400  # resumable once


async def test_basic_18_prompt_none_not_logged_in(world):
    await test_A13_prompt_none_without_session(world)


async def test_basic_19_prompt_none_logged_in(world):
    await world.login()
    first = jwt.decode((await world.tokens())["id_token"], await world.keys.verification_keys(world.eid)).claims
    second = jwt.decode(
        (await world.tokens(prompt="none"))["id_token"], await world.keys.verification_keys(world.eid)
    ).claims
    assert (first["sub"], first["auth_time"]) == (second["sub"], second["auth_time"])
    assert any(getattr(e.payload, "via", None) == "silent" for e in world.publisher.events)


async def test_basic_20_max_age_1(world):
    await test_A16_max_age_exceeded_reauthenticates(world)


async def test_basic_21_max_age_10000(world):
    await world.login()
    assert "code" in world.q(await world.authorize(world.auth_params(max_age="10000")))


async def test_basic_22_unknown_parameter(world):
    await test_A11_unknown_parameters_ignored(world)


async def test_basic_23_id_token_hint_prompt_none(world):
    await world.login()
    hint = (await world.tokens())["id_token"]
    assert "code" in world.q(await world.authorize(world.auth_params(prompt="none", id_token_hint=hint)))


@pytest.mark.parametrize(
    "extra",
    [{"login_hint": "alice"}, {"ui_locales": "en fr"}, {"claims_locales": "en"}, {"acr_values": "urn:lanyard:acr:mfa"}],
)
async def test_basic_24_27_hints_and_locales_do_not_error(world, extra):
    await world.login()
    assert "code" in world.q(await world.authorize(world.auth_params(**extra)))


async def test_basic_30_registered_redirect_uri(world):
    await world.login()
    assert_error_page(await world.authorize(world.auth_params(redirect_uri="https://evil.test/cb")))


async def test_basic_31_post_request(world):
    await world.login()
    r = await world.http.post(world.url("/authorize"), data=world.auth_params())
    assert "code" in world.q(r)


# basic_33/34/36 (request_uri / request objects): not supported, rejected as such (test_A18).


async def test_basic_35_claims_essential_name(world):
    await world.login()
    claims = '{"id_token": {"name": {"essential": true}}, "userinfo": {"email": null}}'
    tokens = await world.tokens(scope="openid", claims=claims)
    id_claims = jwt.decode(tokens["id_token"], await world.keys.verification_keys(world.eid)).claims
    assert id_claims["name"] == "Alice Example"
    body = (
        await world.http.get(world.url("/userinfo"), headers={"Authorization": f"Bearer {tokens['access_token']}"})
    ).json()
    assert body["email"] == "alice@example.test" and "name" not in body
    p = world.auth_params(claims="[1]")
    assert_redirect_error(world, await world.authorize(p), "invalid_request", p["state"])


async def test_basic_38_valid_pkce(world):
    await world.login()
    tokens = await world.tokens("pub")
    assert tokens["access_token"]


async def test_redirect_uri_with_registered_query_ok(world):
    # oidcc-redirect-uri-query-OK: an exact match of a registered URI with a query succeeds.
    await world.login()
    r = await world.authorize(world.auth_params(redirect_uri="https://rp.example.test/cb?x=1"))
    assert r.headers["location"].startswith("https://rp.example.test/cb?x=1&code=")


async def test_login_redirect_goes_to_resume_path_under_enterprise(world):
    r = await world.authorize(world.auth_params(login_hint="alice"))
    loc = r.headers["location"]
    assert r.status_code == 303 and loc.startswith(
        f"/e/{world.eid}/login?next=%2Fe%2F{world.eid}%2Fauthorize%2Fresume%2F"
    )
    assert "login_hint=alice" in loc


async def test_unknown_enterprise_404_json(world):
    r = await world.authorize(world.auth_params(), eid="nobody")
    assert r.status_code == 404 and r.json()["error"] == "not_found"


# ---------------------------------------------------------------------- device-session SSO


def device_headers(handle="h1", proof="good-proof"):
    return {"Lanyard-Device-Session": handle, "Lanyard-Device-Proof": proof}


async def test_device_sso_issues_code_and_publishes_activity(world):
    p = world.auth_params("pub")
    r = await world.authorize(p, headers=device_headers())
    q = world.q(r)
    assert q["state"] == p["state"] and q["iss"] == world.issuer and "code" in q
    method, url, _ = world.devices.calls[-1]
    assert method == "GET" and url.startswith(f"{world.base}/e/{world.eid}/authorize?")  # public URL, not Host
    granted = [e for e in world.publisher.events if e.type == "oidc.authorization_granted.v1"][-1]
    assert granted.payload.via == "sso_extension" and granted.payload.device_session_id == "ds1"
    tokens = (await world.redeem(q["code"], p, "pub")).json()
    assert tokens["access_token"]


async def test_device_sso_refusal_redirects_with_action(world):
    world.devices.refuse = DeviceSsoError("interaction_required", "face needed", "face_verification")
    p = world.auth_params("pub")
    q = assert_redirect_error(
        world, await world.authorize(p, headers=device_headers()), "interaction_required", p["state"]
    )
    assert q["lanyard_action"] == "face_verification"


async def test_device_sso_stale_view_temporarily_unavailable(world):
    world.devices.stale = True
    p = world.auth_params("pub")
    assert_redirect_error(
        world, await world.authorize(p, headers=device_headers()), "temporarily_unavailable", p["state"]
    )


async def test_device_sso_bad_client_never_redirects(world):
    r = await world.authorize(world.auth_params("pub", redirect_uri="https://evil.test/"), headers=device_headers())
    assert_error_page(r)
    assert world.devices.calls == []
