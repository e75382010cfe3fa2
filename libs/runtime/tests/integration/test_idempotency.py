"""Idempotency-Key on the real Redis: replay, reuse, a racing retry, and which answers are kept."""

import asyncio

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response

from lanyard.runtime.bodies import BoundedRoute
from lanyard.runtime.errors import install_error_handlers
from lanyard.runtime.idempotency import Idempotency

pytestmark = pytest.mark.integration


class Refused(Exception):
    pass


class World:
    def __init__(self, redis) -> None:
        self.redis = redis
        self.idem = Idempotency(redis, "t", ttl_s=3600, secret_ttl_s=60)
        self.runs = 0
        self.status = 201
        self.gate: asyncio.Event | None = None
        self.entered = asyncio.Event()
        app = FastAPI()
        install_error_handlers(app)

        async def refused(_: Request, exc: Exception) -> JSONResponse:
            return JSONResponse({"error": "refused", "error_description": "no"}, 409)

        app.add_exception_handler(Refused, refused)
        router = APIRouter(route_class=BoundedRoute)

        @router.post("/e/{eid}/things")
        async def create(eid: str, request: Request) -> Response:
            async def work() -> Response:
                self.runs += 1
                self.entered.set()
                if self.gate is not None:
                    await self.gate.wait()
                if self.status == 409:
                    raise Refused
                if self.status == 599:
                    raise RuntimeError("unexpected")
                headers = {"Cache-Control": "no-store"} if request.query_params.get("secret") else {}
                return JSONResponse({"n": self.runs}, self.status, headers=headers)

            return await self.idem.run(request, eid, work, subject=request.headers.get("x-admin"))

        app.include_router(router)
        self.http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://t"
        )

    async def post(self, key: str | None = "k1", body: dict | None = None, **headers: str) -> httpx.Response:
        h = {"Idempotency-Key": key} if key is not None else {}
        return await self.http.post("/e/ent/things", json=body or {"a": 1}, headers={**h, **headers})


@pytest.fixture
async def world(redis_client):
    w = World(redis_client)
    yield w
    await w.http.aclose()


async def test_the_first_answer_is_replayed_and_the_call_runs_once(world):
    first, again = await world.post(), await world.post()
    assert (first.status_code, first.json()) == (201, {"n": 1}) and "idempotent-replayed" not in first.headers
    assert (again.status_code, again.json(), again.headers["idempotent-replayed"]) == (201, {"n": 1}, "true")
    assert again.headers["content-type"] == "application/json" and world.runs == 1
    assert (await world.post(key=None)).json() == {"n": 2} and (await world.post(key=None)).json() == {"n": 3}


async def test_the_same_key_with_another_body_or_by_another_caller(world):
    await world.post()
    reused = await world.post(body={"a": 2})
    assert reused.status_code == 422 and reused.json()["error"] == "idempotency_key_reused"
    other = await world.post(**{"x-admin": "someone-else"})
    assert other.status_code == 201 and other.json() == {"n": 2}  # its own request, not the first answer
    assert (await world.post(key="x" * 256)).status_code == 400
    elsewhere = await world.http.post("/e/other/things", json={"a": 1}, headers={"Idempotency-Key": "k1"})
    assert elsewhere.json() == {"n": 3} and "idempotent-replayed" not in elsewhere.headers  # keys are per enterprise


async def test_a_retry_racing_the_first_request_is_told_to_wait(world):
    world.gate = asyncio.Event()
    first = asyncio.create_task(world.post())
    await asyncio.wait_for(world.entered.wait(), 10)
    racing = await world.post()
    assert racing.status_code == 409 and racing.json()["error"] == "request_in_progress"
    assert racing.headers["retry-after"] == "1"
    world.gate.set()
    assert (await first).json() == {"n": 1}
    assert (await world.post()).headers["idempotent-replayed"] == "true" and world.runs == 1


async def test_only_final_answers_are_kept(world):
    for status in (503, 500, 429):
        world.status = status
        await world.post(key=f"k{status}")
        world.status = 200
        retried = await world.post(key=f"k{status}")
        assert retried.status_code == 200 and "idempotent-replayed" not in retried.headers, status
    world.status = 599  # an unexpected exception: a 500, never kept, never the retry's answer
    assert (await world.post(key="boom")).status_code == 500
    world.status = 200
    assert (await world.post(key="boom")).status_code == 200
    assert await world.redis.keys("t:ent:idem:*:running") == []


async def test_refusals_from_exception_handlers_are_kept_like_any_final_answer(world):
    world.status = 409
    assert (await world.post()).json()["error"] == "refused"
    world.status = 201
    replay = await world.post()
    assert replay.status_code == 409 and replay.headers["idempotent-replayed"] == "true" and world.runs == 1


async def test_answers_carrying_a_secret_are_kept_only_briefly(world):
    await world.http.post("/e/ent/things?secret=1", json={}, headers={"Idempotency-Key": "s"})
    await world.post(key="plain")
    ttls = {}
    for key in await world.redis.keys("t:ent:idem:*"):
        ttls[key] = await world.redis.ttl(key)
    assert sorted(1 if t <= 60 else 2 for t in ttls.values()) == [1, 2]


async def test_keep_s_caps_every_answer_of_a_route_anyone_may_call(world):
    async def work() -> Response:
        return JSONResponse({"refused": True}, 400)

    scope = {"type": "http", "method": "POST", "path": "/e/ent/open", "headers": [(b"idempotency-key", b"anon")],
             "query_string": b"", "app": FastAPI()}  # fmt: skip

    async def receive() -> dict:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    await world.idem.run(Request(scope, receive), "ent", work, keep_s=30)
    (key,) = await world.redis.keys("t:ent:idem:*")
    assert 0 < await world.redis.ttl(key) <= 30
