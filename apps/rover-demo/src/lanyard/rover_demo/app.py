"""The rover-demo web app (see the package docstring). State is in memory: it is a demo."""

from __future__ import annotations

import contextlib
import html
import secrets
import time
import warnings
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import authlib.deprecate  # noqa: F401 - installs authlib's own "always" filter, which must come first
import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

with warnings.catch_warnings():
    # authlib 1.9 announces at import that its httpx integration will move to httpx2; it works as is.
    warnings.simplefilter("ignore")
    from authlib.integrations.starlette_client import OAuth, OAuthError

BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"
COOKIE = "rover_demo_session"


@dataclass(frozen=True)
class Config:
    """Where the issuer is and who this app is there."""

    issuer: str
    client_id: str
    client_secret: str
    base_url: str


@dataclass
class SignIn:
    """One sign-in as the app saw it."""

    sub: str
    name: str | None
    username: str | None
    sid: str | None
    amr: list[str]
    signed_in_at: str
    access_token: str = field(repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    introspection: dict[str, Any] | None = None
    logged_out_at: str | None = None
    logged_out_at_epoch: float | None = None
    logout_reason: str | None = None

    def public(self) -> dict[str, Any]:
        """What the app shows (never the tokens)."""
        d = asdict(self)
        d.pop("access_token")
        d.pop("refresh_token")
        return d


def _now() -> tuple[str, float]:
    t = time.time()
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds"), t


class ServerSessions:
    """Server-side browser sessions behind a random cookie: `request.session` for authlib's
    state and nonce, without putting anything but an opaque id in the browser."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.store: dict[str, dict[str, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        sid = request.cookies.get(COOKIE)
        fresh = sid is None or sid not in self.store
        if fresh:
            sid = secrets.token_urlsafe(24)
            self.store[sid] = {}
        scope["session"] = self.store[sid]
        scope["session_id"] = sid

        async def with_cookie(message: dict[str, Any]) -> None:
            if fresh and message["type"] == "http.response.start":
                cookie = f"{COOKIE}={sid}; Path=/; HttpOnly; SameSite=Lax"
                message.setdefault("headers", []).append((b"set-cookie", cookie.encode()))
            await send(message)

        await self.app(scope, receive, with_cookie)


def create_app(config: Config) -> Starlette:
    """The app, configured for one issuer and one client."""
    oauth = OAuth()
    oauth.register(
        "lanyard",
        client_id=config.client_id,
        client_secret=config.client_secret,
        server_metadata_url=f"{config.issuer}/.well-known/openid-configuration",
        client_kwargs={
            "scope": "openid profile email",
            "code_challenge_method": "S256",
            "token_endpoint_auth_method": "client_secret_basic",
        },
    )
    rp = oauth.lanyard
    sign_ins: dict[str, SignIn] = {}  # by browser session id
    http = httpx.AsyncClient(timeout=5)

    async def introspect(s: SignIn) -> dict[str, Any]:
        meta = await rp.load_server_metadata()
        response = await http.post(
            meta["introspection_endpoint"],
            data={"token": s.access_token, "token_type_hint": "access_token"},
            auth=(config.client_id, config.client_secret),
        )
        at, epoch = _now()
        answer = response.json() if response.status_code == 200 else {"error": f"HTTP {response.status_code}"}
        previous = s.introspection or {}
        s.introspection = {"active": answer.get("active"), "checked_at": at}
        if answer.get("active") is False:  # the first time this app saw its token inactive
            s.introspection["inactive_since"] = previous.get("inactive_since") or at
            s.introspection["inactive_since_epoch"] = previous.get("inactive_since_epoch") or epoch
        return s.introspection

    async def login(request: Request) -> Response:
        return await rp.authorize_redirect(request, f"{config.base_url}/callback")

    async def callback(request: Request) -> Response:
        try:
            token = await rp.authorize_access_token(request)  # code exchange + ID-token validation
        except OAuthError as exc:
            return HTMLResponse(_page("Sign-in failed", f"<p>{html.escape(str(exc))}</p>"), 400)
        claims = token["userinfo"]  # the validated ID token's claims (iss, aud, exp, nonce, at_hash)
        profile = await rp.userinfo(token=token)  # name and username come from UserInfo
        if profile.get("sub") != claims["sub"]:
            return HTMLResponse(_page("Sign-in failed", "<p>UserInfo is about someone else</p>"), 400)
        at, _ = _now()
        sign_ins[request.scope["session_id"]] = SignIn(
            sub=claims["sub"],
            name=profile.get("name") or claims.get("name"),
            username=profile.get("preferred_username") or claims.get("preferred_username"),
            sid=claims.get("sid"),
            amr=list(claims.get("amr") or []),
            signed_in_at=at,
            access_token=token["access_token"],
            refresh_token=token.get("refresh_token"),
        )
        return RedirectResponse("/", 303)

    async def backchannel_logout(request: Request) -> Response:
        form = await request.form()
        token = form.get("logout_token")
        if not isinstance(token, str):
            return _bcl_error("logout_token is required")
        try:
            claims = await _logout_claims(rp, http, config, token)
        except (JoseError, ValueError) as exc:
            return _bcl_error(f"invalid logout token: {exc}")
        at, epoch = _now()
        for s in sign_ins.values():
            same = s.sid == claims.get("sid") if claims.get("sid") else s.sub == claims.get("sub")
            if same and s.logged_out_at is None:
                s.logged_out_at, s.logged_out_at_epoch = at, epoch
                s.logout_reason = (
                    f"back-channel logout from {claims['iss']}: the IdP ended SSO session {claims.get('sid')} "
                    "(the device was checked in, timed out, or the user lost access)"
                )
        # BCL §2.8: 200 whether or not a session matched (the RP may have forgotten it).
        return Response(status_code=200, headers={"Cache-Control": "no-store"})

    async def me(request: Request) -> Response:
        s = sign_ins.get(request.scope["session_id"])
        if s is None:
            return JSONResponse({"signed_in": False})
        if request.query_params.get("introspect", "1") != "0":
            await introspect(s)
        return JSONResponse({"signed_in": s.logged_out_at is None, **s.public()})

    async def all_sign_ins(request: Request) -> Response:
        return JSONResponse({"sign_ins": [s.public() for s in sign_ins.values()]})

    async def home(request: Request) -> Response:
        items = []
        for s in reversed(list(sign_ins.values())):
            await introspect(s)
            status = "active" if s.introspection and s.introspection.get("active") else "inactive"
            ended = (
                f"<p class=out>Logged out at {html.escape(s.logged_out_at)}: {html.escape(s.logout_reason or '')}</p>"
                if s.logged_out_at
                else "<p class=in>Signed in</p>"
            )
            items.append(
                f"<li><b>{html.escape(s.name or s.sub)}</b> ({html.escape(s.username or '')}, sub {html.escape(s.sub)})"
                f"<br>signed in at {html.escape(s.signed_in_at)} with amr {html.escape(', '.join(s.amr))}, "
                f"SSO session {html.escape(s.sid or '–')}"
                f"<br>access token: <b>{status}</b> (introspected {html.escape(s.introspection['checked_at'])})"
                f"{ended}</li>"
            )
        body = (
            f"<p>Relying party of <code>{html.escape(config.issuer)}</code> as client "
            f"<code>{html.escape(config.client_id)}</code>. <a href='/login'>Sign in</a></p>"
            + (f"<ul>{''.join(items)}</ul>" if items else "<p>No sign-ins yet.</p>")
        )
        return HTMLResponse(_page("Rover demo", body))

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        await http.aclose()

    app = Starlette(
        routes=[
            Route("/", home),
            Route("/login", login),
            Route("/callback", callback),
            Route("/backchannel-logout", backchannel_logout, methods=["POST"]),
            Route("/api/me", me),
            Route("/api/sign-ins", all_sign_ins),
            Route("/health", health),
        ],
        lifespan=lifespan,
    )
    return ServerSessions(app)  # type: ignore[return-value]


async def _logout_claims(rp: Any, http: httpx.AsyncClient, config: Config, token: str) -> dict[str, Any]:
    """Validate a logout token as BCL 1.0 §2.6 says: signature (JWKS), iss, aud, iat/exp, the
    back-channel event, sid or sub, and no nonce."""
    meta = await rp.load_server_metadata()
    keys = KeySet.import_key_set((await http.get(meta["jwks_uri"])).json())
    decoded = jwt.decode(token, keys, algorithms=["RS256", "ES256"])
    if decoded.header.get("typ") not in (None, "logout+jwt", "JWT"):
        raise ValueError("typ is not logout+jwt")
    claims = decoded.claims
    registry = jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": config.issuer},
        aud={"essential": True, "value": config.client_id},
        iat={"essential": True},
        exp={"essential": True},
    )
    registry.validate(claims)
    if BACKCHANNEL_EVENT not in (claims.get("events") or {}):
        raise ValueError("no back-channel logout event")
    if not (claims.get("sid") or claims.get("sub")):
        raise ValueError("neither sid nor sub")
    if "nonce" in claims:
        raise ValueError("a logout token must not carry a nonce")
    return claims


def _bcl_error(description: str) -> Response:
    return JSONResponse({"error": "invalid_request", "error_description": description}, 400)


def _page(title: str, body: str) -> str:
    return (
        "<!doctype html><meta charset=utf-8><meta http-equiv=refresh content=2>"
        f"<title>{html.escape(title)}</title><style>body{{font-family:system-ui;margin:2em}}"
        ".in{color:#070}.out{color:#a00;font-weight:bold}li{margin:1em 0}</style>"
        f"<h1>{html.escape(title)}</h1>{body}"
    )
