"""Liveness, readiness and Prometheus metrics, the same three routes in every service.

Readiness runs each named check with a bound; one failing check makes the answer 503 and names
it, so `make run` and the gateway can tell which dependency is missing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

Check = Callable[[], Awaitable[bool]]


def health_router(service: str, checks: Mapping[str, Check], timeout_s: float = 2.0) -> APIRouter:
    """Routes `/health/live`, `/health/ready` and `/metrics` for one service."""
    router = APIRouter(tags=["health"])

    @router.get("/health/live")
    async def live() -> dict[str, str]:
        return {"service": service, "status": "live"}

    @router.get("/health/ready")
    async def ready() -> JSONResponse:
        results: dict[str, bool] = {}
        for name, check in checks.items():
            try:
                results[name] = bool(await asyncio.wait_for(check(), timeout_s))
            except Exception:
                results[name] = False
        ok = all(results.values())
        return JSONResponse(
            {"service": service, "status": "ready" if ok else "not_ready", "checks": results},
            status_code=200 if ok else 503,
        )

    @router.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router
