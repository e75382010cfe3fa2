"""The direct lane of `ServiceAPI`: the same answers as the full stack, for the routes it serves."""

import httpx
import pytest
from fastapi import APIRouter, Request
from redis.exceptions import ConnectionError as RedisConnectionError
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.responses import JSONResponse, Response

from lanyard.runtime.bodies import BodyRefused
from lanyard.runtime.errors import install_error_handlers
from lanyard.runtime.routing import ServiceAPI


def build() -> ServiceAPI:
    router = APIRouter()

    async def echo(request: Request) -> Response:
        body = await request.body()
        app_name = type(request.app).__name__
        return JSONResponse({"id": request.path_params["item_id"], "body": body.decode(), "app": app_name})

    async def refused(request: Request) -> Response:
        raise BodyRefused("too deep")

    async def down(request: Request) -> Response:
        raise RedisConnectionError("connection refused")

    async def broken(request: Request) -> Response:
        raise ValueError("a bug, with a secret inside")

    async def named(request: Request) -> Response:
        return JSONResponse(dict(request.path_params))

    router.add_route("/e/{item_id}/echo", echo, methods=["POST"])
    router.add_route("/e/{item_id}/named/{name}", named, methods=["GET"])
    router.add_route("/e/{item_id}/refused", refused, methods=["POST"])
    router.add_route("/e/{item_id}/down", down, methods=["POST"])
    router.add_route("/e/{item_id}/broken", broken, methods=["POST"])
    app = ServiceAPI()
    install_error_handlers(app)
    app.include_router(router)

    @app.get("/other")
    async def other() -> dict[str, str]:
        return {"lane": "full stack"}

    app.serve_directly(router.routes)
    return app


def client(app: ServiceAPI, raise_app_exceptions: bool = True) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
    return httpx.AsyncClient(transport=transport, base_url="http://t")


async def test_a_direct_route_answers_with_its_path_parameters_and_body():
    async with client(build()) as http:
        answer = await http.post("/e/abc/echo", content=b"grant_type=x")
    assert answer.status_code == 200
    assert answer.json() == {"id": "abc", "body": "grant_type=x", "app": "ServiceAPI"}


async def test_a_route_ending_in_a_parameter_is_matched_too():
    app = build()
    async with client(app) as http:
        answer = await http.get("/e/abc/named/xyz")
    assert answer.json() == {"item_id": "abc", "name": "xyz"}
    assert app.middleware_stack is None


async def test_routes_outside_the_lane_and_refused_methods_take_the_full_stack():
    async with client(build()) as http:
        other = await http.get("/other")
        wrong_method = await http.get("/e/abc/echo")
        unknown = await http.post("/e/abc/nothing")
    assert other.json() == {"lane": "full stack"}
    assert wrong_method.status_code == 405
    assert unknown.status_code == 404


async def test_an_exception_with_its_own_handler_is_answered_by_it():
    async with client(build()) as http:
        refused = await http.post("/e/abc/refused")
        down = await http.post("/e/abc/down")
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_request"
    assert down.status_code == 503
    assert down.headers["retry-after"] == "1"
    assert down.json()["error"] == "temporarily_unavailable"


async def test_an_unhandled_exception_answers_500_without_detail_and_is_re_raised_for_the_server_log():
    async with client(build(), raise_app_exceptions=False) as http:
        answer = await http.post("/e/abc/broken")
    assert answer.status_code == 500
    assert answer.json()["error"] == "server_error"
    assert "secret" not in answer.text
    with pytest.raises(ValueError):
        async with client(build()) as http:
            await http.post("/e/abc/broken")


def test_a_middleware_cannot_be_added_once_routes_are_served_directly():
    app = build()
    with pytest.raises(RuntimeError):
        app.add_middleware(BaseHTTPMiddleware, dispatch=lambda request, call_next: call_next(request))


async def test_a_direct_route_is_served_without_building_the_middleware_stack():
    app = build()
    async with client(app) as http:
        await http.post("/e/abc/echo")
        assert app.middleware_stack is None  # Starlette builds it on the first request it handles
        await http.get("/other")
    assert app.middleware_stack is not None
