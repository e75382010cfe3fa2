"""What every console page shares: templates, security headers, the signed-in admin, CSRF.

- Headers on every answer: a strict CSP (scripts, styles and fetches only from our own origin, no
  inline script or style, no framing, forms only to ourselves), X-Frame-Options DENY, no-store.
- The session cookie is HttpOnly, SameSite=Strict, scoped to /console/, Secure when the public
  base URL is https; the session ends after `idle_timeout_s` unused or `session_max_s` in all.
- Every POST carries the session's CSRF token (form field `csrf_token` or header `X-CSRF-Token`)
  and, when the browser sends one, an `Origin` equal to ours.
- Pages name the roles that may open them, mirroring the API they call; the APIs enforce the same
  roles again with the admin's own token, so nothing here is the last line of defence.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from lanyard.console.adapters.admin_api import Admin, AdminApi, ApiError
from lanyard.console.adapters.identity import Identity, SignInFailed
from lanyard.console.adapters.redis_sessions import ConsoleSession, SessionStore
from lanyard.console.settings import ConsoleSettings

SESSION_COOKIE = "lanyard_console"
LOGIN_COOKIE = "lanyard_console_login"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}
ALL_ADMINS = ("superadmin", "admin", "auditor")
WRITERS = ("superadmin", "admin")


@dataclass(frozen=True)
class NavItem:
    path: str
    label: str
    roles: tuple[str, ...]


NAV = (
    NavItem("", "Integration readiness", ALL_ADMINS),
    NavItem("apps", "SSO application profiles", ("superadmin",)),
    NavItem("sessions", "Device sessions", WRITERS),
    NavItem("users", "Users and groups", ALL_ADMINS),
    NavItem("policies", "User policies", ALL_ADMINS),
    NavItem("deployments", "App deployments", ALL_ADMINS),
    NavItem("licences", "Licences", ALL_ADMINS),
    NavItem("settings", "Org settings", ALL_ADMINS),
    NavItem("cloud", "Cloud connection", ALL_ADMINS),
    NavItem("audit", "Audit trail", ("auditor", "superadmin")),
)
"""The console's pages and who may open them: the roles of the admin API each page calls."""

templates = Environment(
    loader=PackageLoader("lanyard.console", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def when(value: object) -> str:
    """An ISO 8601 time as admins read it: to the second, in UTC."""
    if not isinstance(value, str) or not value:
        return "—"
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


templates.filters["when"] = when


class NeedSignIn(Exception):
    """No (live) session for this enterprise: start a sign-in, then come back to `next_path`."""

    def __init__(self, enterprise_id: str, next_path: str) -> None:
        super().__init__(enterprise_id)
        self.enterprise_id = enterprise_id
        self.next_path = next_path


class Refused(Exception):
    """The admin's role does not allow this page or action (403), or the request is bad."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Console:
    """The console's parts, built once by `create_app`."""

    settings: ConsoleSettings
    sessions: SessionStore
    identity: Identity
    api: AdminApi


def console_of(request: Request) -> Console:
    return request.app.state.console


@dataclass
class Ctx:
    """One request of a signed-in admin: their session and the APIs as them."""

    request: Request
    console: Console
    session: ConsoleSession
    admin: Admin
    message: dict[str, str] | None = None

    @property
    def eid(self) -> str:
        return self.session.enterprise_id

    def url(self, path: str = "") -> str:
        """A console URL of this enterprise."""
        return f"/console/e/{quote(self.eid, safe='')}/{path}"

    def render(self, page: str, status: int = 200, /, **context: Any) -> HTMLResponse:
        return render(
            page,
            status,
            ctx=self,
            session=self.session,
            nav=[n for n in NAV if self.session.has(*n.roles)],
            flash=self.message,
            csrf=Markup('<input type="hidden" name="csrf_token" value="%s">') % self.session.csrf,
            **context,
        )

    async def flash(self, message: str, kind: str = "ok") -> None:
        """A message shown once on the next page."""
        self.session.flash["message"] = {"text": message, "kind": kind}
        await self.console.sessions.save(self.session)

    async def keep_once(self, name: str, value: Any) -> None:
        """A value (a new secret) the next page shows once and forgets."""
        self.session.flash[name] = value
        await self.console.sessions.save(self.session)

    async def take_once(self, name: str) -> Any:
        value = self.session.flash.pop(name, None)
        if value is not None:
            await self.console.sessions.save(self.session)
        return value

    def see_other(self, path: str) -> RedirectResponse:
        return RedirectResponse(self.url(path), 303)


def render(page: str, status: int = 200, /, **context: Any) -> HTMLResponse:
    return HTMLResponse(templates.get_template(page).render(**context), status)


def _next_path(request: Request) -> str:
    path = request.url.path
    return path + (f"?{request.url.query}" if request.url.query and request.method == "GET" else "")


async def signed_in(request: Request, enterprise_id: str, roles: Iterable[str] = ALL_ADMINS) -> Ctx:
    """The signed-in admin of `enterprise_id` holding one of `roles`; refreshes the access
    token when it is about to expire. Raises NeedSignIn or Refused."""
    console = console_of(request)
    session = await console.sessions.get(request.cookies.get(SESSION_COOKIE))
    if session is None or session.enterprise_id != enterprise_id:
        raise NeedSignIn(enterprise_id, _next_path(request) if request.method == "GET" else "")
    if console.identity.expires_soon(session.access_expires_at):
        if session.refresh_token is None:
            await console.sessions.drop(session)
            raise NeedSignIn(enterprise_id, _next_path(request))
        try:
            tokens = await console.identity.refresh(enterprise_id, session.refresh_token, session.id_token)
        except SignInFailed:
            await console.sessions.drop(session)
            raise NeedSignIn(enterprise_id, _next_path(request)) from None
        session.with_tokens(tokens)
        await console.sessions.save(session)
    ctx = Ctx(request, console, session, console.api.as_admin(enterprise_id, session.access_token))
    if "message" in session.flash and not request.headers.get("accept", "").startswith("application/json"):
        # The message a POST left for the page it redirected to: shown on this page, then gone.
        ctx.message = session.flash.pop("message")
        await console.sessions.save(session)
    roles = tuple(roles)
    if not session.has(*roles):
        raise Refused(403, f"This page needs one of these roles: {', '.join(roles)}.")
    return ctx


async def posted(request: Request, enterprise_id: str, roles: Iterable[str] = WRITERS) -> tuple[Ctx, dict[str, str]]:
    """A signed-in admin's form POST after the CSRF and origin checks; the form as strings."""
    ctx = await signed_in(request, enterprise_id, roles)
    origin = request.headers.get("origin")
    public = urlsplit(ctx.console.settings.public_base_url)
    if origin is not None and origin != f"{public.scheme}://{public.netloc}":
        raise Refused(403, "This request did not come from the console's own pages.")
    form = await request.form()
    values = {k: v for k, v in form.multi_items() if isinstance(v, str)}
    lists: dict[str, list[str]] = {}
    for k, v in form.multi_items():
        if isinstance(v, str):
            lists.setdefault(k, []).append(v)
    token = request.headers.get("x-csrf-token") or values.get("csrf_token", "")
    if not hmac.compare_digest(token.encode(), ctx.session.csrf.encode()):
        raise Refused(403, "The form expired or did not come from the console. Reload the page and try again.")
    request.state.form_lists = lists
    return ctx, values


def form_list(request: Request, name: str) -> list[str]:
    """Every value of a repeated form field (checkbox groups, multi-selects)."""
    return [v for v in getattr(request.state, "form_lists", {}).get(name, []) if v]


def api_message(exc: ApiError) -> str:
    """What an admin is told when an API refused."""
    if exc.status == 403:
        return f"Refused by the server: your role does not allow this ({exc.description})."
    return f"{exc.description} ({exc.error})"


def secure_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def now() -> float:
    return time.time()
