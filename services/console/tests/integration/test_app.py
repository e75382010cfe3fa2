"""The console app in process on the real Redis, with the gateway faked by an httpx transport:
sign-in starts with PKCE and a browser binding, bad input gets a 4xx page (never a 500), and
no POST goes through without the session's CSRF token and our own Origin."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from lanyard.console.adapters.identity import Tokens
from lanyard.console.app import create_app
from lanyard.console.settings import ConsoleSettings
from lanyard.console.web import SESSION_COOKIE

pytestmark = pytest.mark.integration

BASE = "https://lanyard.example"


def gateway(request: httpx.Request) -> httpx.Response:
    """The admin APIs, as far as these tests need them."""
    if request.url.path.endswith("/readiness"):
        return httpx.Response(200, json={"ready": False, "checks": []})
    if request.url.path.endswith("/admin/users"):
        return httpx.Response(200, json={"users": []})
    if request.url.path.endswith("/org-settings"):
        return httpx.Response(200, json={"password_autofill_and_sso": False})
    return httpx.Response(404, json={"error": "not_found", "error_description": "no such thing"})


@pytest.fixture
async def console(redis_client):
    settings = ConsoleSettings(public_base_url=BASE, redis_url="redis://unused")
    app = create_app(settings, redis=redis_client, transport=httpx.MockTransport(gateway))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as http:
            yield app, http


async def signed_in(app, http: httpx.AsyncClient, roles=("superadmin",)) -> str:
    tokens = Tokens("at", time.time() + 300, "rt", "idt", "usr_1", "root", "Root", tuple(roles))
    cookie, session = await app.state.console.sessions.create(tokens, "acme")
    http.cookies.set(SESSION_COOKIE, cookie)
    return session.csrf


async def test_a_page_without_a_session_starts_a_pkce_sign_in_bound_to_the_browser(console):
    _, http = console
    r = await http.get("/console/e/acme/users?x=1")
    assert (
        r.status_code == 303
        and r.headers["location"] == "/console/e/acme/login?next=%2Fconsole%2Fe%2Facme%2Fusers%3Fx%3D1"
    )
    start = await http.get(r.headers["location"])
    assert start.status_code == 303
    target = urlsplit(start.headers["location"])
    q = parse_qs(target.query)
    assert f"{BASE}/e/acme/authorize" == f"{target.scheme}://{target.netloc}{target.path}"
    assert q["client_id"] == ["lanyard-console"] and q["code_challenge_method"] == ["S256"]
    assert q["redirect_uri"] == [f"{BASE}/console/e/acme/callback"] and "lanyard:admin" in q["scope"][0]
    cookie = start.headers["set-cookie"]
    assert "HttpOnly" in cookie and "Secure" in cookie and "Path=/console/" in cookie
    # The callback from another browser (no binding cookie) does not sign anyone in.
    http.cookies.clear()
    cb = await http.get("/console/e/acme/callback", params={"state": q["state"][0], "code": "c"})
    assert cb.status_code == 400 and SESSION_COOKIE not in cb.headers.get("set-cookie", "")


async def test_bad_input_is_a_4xx_page(console):
    app, http = console
    assert (await http.get("/console/e/..%2Fx/login")).status_code == 404
    assert (await http.get("/console/e/acme/callback?state=nope&code=x")).status_code == 400
    csrf = await signed_in(app, http)
    assert (await http.get("/console/e/acme/users/bad%20id")).status_code == 400
    assert (await http.get("/console/e/acme/apps/cli_x")).status_code == 404  # the API's 404, shown
    r = await http.post("/console/e/acme/policies", data={"csrf_token": csrf, "policy_id": "p", "priority": "soon"})
    assert r.status_code == 400 and "priority must be a whole number" in r.text
    assert (await http.get("/console/e/acme/nowhere")).status_code == 404


async def test_posts_need_the_csrf_token_and_our_origin_and_roles_decide_the_pages(console):
    app, http = console
    csrf = await signed_in(app, http, roles=("auditor",))
    assert (await http.get("/console/e/acme/")).status_code == 200
    assert (await http.get("/console/e/acme/apps")).status_code == 403
    assert (await http.post("/console/e/acme/logout", data={})).status_code == 403
    foreign = await http.post("/console/e/acme/logout", data={"csrf_token": csrf}, headers={"Origin": "https://evil"})
    assert foreign.status_code == 403
    ours = await http.post("/console/e/acme/logout", data={"csrf_token": csrf}, headers={"Origin": BASE})
    assert ours.status_code == 303 and ours.headers["location"].startswith(f"{BASE}/e/acme/logout?")
    assert (await http.get("/console/e/acme/")).status_code == 303, "the session is gone"
