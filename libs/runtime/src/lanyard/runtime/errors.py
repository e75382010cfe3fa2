"""One error shape for every service: `{"error": <code>, "error_description": <text>}` with a 4xx/5xx.

`install_error_handlers(app)` makes it the answer to everything FastAPI and Starlette raise on their
own — request validation (400 `invalid_request`, naming each field and the rule it broke, never the
value: FastAPI's default 422 echoes the submitted `input`, passwords and TOTP secrets included),
HTTPException (401 keeps its `WWW-Authenticate`), a dependency that did not answer (Redis or the
broker unreachable or timing out: 503 `temporarily_unavailable` with `Retry-After`, so clients
retry instead of reporting a bug), and any other unhandled exception (500 `server_error`, nothing
about the cause). Services add handlers for their own domain exceptions with
`error_response`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, NodeNotReadyError, RequestTimedOutError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.exceptions import HTTPException

from lanyard.runtime.logging import get_logger

log = get_logger("lanyard.errors")

CODES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "invalid_request",
    414: "invalid_request",
    415: "invalid_request",
    422: "invalid_request",
    429: "too_many_requests",
    503: "temporarily_unavailable",
}
"""The `error` code of a status when whoever raised it named none."""


class StateLost(Exception):
    """A service's Redis state is known lost (its completeness marker is gone: flushed, or a
    fresh database) and not rebuilt yet: answering from it would answer from nothing. Retried
    like a dependency that is down; the restart rebuilds the state from Kafka."""


UNAVAILABLE: tuple[type[BaseException], ...] = (
    StateLost,
    RedisConnectionError,
    RedisTimeoutError,
    KafkaConnectionError,
    KafkaTimeoutError,
    NodeNotReadyError,
    RequestTimedOutError,
)
"""A dependency down or slow: the request may succeed when retried (a Redis restart, a broker cut)."""

MAX_REPORTED = 3
_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


def error_body(code: str, description: str) -> dict[str, str]:
    """The documented error shape."""
    return {"error": code, "error_description": description}


def error_response(status: int, code: str, description: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """A JSON error answer in the documented shape."""
    return JSONResponse(error_body(code, description), status_code=status, headers=dict(headers or {}))


def _where(loc: Sequence[Any]) -> str:
    """A field's location as `body.a.0.b`; parts that are not plain names (dict keys the client
    chose) are not repeated back."""
    return ".".join(str(p) if isinstance(p, int) or _NAME.fullmatch(str(p)) else "…" for p in loc)


def _rule(error: Mapping[str, Any]) -> str:
    """The broken rule in words. Pydantic's messages name the rule, not the value; should one ever
    quote the value, the error type is given instead."""
    message = str(error.get("msg") or error.get("type") or "invalid")
    value = error.get("input")
    if isinstance(value, str) and len(value) >= 4 and value in message:
        return str(error.get("type", "invalid"))
    return message


def describe_validation(errors: Sequence[Mapping[str, Any]]) -> str:
    """`body.password: String should have at least 8 characters; …` for up to three errors."""
    parts = []
    for error in errors[:MAX_REPORTED]:
        where = _where(error.get("loc", ()))
        parts.append(f"{where}: {_rule(error)}" if where else _rule(error))
    if len(errors) > MAX_REPORTED:
        parts.append(f"and {len(errors) - MAX_REPORTED} more")
    return "; ".join(parts) or "the request is malformed"


def http_error_body(status: int, detail: Any) -> dict[str, str]:
    """The documented shape for an HTTPException's detail (a dict already in it, or a phrase)."""
    if isinstance(detail, Mapping) and isinstance(detail.get("error"), str):
        return error_body(detail["error"], str(detail.get("error_description") or detail["error"]))
    return error_body(CODES.get(status, "invalid_request" if status < 500 else "server_error"), str(detail))


def install_error_handlers(app: FastAPI) -> None:
    """Validation errors, HTTPExceptions and unhandled exceptions answer in the documented shape."""

    async def invalid(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return error_response(400, "invalid_request", describe_validation(exc.errors()))

    async def http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        return JSONResponse(http_error_body(exc.status_code, exc.detail), exc.status_code, headers=exc.headers)

    async def unavailable(request: Request, exc: Exception) -> JSONResponse:
        log.warning("dependency unavailable", path=request.url.path, error=type(exc).__name__)
        return error_response(503, "temporarily_unavailable", "a dependency is not answering; retry",
                              {"Retry-After": "1"})  # fmt: skip

    async def unhandled(request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, UNAVAILABLE):  # raised where the per-class handlers do not reach
            return await unavailable(request, exc)
        # Starlette re-raises after answering, so the server's own log keeps the traceback.
        log.error("unhandled error", path=request.url.path, error=type(exc).__name__)
        return error_response(500, "server_error", "the request could not be completed")

    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(HTTPException, http_error)
    # Registered per class, a dependency that is down is answered by the exception middleware
    # and not re-raised: a Redis restart is one warning line per request, not a traceback each
    # (the soak's Redis kill left 475 tracebacks in the IdP's log).
    for unavailable_type in UNAVAILABLE:
        app.add_exception_handler(unavailable_type, unavailable)
    app.add_exception_handler(Exception, unhandled)
