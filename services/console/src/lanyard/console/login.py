"""Signing in and out: the console as an OIDC client of the enterprise's IdP.

GET  /console/                      pick an enterprise (or go to the one signed in)
GET  /console/e/{eid}/login         start: PKCE, state and nonce parked server-side, bound to
                                    this browser by a cookie; 303 to the IdP's /authorize
GET  /console/e/{eid}/callback      finish: the code redeemed, ID and access token validated,
                                    a session (new cookie value: no fixation); 303 to `next`
POST /console/e/{eid}/logout        revoke the grant, drop the session, RP-initiated logout at the IdP
"""

from __future__ import annotations

import re

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from lanyard.console.adapters.identity import SignInFailed
from lanyard.console.web import LOGIN_COOKIE, SESSION_COOKIE, Refused, console_of, posted, render

EID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def safe_next(eid: str, value: str | None) -> str:
    """Only a path of this enterprise's console; anything else goes to its front page."""
    home = f"/console/e/{eid}/"
    if not value or not value.startswith(home) or "//" in value or "\\" in value or len(value) > 1024:
        return home
    return value


def _check_eid(eid: str) -> None:
    if not EID.match(eid):
        raise Refused(404, "No such organisation.")


def login_router() -> APIRouter:
    r = APIRouter(prefix="/console")

    def cookie(response: Response, request: Request, name: str, value: str, max_age: int, samesite: str) -> None:
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            path="/console/",
            httponly=True,
            samesite=samesite,  # type: ignore[arg-type]
            secure=console_of(request).settings.cookie_secure,
        )

    @r.get("/")
    async def front(request: Request, enterprise_id: str | None = None) -> Response:
        console = console_of(request)
        if enterprise_id:
            _check_eid(enterprise_id)
            return RedirectResponse(f"/console/e/{enterprise_id}/", 303)
        session = await console.sessions.get(request.cookies.get(SESSION_COOKIE))
        if session is not None:
            return RedirectResponse(f"/console/e/{session.enterprise_id}/", 303)
        return render("front.html", title="Lanyard admin console", signed_out=request.query_params.get("bye"))

    @r.get("/e/{enterprise_id}/login")
    async def start(request: Request, enterprise_id: str, next: str | None = None) -> Response:
        _check_eid(enterprise_id)
        console = console_of(request)
        pending, url = console.identity.start(enterprise_id, safe_next(enterprise_id, next))
        binding = await console.sessions.park_sign_in(pending)
        response = RedirectResponse(url, 303)
        cookie(response, request, LOGIN_COOKIE, binding, console.settings.login_ttl_s, "lax")
        return response

    @r.get("/e/{enterprise_id}/callback")
    async def callback(request: Request, enterprise_id: str) -> Response:
        _check_eid(enterprise_id)
        console = console_of(request)
        q = request.query_params
        pending = await console.sessions.take_sign_in(q.get("state"), request.cookies.get(LOGIN_COOKIE))
        if pending is None or pending.enterprise_id != enterprise_id:
            return _failed("This sign-in expired or was started in another browser.", enterprise_id)
        if q.get("error"):
            reason = "You are not allowed to sign in here." if q.get("error") == "access_denied" else "Sign-in failed."
            return _failed(reason, enterprise_id)
        code = q.get("code")
        if not code:
            return _failed("The sign-in answer had no code.", enterprise_id)
        try:
            tokens = await console.identity.redeem(pending, code, q.get("iss"))
        except SignInFailed as exc:
            return _failed(f"Sign-in failed: {exc.reason}.", enterprise_id)
        previous = await console.sessions.get(request.cookies.get(SESSION_COOKIE))
        if previous is not None:
            await console.sessions.drop(previous)
        value, _ = await console.sessions.create(tokens, enterprise_id)
        response = RedirectResponse(pending.next_path, 303)
        cookie(response, request, SESSION_COOKIE, value, console.settings.session_max_s, "strict")
        response.delete_cookie(LOGIN_COOKIE, path="/console/")
        return response

    @r.post("/e/{enterprise_id}/logout")
    async def logout(request: Request, enterprise_id: str) -> Response:
        ctx, _ = await posted(request, enterprise_id, ("superadmin", "admin", "auditor"))
        console = ctx.console
        if ctx.session.refresh_token:
            await console.identity.revoke(enterprise_id, ctx.session.refresh_token)
        await console.sessions.drop(ctx.session)
        response = RedirectResponse(console.identity.logout_url(enterprise_id, ctx.session.id_token), 303)
        response.delete_cookie(SESSION_COOKIE, path="/console/")
        return response

    return r


def _failed(message: str, eid: str) -> Response:
    return render("signin_failed.html", 400, title="Sign-in failed", message=message, eid=eid)
