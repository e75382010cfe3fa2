"""The whole stack as real processes behind the gateway, for the end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from lanyard.harness.rp import LogoutReceiver
from lanyard.harness.rp import logout_receiver as serve_logout_receiver
from lanyard.harness.stack import Stack, local_stack


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


@pytest.fixture(scope="session")
def logout_receiver() -> Iterator[LogoutReceiver]:
    """A relying party's back-channel logout endpoint: records every logout token it gets."""
    with serve_logout_receiver() as receiver:
        yield receiver
