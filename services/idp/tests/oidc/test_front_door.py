"""The OIDC endpoints' input bounds (issue 12): JSON inside parameters, bodies without a length,
and caches keyed by the client ids requests name."""

import pytest

from lanyard.idp.adapters.redis_oidc import OidcStore
from lanyard.idp.oidc.service import OidcProvider

pytestmark = pytest.mark.integration

FORM = {"content-type": "application/x-www-form-urlencoded"}


async def test_a_deeply_nested_claims_parameter_is_an_error_redirect_not_a_500(world):
    deep = "[" * 1000 + "]" * 1000  # inside max_param_chars; Python's parser alone would recurse out
    r = await world.authorize(world.auth_params(claims='{"userinfo":' + deep + "}"))
    q = world.q(r)
    assert r.status_code == 303 and q["error"] == "invalid_request", r.text
    assert "nested deeper" in q["error_description"]
    r = await world.authorize(world.auth_params(claims='{"userinfo": {}, "userinfo": {}}'))
    assert world.q(r)["error"] == "invalid_request" and "repeats the key" in world.q(r)["error_description"]


async def test_a_chunked_body_is_bounded_while_it_is_read(world):
    async def chunks():  # no Content-Length: only counting the bytes read can stop it
        yield b"grant_type=refresh_token&refresh_token="
        for _ in range(64):
            yield b"x" * 1024

    r = await world.http.post(world.url("/token"), content=chunks(), headers=FORM, auth=("conf", world.secret))
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    assert "larger than 16384 bytes" in r.json()["error_description"]
    r = await world.http.post(
        world.url("/introspect"), content=b"token=%ff%fe", headers=FORM, auth=("conf", world.secret)
    )
    assert r.status_code == 400 and "not UTF-8" in r.json()["error_description"]
    r = await world.http.post(world.url("/authorize"), content=chunks(), headers=FORM)
    assert r.status_code == 413 and "too large" in r.text


async def test_made_up_client_ids_cannot_grow_the_client_cache(world, redis_client):
    provider = OidcProvider(world.ports, OidcStore(redis_client), world.config.model_copy(update={"cache_entries": 8}))
    for i in range(50):
        assert await provider.client(world.eid, f"made-up-{i}") is None
    assert len(provider._clients) == 8
    assert (await provider.client(world.eid, "conf")).client_id == "conf"  # real ones still resolve
