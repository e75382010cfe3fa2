"""bench.poller against a real HTTP server (uvicorn): the revocation benchmarks read their
effects through it, so what it reports must be what the server answered."""

from __future__ import annotations

import base64

import pytest
from bench.poller import Poller
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from lanyard.runtime.testing import serve_in_thread

SEEN: list[dict] = []


async def echo(request: Request) -> Response:
    form = await request.form()
    SEEN.append({"auth": request.headers.get("authorization"), "port": request.client.port if request.client else 0})
    return JSONResponse({"form": dict(form), "path": request.url.path}, status_code=int(form.get("status", "200")))


async def chunked(request: Request) -> Response:
    async def parts():
        yield b'{"active": '
        yield b"false}"

    return StreamingResponse(parts(), media_type="application/json")


async def headers(request: Request) -> Response:
    return JSONResponse({"proof": request.headers.get("device-proof"), "body": (await request.body()).decode()})


async def closing(request: Request) -> Response:
    return JSONResponse({"bye": True}, headers={"Connection": "close"})


APP = Starlette(
    routes=[
        Route("/e/x/echo", echo, methods=["POST"]),
        Route("/e/x/chunked", chunked, methods=["POST"]),
        Route("/e/x/closing", closing, methods=["POST"]),
        Route("/e/x/headers", headers, methods=["POST"]),
    ]
)


@pytest.fixture(scope="module")
def base_url():
    with serve_in_thread(APP) as port:
        yield f"http://127.0.0.1:{port}/e/x"


async def test_status_body_and_basic_auth_as_sent(base_url):
    poller = Poller(base_url)
    status, body = await poller.post_form(f"{base_url}/echo", {"token": "a b&c", "status": "400"}, ("app", "s:e"))
    assert status == 400
    assert body == b'{"form":{"token":"a b&c","status":"400"},"path":"/e/x/echo"}'
    assert SEEN[-1]["auth"] == "Basic " + base64.b64encode(b"app:s:e").decode()
    await poller.close()


async def test_one_connection_is_kept_alive(base_url):
    poller = Poller(base_url)
    await poller.connect()
    for _ in range(3):
        assert (await poller.post_form(f"{base_url}/echo", {}))[0] == 200
    assert len({seen["port"] for seen in SEEN[-3:]}) == 1
    await poller.close()


async def test_a_chunked_answer_is_read_whole(base_url):
    poller = Poller(base_url)
    assert await poller.post_form(f"{base_url}/chunked", {}) == (200, b'{"active": false}')
    assert (await poller.post_form(f"{base_url}/echo", {}))[0] == 200  # the connection is still in step
    await poller.close()


async def test_a_connection_the_server_closes_is_opened_again(base_url):
    poller = Poller(base_url)
    assert await poller.post_form(f"{base_url}/closing", {}) == (200, b'{"bye":true}')
    assert (await poller.post_form(f"{base_url}/echo", {}))[0] == 200
    await poller.close()


async def test_other_origins_and_schemes_are_refused(base_url):
    with pytest.raises(ValueError):
        Poller("https://127.0.0.1/e/x")
    with pytest.raises(ValueError):
        await Poller(base_url).post_form("http://elsewhere.example/e/x/echo", {})


async def test_a_post_carries_its_headers_and_body_as_given(base_url):
    # The revocation samples send the checkin this way, its device proof in a header.
    poller = Poller(base_url)
    status, body = await poller.post(f"{base_url}/headers", b"", {"Device-Proof": "a.b.c"})
    assert (status, body) == (200, b'{"proof":"a.b.c","body":""}')
    status, body = await poller.post(f"{base_url}/headers", b"raw", {"Device-Proof": "d.e.f"})
    assert (status, body) == (200, b'{"proof":"d.e.f","body":"raw"}')
    await poller.close()
