"""`ServiceAPI`: a FastAPI application with a direct lane for a service's hottest routes.

A request to a plain Starlette route normally passes through eight ASGI layers before its
endpoint runs (FastAPI's and Starlette's entry, the server-error, telemetry, body-limit,
exception and exit-stack middlewares, the router and its included routers) and a send wrapper
in most of them. Under wrk load on the token endpoints those layers were ≈ 20 % of the IdP's
CPU per introspection (py-spy, 2026-12-03; docs/performance.md). Routes handed to
`serve_directly` are matched first, and their endpoint is called with a `Request` and its
`Response` sent straight to the server.

What the layers did for those routes is kept here: an exception is answered by the handler
the application registered for its class (as the exception middleware would), an unhandled one
by the `Exception` handler and then re-raised so the server logs its traceback (as the
server-error middleware does). Anything the lane does not match — another path, a method the
route does not take, HEAD, a websocket, the lifespan — goes through the full stack unchanged,
so 404 and 405 answers are the router's own. Only routes whose endpoints parse their own input
(no FastAPI dependencies or validation) belong here.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI
from starlette._exception_handler import _lookup_exception_handler
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import BaseRoute, Match, Route
from starlette.types import Message, Receive, Scope, Send


class ServiceAPI(FastAPI):
    """FastAPI, plus `serve_directly(routes)` for endpoints on the hot path."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._direct: list[tuple[str, Route]] = []
        self._direct_prefixes: tuple[str, ...] = ()

    def serve_directly(self, routes: Iterable[BaseRoute]) -> None:
        """Match these routes (already registered on the app) before the middleware stack.

        Only plain Starlette `Route`s with a static first path segment are taken: the lane
        checks that prefix before any regular expression, so other requests pay one
        `str.startswith`; a route's regular expression runs only when the path ends with the
        route's literal tail (what follows its last parameter)."""
        if self.user_middleware:  # the lane would step around them
            raise RuntimeError("serve_directly is for applications without their own middleware")
        taken = [r for r in routes if type(r) is Route]
        self._direct.extend((r.path.rpartition("}")[2], r) for r in taken)
        self._direct_prefixes = tuple({"/" + r.path.split("/")[1] + "/" for _, r in self._direct})

    def add_middleware(self, middleware_class: Any, *args: Any, **kwargs: Any) -> None:
        """Refused once routes are served directly: those requests would not pass through it."""
        if self._direct:
            raise RuntimeError("this application serves routes directly; a middleware would miss them")
        super().add_middleware(middleware_class, *args, **kwargs)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self._direct and scope["path"].startswith(self._direct_prefixes):
            path = scope["path"]
            for tail, route in self._direct:
                if not path.endswith(tail):
                    continue
                match, child = route.matches(scope)
                if match is Match.FULL:
                    scope.update(child)
                    scope["app"] = self
                    await self._answer(route, scope, receive, send)
                    return
        await super().__call__(scope, receive, send)

    async def _answer(self, route: Route, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive, send)
        started = False

        async def sender(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            response = await route.endpoint(request)
            await response(scope, receive, sender)
        except Exception as exc:
            if started:
                raise
            specific = {k: v for k, v in self.exception_handlers.items() if k not in (Exception, 500)}
            handler = _lookup_exception_handler(specific, exc)
            if handler is not None:  # the exception middleware's part: answered, not re-raised
                await (await handler(request, exc))(scope, receive, sender)
                return
            last_resort = self.exception_handlers.get(Exception) or self.exception_handlers.get(500)
            fallback = PlainTextResponse("Internal Server Error", status_code=500)
            await (await last_resort(request, exc) if last_resort else fallback)(scope, receive, sender)
            raise  # as the server-error middleware does: the server's log keeps the traceback
