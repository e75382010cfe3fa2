"""HTTP API of the idp service."""

from __future__ import annotations

from fastapi import APIRouter


def api_router() -> APIRouter:
    """The idp service's routes, mounted under /idp behind the gateway."""
    return APIRouter(prefix="/idp")
