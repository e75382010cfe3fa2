"""A relying party's back-channel logout endpoint, for the end-to-end tests and the benchmarks.

It runs in a thread of its own (uvicorn) so it answers whatever the caller's event loop is
doing, and records every logout token it receives with the time it arrived.
"""

from __future__ import annotations

import base64
import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from lanyard.runtime.testing import free_port, serve_in_thread


@dataclass
class LogoutReceiver:
    """Where an app registered its back-channel logout URI: `url`; what came: `tokens`."""

    url: str
    tokens: list[str] = field(default_factory=list)
    received_at: list[float] = field(default_factory=list)
    down_until: float = 0.0
    """While time.time() is before this, the endpoint answers 503 and records nothing (an app that
    is down: the IdP must retry)."""
    refused: int = 0

    def sids(self) -> dict[str, float]:
        """The `sid` of every logout token received → when it first arrived (time.time())."""
        out: dict[str, float] = {}
        for token, at in zip(list(self.tokens), list(self.received_at), strict=False):
            sid = unverified_claims(token).get("sid")
            if isinstance(sid, str):
                out.setdefault(sid, at)
        return out


def unverified_claims(token: str) -> dict[str, Any]:
    """The payload of a JWT without checking its signature (for counting, never for trust)."""
    try:
        body = token.split(".")[1]
        return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (IndexError, ValueError):
        return {}


@contextlib.contextmanager
def logout_receiver() -> Iterator[LogoutReceiver]:
    """Serve a LogoutReceiver on a free loopback port until the block ends."""
    port = free_port()
    receiver = LogoutReceiver(f"http://127.0.0.1:{port}/backchannel-logout")

    async def endpoint(request: Request) -> Response:
        if time.time() < receiver.down_until:
            receiver.refused += 1
            return Response(status_code=503)
        form = await request.form()
        receiver.tokens.append(str(form.get("logout_token", "")))
        receiver.received_at.append(time.time())
        return Response(status_code=200)

    with serve_in_thread(Starlette(routes=[Route("/backchannel-logout", endpoint, methods=["POST"])]), port):
        yield receiver
