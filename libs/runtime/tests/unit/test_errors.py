"""Every service's error shape: validation errors name the field and the rule, never the value."""

import httpx
import pytest
from aiokafka.errors import KafkaTimeoutError
from fastapi import Depends, FastAPI, Query
from pydantic import BaseModel, Field
from redis.exceptions import ConnectionError as RedisConnectionError

from lanyard.runtime.errors import StateLost, describe_validation, install_error_handlers
from lanyard.runtime.text import FreeText
from lanyard.runtime.tokens import TestIssuer, TokenVerifier, require_roles

SECRET = "JBSWY3DPEHPK3PXP-correct-horse"


class Login(BaseModel):
    model_config = {"extra": "forbid"}
    username: FreeText = Field(max_length=16)
    password: str = Field(min_length=40)


def app() -> FastAPI:
    issuer = TestIssuer("http://t")
    verifier = TokenVerifier("http://t", issuer.static_jwks())
    application = FastAPI()
    install_error_handlers(application)

    @application.post("/e/{enterprise_id}/login")
    async def login(enterprise_id: str, body: Login, page: int = Query(default=1, ge=1)) -> dict:
        return {}

    @application.get("/e/{enterprise_id}/admin", dependencies=[Depends(require_roles(lambda r: verifier, "admin"))])
    async def admin(enterprise_id: str) -> dict:
        return {}

    @application.get("/boom")
    async def boom() -> dict:
        raise RuntimeError(SECRET)

    @application.get("/redis-down")
    async def redis_down() -> dict:
        raise RedisConnectionError(f"Error 111 connecting to 127.0.0.1:6379 {SECRET}")

    @application.get("/state-lost")
    async def state_lost() -> dict:
        raise StateLost(SECRET)

    @application.get("/broker-down")
    async def broker_down() -> dict:
        raise KafkaTimeoutError(SECRET)

    return application


@pytest.fixture
async def http():
    transport = httpx.ASGITransport(app=app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        yield client


def shape(r) -> str:
    body = r.json()
    assert set(body) == {"error", "error_description"}, body
    return body["error_description"]


async def test_validation_errors_are_400_without_the_value(http):
    r = await http.post("/e/x/login", json={"username": "u", "password": SECRET})
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    assert shape(r) == "body.password: String should have at least 40 characters" and SECRET not in r.text
    r = await http.post("/e/x/login", json={"username": "u", "password": "p" * 40, "totp_seed": SECRET})
    assert "body.totp_seed: Extra inputs are not permitted" in shape(r) and SECRET not in r.text
    r = await http.post("/e/x/login?page=0", json={"username": SECRET, "password": SECRET[:3]})
    text = shape(r)
    assert "body.username" in text and "body.password" in text and "query.page" in text and SECRET not in r.text
    r = await http.post("/e/x/login", json={"username": "a\x00", "password": "p" * 40})
    assert shape(r) == "body.username: must not contain control characters"


def test_keys_the_client_chose_are_not_repeated_and_long_lists_are_cut():
    errors = [{"loc": ("body", "attributes", SECRET + " x"), "msg": "bad", "input": 1}] + [
        {"loc": ("body", "f", i), "msg": "bad", "input": 1} for i in range(5)
    ]
    text = describe_validation(errors)
    assert text.startswith("body.attributes.…: bad; body.f.0: bad; body.f.1: bad; and 3 more") and SECRET not in text
    quoting = [{"loc": ("body", "x"), "msg": f"Input should be 'a', got {SECRET}", "input": SECRET, "type": "t"}]
    assert describe_validation(quoting) == "body.x: t"


async def test_401_keeps_www_authenticate_and_the_shape(http):
    r = await http.get("/e/x/admin")
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert r.json()["error"] == "unauthorized" and shape(r)
    r = await http.get("/e/x/admin", headers={"Authorization": "Bearer a.b.c"})
    assert r.status_code == 401 and r.json() == {"error": "invalid_token", "error_description": "malformed"}
    assert r.headers["www-authenticate"] == 'Bearer error="invalid_token"'


async def test_404_405_and_500_answer_in_the_shape_and_say_nothing_of_the_cause(http):
    r = await http.get("/nowhere")
    assert r.status_code == 404 and r.json() == {"error": "not_found", "error_description": "Not Found"}
    r = await http.get("/e/x/login")
    assert r.status_code == 405 and r.json()["error"] == "method_not_allowed" and r.headers["allow"] == "POST"
    r = await http.get("/boom")
    assert r.status_code == 500 and r.json()["error"] == "server_error" and SECRET not in r.text


async def test_a_dependency_down_is_503_to_retry_not_a_500(http):
    """Found by the soak (issue 17): Redis killed under load made the IdP's introspection and
    sign-in answer 500 server_error; a client reads that as a bug, not as "retry"."""
    for path in ("/redis-down", "/broker-down", "/state-lost"):
        r = await http.get(path)
        assert r.status_code == 503 and r.json()["error"] == "temporarily_unavailable", path
        assert r.headers["retry-after"] == "1" and SECRET not in r.text and "6379" not in r.text


async def test_a_dependency_down_is_answered_without_handing_the_server_a_traceback():
    """Starlette re-raises what reaches its last-resort handler, and the server logs a traceback
    for it: a Redis restart under load wrote hundreds of them. A dependency down is expected."""
    transport = httpx.ASGITransport(app=app(), raise_app_exceptions=True)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for path in ("/redis-down", "/broker-down", "/state-lost"):
            r = await client.get(path)
            assert r.status_code == 503 and r.json()["error"] == "temporarily_unavailable", path
        with pytest.raises(RuntimeError):  # a real bug still reaches the server's log
            await client.get("/boom")
