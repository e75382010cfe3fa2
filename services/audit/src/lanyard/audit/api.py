"""HTTP API of the audit service."""

from __future__ import annotations

from fastapi import APIRouter


def api_router() -> APIRouter:
    """The audit service's routes, mounted under /audit behind the gateway."""
    return APIRouter(prefix="/audit")
