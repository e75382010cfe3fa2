"""HTTP API of the policy service."""

from __future__ import annotations

from fastapi import APIRouter


def api_router() -> APIRouter:
    """The policy service's routes, mounted under /policy behind the gateway."""
    return APIRouter(prefix="/policy")
