"""HTTP API of the session service."""

from __future__ import annotations

from fastapi import APIRouter


def api_router() -> APIRouter:
    """The session service's routes, mounted under /session behind the gateway."""
    return APIRouter(prefix="/session")
