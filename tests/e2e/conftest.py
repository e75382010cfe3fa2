"""The whole stack as real processes behind the gateway, for the end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from lanyard.harness.stack import Stack, local_stack
from lanyard.runtime.testing import free_port, serve_in_thread


@pytest.fixture(scope="module")
def stack(kafka_bootstrap: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Every service and the gateway, started once per e2e module and stopped after it: a
    stack left running would react to other tests' events on the shared broker."""
    with local_stack(kafka_bootstrap, redis_url, tmp_path_factory.mktemp("stack")) as running:
        yield running


@pytest.fixture
async def http() -> httpx.AsyncClient:
    async with httpx.AsyncClient(timeout=15) as client:
        yield client


@dataclass
class LogoutReceiver:
    """A relying party's back-channel logout endpoint: records every logout token it gets."""

    url: str
    tokens: list[str] = field(default_factory=list)


@pytest.fixture(scope="session")
def logout_receiver() -> Iterator[LogoutReceiver]:
    port = free_port()
    receiver = LogoutReceiver(f"http://127.0.0.1:{port}/backchannel-logout")

    async def endpoint(request: Request) -> Response:
        form = await request.form()
        receiver.tokens.append(str(form.get("logout_token", "")))
        return Response(status_code=200)

    with serve_in_thread(Starlette(routes=[Route("/backchannel-logout", endpoint, methods=["POST"])]), port):
        yield receiver
