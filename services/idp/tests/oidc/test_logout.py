"""RP-initiated logout: security.md §1.4 modules and §5.5 rows L1–L4 (back-channel delivery
itself, §1.5, belongs to the devices side's queue; we test that logout enqueues it)."""

import pytest

pytestmark = pytest.mark.integration


async def logged_in(world):
    sid = await world.login()
    tokens = await world.tokens()
    return sid, tokens


def assert_no_redirect(r):
    assert r.status_code in (200, 400) and "location" not in r.headers
    assert r.headers["x-frame-options"] == "DENY"


async def test_logout_discovery_has_end_session_endpoint(world):
    meta = (await world.http.get(world.url("/.well-known/openid-configuration"))).json()
    assert meta["end_session_endpoint"] == f"{world.issuer}/logout"


async def test_rp_initiated_logout_redirects_with_state_then_prompt_none_fails(world):
    sid, tokens = await logged_in(world)
    r = await world.http.get(
        world.url("/logout"),
        params={"id_token_hint": tokens["id_token"], "post_logout_redirect_uri": world.logout_redirect, "state": "xyz"},
    )
    assert r.status_code == 303 and r.headers["location"] == world.logout_redirect + "?state=xyz"
    assert sid in world.browser.ended
    p = world.auth_params(prompt="none")
    assert world.q(await world.authorize(p))["error"] == "login_required"


async def test_L1_bad_post_logout_redirect_uri(world):
    sid, tokens = await logged_in(world)
    for uri in ("https://evil.test/", world.logout_redirect + "?foo=bar"):
        r = await world.http.get(
            world.url("/logout"), params={"id_token_hint": tokens["id_token"], "post_logout_redirect_uri": uri}
        )
        assert_no_redirect(r)
    assert sid not in world.browser.ended  # only a confirmation was asked


async def test_L2_modified_none_or_missing_hint_confirms(world):
    sid, tokens = await logged_in(world)
    h, c, s = tokens["id_token"].split(".")
    for hint in (world.unsigned(tokens["id_token"]), h + "." + c + "." + s[:-4] + "AAAA", None):
        params = {"post_logout_redirect_uri": world.logout_redirect, "state": "s"}
        if hint:
            params["id_token_hint"] = hint
        r = await world.http.get(world.url("/logout"), params=params)
        assert_no_redirect(r)
        assert "Sign out" in r.text
    assert sid not in world.browser.ended


async def test_logout_no_params_confirm_then_logged_out(world):
    sid, tokens = await logged_in(world)
    r = await world.http.get(world.url("/logout"))
    assert_no_redirect(r)
    token = r.text.split("name=confirm value='")[1].split("'")[0]
    done = await world.http.post(world.url("/logout"), data={"confirm": token})
    assert done.status_code == 200 and "signed out" in done.text.lower()
    assert sid in world.browser.ended
    assert (await world.introspect(tokens["access_token"])).json() == {"active": False}
    again = await world.http.post(world.url("/logout"), data={"confirm": token})
    assert again.status_code == 400  # single use


async def test_logout_no_post_logout_redirect_uri_shows_logged_out(world):
    sid, tokens = await logged_in(world)
    r = await world.http.get(world.url("/logout"), params={"id_token_hint": tokens["id_token"]})
    assert r.status_code == 200 and "signed out" in r.text.lower() and sid in world.browser.ended


async def test_logout_no_state_redirects_without_state(world):
    _, tokens = await logged_in(world)
    r = await world.http.post(
        world.url("/logout"),
        data={"id_token_hint": tokens["id_token"], "post_logout_redirect_uri": world.logout_redirect},
    )
    assert r.status_code == 303 and r.headers["location"] == world.logout_redirect
    assert world.q(await world.authorize(world.auth_params(prompt="none")))["error"] == "login_required"


async def test_logout_client_id_must_match_hint(world):
    _, tokens = await logged_in(world)
    r = await world.http.get(
        world.url("/logout"),
        params={
            "id_token_hint": tokens["id_token"],
            "post_logout_redirect_uri": world.logout_redirect,
            "client_id": "pub",
        },
    )
    assert_no_redirect(r)


async def test_L3_after_logout_everything_of_the_session_is_dead(world):
    _sid, tokens = await logged_in(world)
    offline = await world.tokens(scope="openid offline_access")
    await world.http.get(world.url("/logout"), params={"id_token_hint": tokens["id_token"]})
    for t in (tokens, offline):
        assert (await world.refresh(t["refresh_token"])).status_code == 400
        assert (await world.introspect(t["access_token"])).json() == {"active": False}
        assert (
            await world.http.get(world.url("/userinfo"), headers={"Authorization": f"Bearer {t['access_token']}"})
        ).status_code == 401
    types = world.publisher.types()
    assert "oidc.session_revoked.v1" in types
    assert any(e.type == "oidc.tokens_revoked.v1" and e.payload.reason == "logout" for e in world.publisher.events)


async def test_L4_logout_enqueues_backchannel_for_clients_with_uri(world):
    sid, tokens = await logged_in(world)
    await world.tokens("pub")  # a client without a back-channel URI in the same session
    await world.http.get(world.url("/logout"), params={"id_token_hint": tokens["id_token"]})
    assert world.backchannel.queued == [(world.eid, "conf", sid, "u1", None)]
    # The logout token itself (typ logout+jwt, events, sid/sub, no nonce) is built and sent by the
    # devices side's back-channel worker (lanyard.idp.devices.backchannel), which tests it.
