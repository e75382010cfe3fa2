"""The gateway works wherever the repository is cloned (issue 12): a checkout inside a private (0700)
directory, as `mktemp -d` or a home directory gives, still takes request bodies larger than
nginx's memory buffer, which its workers (`nobody` when started as root) spool to disk."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from lanyard.runtime.testing import ROOT, free_port, serve_in_thread

pytestmark = pytest.mark.e2e


@pytest.fixture
def upstream() -> Iterator[int]:
    """Stands in for the IdP behind the gateway: answers with the size of the body it received."""

    async def echo(request: Request) -> JSONResponse:
        return JSONResponse({"received": len(await request.body())})

    with serve_in_thread(Starlette(routes=[Route("/e/{rest:path}", echo, methods=["POST"])])) as port:
        yield port


def test_a_clone_in_a_private_directory_takes_large_bodies(upstream: int) -> None:
    private = Path(tempfile.mkdtemp(prefix="lanyard-clone-"))
    try:
        assert stat.S_IMODE(private.stat().st_mode) == 0o700
        clone = private / "lanyard"
        shutil.copytree(ROOT / "deploy" / "gateway", clone / "deploy" / "gateway")  # what the gateway needs
        port = free_port()
        env = {**os.environ, "GATEWAY_PORT": str(port), "LANYARD_IDP_HTTP_PORT": str(upstream)}
        env.pop("GATEWAY_DATA_DIR", None)  # the default: .var/gateway inside the clone
        gateway = str(clone / "deploy" / "gateway" / "gateway.sh")
        subprocess.run([gateway, "start"], env=env, check=True, capture_output=True, timeout=60)
        try:
            body = os.urandom(200 * 1024)  # over client_body_buffer_size (16k), under the 256k limit
            r = httpx.post(f"http://127.0.0.1:{port}/e/acme/admin/app-profiles", content=body, timeout=15)
            assert r.status_code == 200, (r.status_code, r.text)
            assert r.json() == {"received": len(body)}
            temp = Path((clone / ".var" / "gateway" / "temp_dir").read_text().strip())
            assert temp.is_dir() and not temp.is_relative_to(private)
        finally:
            subprocess.run([gateway, "stop"], env=env, check=False, capture_output=True, timeout=60)
        assert not temp.exists()  # the temporary directory goes with the gateway
    finally:
        shutil.rmtree(private, ignore_errors=True)
