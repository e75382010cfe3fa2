"""The interactive login page, `/e/{enterprise_id}/login`: server-rendered HTML for browsers and
for conformance scripts (plain form fields `username`, `password`, `totp`, plus the hidden
`csrf_token` from the GET).

Flow: GET form → POST password (and optionally `totp` at once) → when a second factor is needed
and not given, 303 to `/login/totp` → POST code → a BrowserSession cookie (`lanyard_session`) and
303 to `next` (only this enterprise's authorization endpoint: `domain.safe_next`; otherwise the
"signed in" page). Every answer to a POST is a 303 (never 307: the browser must not re-send
credentials, RFC 9700 §4.12).

`next` rides along every step (query string and hidden field), not only in the pending login: when
the pending login expires (300 s) before the code is entered, the restart at
`/login?error=expired` still carries it, so the app's authorization request (kept 600 s) completes
after the new sign-in instead of being dropped.
Pages cannot be framed, are never cached and post only to us (`lanyard.idp.web.PAGE_HEADERS`).
CSRF: a random token in an HttpOnly SameSite=Strict cookie must equal the form's hidden field.
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import DictLoader, Environment, select_autoescape

from lanyard.idp.directory.api import DirectorySide
from lanyard.idp.directory.authn import PASSWORD_AMR, TOTP_AMR, AuthError
from lanyard.idp.directory.domain import safe_next
from lanyard.idp.directory.ports import BrowserSessions, PendingLogins
from lanyard.idp.web import PAGE_HEADERS
from lanyard.runtime.bodies import BodyRefused, BoundedRoute, read_form
from lanyard.runtime.text import UnsafeText, clean_text

SESSION_COOKIE = "lanyard_session"
CSRF_COOKIE = "lanyard_csrf"
PENDING_COOKIE = "lanyard_pending"
MESSAGES = {
    "invalid": "The username, password or code is not valid.",
    "locked": "Too many failed attempts. Try again later.",
    "csrf": "The form expired. Please try again.",
    "expired": "The sign-in took too long. Please start again.",
    "not_enrolled": "A second factor is required, but none is enrolled for this account. Contact your administrator.",
    "bad_request": "Please fill in every field.",
}

_TEMPLATES = {
    "base.html": """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title>
<style>body{font-family:system-ui,sans-serif;max-width:24rem;margin:3rem auto;padding:0 1rem}
label{display:block;margin:.8rem 0 .2rem}input{width:100%;padding:.5rem;box-sizing:border-box}
button{margin-top:1rem;padding:.6rem 1rem}.error{color:#a00}</style></head>
<body><h1>{{ title }}</h1>
{% if message %}<p class="error" role="alert">{{ message }}</p>{% endif %}
{% block body %}{% endblock %}</body></html>""",
    "login.html": """{% extends "base.html" %}{% block body %}
<form method="post" action="{{ action }}">
<input type="hidden" name="csrf_token" value="{{ csrf }}">
<input type="hidden" name="next" value="{{ next or '' }}">
<label for="username">Username</label>
<input id="username" name="username" autocomplete="username" required autofocus>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button>
</form>{% endblock %}""",
    "totp.html": """{% extends "base.html" %}{% block body %}
<form method="post" action="{{ action }}">
<input type="hidden" name="csrf_token" value="{{ csrf }}">
<input type="hidden" name="next" value="{{ next or '' }}">
<label for="totp">Code from your authenticator app</label>
<input id="totp" name="totp" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{6}" required autofocus>
<button type="submit">Verify</button>
</form>{% endblock %}""",
    "done.html": """{% extends "base.html" %}{% block body %}
<p>You are signed in. You can close this window.</p>{% endblock %}""",
    "error.html": """{% extends "base.html" %}{% block body %}{% endblock %}""",
}
_env = Environment(loader=DictLoader(_TEMPLATES), autoescape=select_autoescape(default=True, default_for_string=True))


def _page(name: str, status: int = 200, **context: object) -> HTMLResponse:
    return HTMLResponse(_env.get_template(name).render(**context), status, headers=PAGE_HEADERS)


def _see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, 303, headers=PAGE_HEADERS)


def login_router() -> APIRouter:
    """Routes of the login page; they read `app.state.directory_side`."""
    r = APIRouter(prefix="/e/{enterprise_id}", route_class=BoundedRoute)

    def deps(request: Request) -> tuple[DirectorySide, BrowserSessions, PendingLogins]:
        s: DirectorySide = request.app.state.directory_side
        return s, s.browser_sessions, s.pending_logins

    def cookie_path(eid: str) -> str:
        return f"/e/{eid}/"

    def set_cookie(
        response: Response, s: DirectorySide, eid: str, name: str, value: str, max_age: int, samesite: str
    ) -> None:
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            path=cookie_path(eid),
            httponly=True,
            samesite=samesite,  # type: ignore[arg-type]
            secure=s.settings.cookie_secure,
        )

    def csrf_ok(request: Request, form_value: object) -> bool:
        cookie = request.cookies.get(CSRF_COOKIE)
        return bool(cookie) and isinstance(form_value, str) and hmac.compare_digest(cookie, form_value)

    def login_url(eid: str, next_path: str | None, err: str | None = None, step: str = "") -> str:
        query = {k: v for k, v in (("next", next_path), ("error", err)) if v}
        return f"/e/{eid}/login{step}" + (f"?{urlencode(query)}" if query else "")

    def with_csrf(request: Request, s: DirectorySide, eid: str, name: str, **ctx: object) -> HTMLResponse:
        csrf = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(24)
        response = _page(name, csrf=csrf, **ctx)
        set_cookie(response, s, eid, CSRF_COOKIE, csrf, 3600, "strict")
        return response

    async def form_of(request: Request) -> dict[str, str] | None:
        """The posted form, or None when it breaks the body rules (a browser never sends that)."""
        try:
            return await read_form(request)
        except BodyRefused:
            return None

    async def finish(s: DirectorySide, sessions: BrowserSessions, eid: str, user, amr, next_path):  # type: ignore[no-untyped-def]
        await s.authenticator.succeeded(eid, user, tuple(amr), "login_page")
        cookie, _ = await sessions.create(eid, user.user_id, tuple(amr))
        response = _see_other(safe_next(next_path, eid) or f"/e/{eid}/login/done")
        set_cookie(response, s, eid, SESSION_COOKIE, cookie, s.settings.browser_session_ttl_s, "lax")
        response.delete_cookie(PENDING_COOKIE, path=cookie_path(eid))
        return response

    @r.get("/login")
    async def login_form(enterprise_id: str, request: Request) -> Response:
        s, _, _ = deps(request)
        if await s.enterprises.get(enterprise_id) is None:
            return _page("error.html", 404, title="Unknown organisation")
        next_path = safe_next(request.query_params.get("next"), enterprise_id)
        message = MESSAGES.get(request.query_params.get("error", ""))
        return with_csrf(
            request, s, enterprise_id, "login.html", title="Sign in", message=message, next=next_path,
            action=f"/e/{enterprise_id}/login",
        )  # fmt: skip

    @r.post("/login")
    async def login_submit(enterprise_id: str, request: Request) -> Response:
        s, sessions, pending = deps(request)
        if await s.enterprises.get(enterprise_id) is None:
            return _page("error.html", 404, title="Unknown organisation")
        form = await form_of(request)
        if form is None:
            return _see_other(login_url(enterprise_id, None, "bad_request"))
        next_path = safe_next(form.get("next"), enterprise_id)
        if not csrf_ok(request, form.get("csrf_token")):
            return _see_other(login_url(enterprise_id, next_path, "csrf"))
        username, password, code = form.get("username"), form.get("password"), form.get("totp")
        if not username or not password:
            return _see_other(login_url(enterprise_id, next_path, "bad_request"))
        try:
            # The username reaches authentication events and the audit log: free-text rules apply.
            username = clean_text(username)
        except UnsafeText:
            return _see_other(login_url(enterprise_id, next_path, "bad_request"))
        try:
            user = await s.authenticator.password(enterprise_id, username, password, "login_page")
            if not await s.authenticator.second_factor_required(enterprise_id, user):
                return await finish(s, sessions, enterprise_id, user, PASSWORD_AMR, next_path)
            if isinstance(code, str) and code:
                await s.authenticator.totp(enterprise_id, user, code, "login_page")
                return await finish(s, sessions, enterprise_id, user, (*PASSWORD_AMR, TOTP_AMR), next_path)
        except AuthError as exc:
            return _see_other(login_url(enterprise_id, next_path, _reason(exc)))
        if not user.totp_enrolled:
            return _see_other(login_url(enterprise_id, next_path, "not_enrolled"))
        token = await pending.create(enterprise_id, user.user_id, next_path)
        response = _see_other(login_url(enterprise_id, next_path, step="/totp"))
        set_cookie(response, s, enterprise_id, PENDING_COOKIE, token, s.settings.pending_login_ttl_s, "lax")
        return response

    @r.get("/login/totp")
    async def totp_form(enterprise_id: str, request: Request) -> Response:
        s, _, pending = deps(request)
        next_path = safe_next(request.query_params.get("next"), enterprise_id)
        if await pending.get(enterprise_id, request.cookies.get(PENDING_COOKIE)) is None:
            return _see_other(login_url(enterprise_id, next_path, "expired"))
        message = MESSAGES.get(request.query_params.get("error", ""))
        return with_csrf(
            request, s, enterprise_id, "totp.html", title="Second factor", message=message, next=next_path,
            action=f"/e/{enterprise_id}/login/totp",
        )  # fmt: skip

    @r.post("/login/totp")
    async def totp_submit(enterprise_id: str, request: Request) -> Response:
        s, sessions, pending = deps(request)
        form = await form_of(request) or {}
        token = request.cookies.get(PENDING_COOKIE)
        state = await pending.get(enterprise_id, token)
        if state is None:
            # The pending login (and its cookie) outlived: start again, still on the way to the
            # app's authorization request (the form's `next`, held to the same rule as always).
            return _see_other(login_url(enterprise_id, safe_next(form.get("next"), enterprise_id), "expired"))
        next_path = safe_next(state.get("next"), enterprise_id)
        if not csrf_ok(request, form.get("csrf_token")):
            return _see_other(login_url(enterprise_id, next_path, "csrf", step="/totp"))
        user = await s.directory.get(enterprise_id, state["user_id"])
        if user is None or user.status != "active":
            await pending.drop(enterprise_id, token)
            return _see_other(login_url(enterprise_id, next_path, "invalid"))
        try:
            await s.authenticator.totp(enterprise_id, user, form.get("totp") or "", "login_page")
        except AuthError as exc:
            if exc.error == "temporarily_locked":
                await pending.drop(enterprise_id, token)
                return _see_other(login_url(enterprise_id, next_path, "locked"))
            return _see_other(login_url(enterprise_id, next_path, _reason(exc), step="/totp"))
        await pending.drop(enterprise_id, token)
        return await finish(s, sessions, enterprise_id, user, (*PASSWORD_AMR, TOTP_AMR), next_path)

    @r.get("/login/done")
    async def done(enterprise_id: str) -> Response:
        return _page("done.html", title="Signed in")

    return r


def _reason(exc: AuthError) -> str:
    return {"temporarily_locked": "locked", "second_factor_required": "not_enrolled"}.get(exc.error, "invalid")
