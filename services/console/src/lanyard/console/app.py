"""Composition root of the console: `create_app(settings, **overrides)`.

Overrides for tests: `redis=` (a Redis client), `transport=` (an httpx transport for the calls
to the gateway).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from importlib.resources import files
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from lanyard.console.adapters.admin_api import AdminApi, ApiError
from lanyard.console.adapters.identity import Identity
from lanyard.console.adapters.redis_sessions import SessionStore
from lanyard.console.api import pages_router
from lanyard.console.login import login_router
from lanyard.console.settings import ConsoleSettings
from lanyard.console.web import Console, NeedSignIn, Refused, api_message, render, secure_headers
from lanyard.runtime.health import health_router
from lanyard.runtime.redis import create_redis


def create_app(settings: ConsoleSettings | None = None, **overrides: Any) -> FastAPI:
    """Build the console."""
    settings = settings or ConsoleSettings()
    redis = overrides.get("redis") or create_redis(settings.redis_url)
    transport = overrides.get("transport")
    console = Console(
        settings=settings,
        sessions=SessionStore(redis, settings.idle_timeout_s, settings.session_max_s, settings.login_ttl_s),
        identity=Identity(
            settings.public_base_url, settings.api_base, settings.console_base, settings.api_timeout_s, transport
        ),
        api=AdminApi(settings.api_base, settings.api_timeout_s, transport),
    )

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await redis.ping()
        try:
            yield
        finally:
            await console.api.aclose()
            await console.identity.aclose()
            await redis.aclose()

    app = FastAPI(title="Lanyard console", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.console = console

    @app.middleware("http")
    async def headers(request: Request, call_next: Any) -> Response:
        return secure_headers(await call_next(request))

    async def need_sign_in(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, NeedSignIn)
        target = f"/console/e/{quote(exc.enterprise_id, safe='')}/login"
        if exc.next_path:
            target += "?next=" + quote(exc.next_path, safe="")
        return RedirectResponse(target, 303)

    async def refused(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Refused)
        if request.headers.get("accept", "").startswith("application/json"):
            from fastapi.responses import JSONResponse

            return JSONResponse({"error": "refused", "error_description": exc.message}, exc.status)
        return render("error.html", exc.status, title="Not allowed" if exc.status == 403 else "Not found",
                      message=exc.message)  # fmt: skip

    async def http_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        return render("error.html", exc.status_code, title="Not found" if exc.status_code == 404 else "Error",
                      message="There is no such page." if exc.status_code == 404 else str(exc.detail))  # fmt: skip

    async def api_refused(request: Request, exc: Exception) -> Response:
        # An admin API refused a page's read: 401 means the token is no longer good (sign in
        # again); anything else is shown as the service said it.
        assert isinstance(exc, ApiError)
        eid = request.path_params.get("enterprise_id")
        if exc.status == 401 and eid:
            return await need_sign_in(request, NeedSignIn(eid, request.url.path))
        title = {403: "Not allowed", 404: "Not found"}.get(exc.status, "The service refused")
        return render("error.html", exc.status if 400 <= exc.status < 600 else 502, title=title,
                      message=api_message(exc))  # fmt: skip

    app.add_exception_handler(ApiError, api_refused)
    app.add_exception_handler(NeedSignIn, need_sign_in)
    app.add_exception_handler(Refused, refused)
    app.add_exception_handler(StarletteHTTPException, http_error)

    async def redis_ok() -> bool:
        return bool(await redis.ping())

    checks = {"redis": redis_ok}
    app.include_router(health_router("console", checks))  # direct: /health/ready
    app.include_router(health_router("console", checks), prefix="/console")  # through the gateway
    app.mount("/console/static", StaticFiles(directory=str(files("lanyard.console") / "static")), name="static")
    app.include_router(login_router())
    app.include_router(pages_router())
    return app
