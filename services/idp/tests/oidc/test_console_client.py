"""The admin console as a built-in public client (issue 16): its access tokens are admin tokens
(aud lanyard-admin, `roles`) that the other services' `require_roles` accepts, and only for
users who hold an admin role; no other client may ask for the admin scope."""

from __future__ import annotations

import secrets
from dataclasses import replace

import pytest
from fastapi import Depends, FastAPI

from lanyard.idp.directory.domain import ADMIN_SCOPE, CONSOLE_CLIENT_ID, User
from lanyard.idp.oidc.grants import s256
from lanyard.runtime.tokens import AdminPrincipal, StaticJwks, TokenVerifier, require_roles

pytestmark = pytest.mark.integration


def console_params(world, **extra):
    verifier = secrets.token_urlsafe(48)
    state = "st-" + secrets.token_hex(4)
    world.verifiers[state] = verifier
    params = {
        "response_type": "code",
        "client_id": CONSOLE_CLIENT_ID,
        "redirect_uri": f"{world.base}/console/e/{world.eid}/callback",
        "scope": f"openid profile {ADMIN_SCOPE}",
        "state": state,
        "nonce": "n",
        "code_challenge": s256(verifier),
        "code_challenge_method": "S256",
    }
    params.update(extra)
    return params


async def console_tokens(world, user_id: str):
    await world.login(user_id)
    params = console_params(world)
    r = await world.authorize(params)
    q = world.q(r)
    assert "code" in q, q
    return await world.redeem(q["code"], params, client=CONSOLE_CLIENT_ID)


async def admin_api_answer(world, token: str, *roles: str) -> int:
    """What a resource server's admin route (the policy service's, say) answers to `token`."""
    jwks = {world.eid: world.keys.keyset(world.eid).as_dict(private=False)}
    verifier = TokenVerifier(world.base, StaticJwks(jwks))
    app = FastAPI()

    @app.get("/e/{enterprise_id}/thing")
    async def thing(who: AdminPrincipal = Depends(require_roles(lambda _: verifier, *roles))):  # noqa: B008
        return {"roles": list(who.roles)}

    import httpx

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://rs") as rs:
        r = await rs.get(f"/e/{world.eid}/thing", headers={"Authorization": f"Bearer {token}"})
    return r.status_code


async def test_console_tokens_of_a_superadmin_are_admin_tokens(world):
    world.users.add(User(world.eid, "adm", "root", "Root", roles=("superadmin",), totp_enrolled=True))
    r = await console_tokens(world, "adm")
    assert r.status_code == 200, r.text
    access = r.json()["access_token"]
    assert await admin_api_answer(world, access, "superadmin") == 200
    assert await admin_api_answer(world, access, "auditor") == 403  # roles are the user's, no more


async def test_refresh_rereads_roles_and_a_demoted_admin_gets_none(world):
    world.users.add(User(world.eid, "adm", "root", "Root", roles=("admin",)))
    body = (await console_tokens(world, "adm")).json()
    refreshed = await world.refresh(body["refresh_token"], client=CONSOLE_CLIENT_ID)
    assert refreshed.status_code == 200
    assert await admin_api_answer(world, refreshed.json()["access_token"], "admin") == 200
    world.users.add(replace(world.users.items[(world.eid, "adm")], roles=("user",)))
    again = await world.refresh(refreshed.json()["refresh_token"], client=CONSOLE_CLIENT_ID)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


async def test_a_user_without_an_admin_role_gets_no_console_token(world):
    r = await console_tokens(world, "u1")
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


async def test_only_the_console_may_ask_for_the_admin_scope(world):
    await world.login("u1")
    r = await world.authorize(world.auth_params("conf", scope=f"openid {ADMIN_SCOPE}"))
    assert world.q(r)["error"] == "invalid_scope"


async def test_ordinary_access_tokens_are_refused_by_admin_apis(world):
    world.users.add(User(world.eid, "adm", "root", "Root", roles=("superadmin",)))
    await world.login("adm")
    tokens = await world.tokens("conf")
    assert await admin_api_answer(world, tokens["access_token"], "superadmin") == 401


async def test_the_console_redirect_uri_is_the_only_one(world):
    await world.login("u1")
    params = console_params(world, redirect_uri="https://evil.example/console/e/acme/callback")
    r = await world.authorize(params)
    assert r.status_code == 400 and "location" not in r.headers
