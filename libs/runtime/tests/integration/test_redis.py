"""The Redis every read model lives in: reachable, read/write, AOF on."""

import pytest

pytestmark = pytest.mark.integration


async def test_read_and_write(redis_client):
    await redis_client.hset("lanyard:test:h", mapping={"state": "ACTIVE", "seq": "1"})
    assert await redis_client.hgetall("lanyard:test:h") == {"state": "ACTIVE", "seq": "1"}
    assert await redis_client.getdel("missing") is None
    await redis_client.set("lanyard:test:code", "x", ex=60)
    assert await redis_client.getdel("lanyard:test:code") == "x"
    assert await redis_client.getdel("lanyard:test:code") is None  # single use, atomically


async def test_append_only_file_is_on(redis_client):
    assert (await redis_client.config_get("appendonly"))["appendonly"] == "yes"
