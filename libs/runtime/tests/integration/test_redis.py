"""The Redis every read model lives in: reachable, read/write, AOF on; scripts survive a forgotten cache."""

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


async def test_a_lua_script_runs_again_after_the_server_forgot_it(redis_client):
    from lanyard.runtime.redis import LuaScript

    incr = LuaScript(redis_client, "return redis.call('INCRBY', KEYS[1], ARGV[1])")
    assert await incr(keys=["lanyard:test:n"], args=[2]) == 2  # first call: NOSCRIPT, loaded, run
    await redis_client.script_flush()  # as a restarted Redis without the script cache would be
    assert await incr(keys=["lanyard:test:n"], args=[3]) == 5
    assert await redis_client.get("lanyard:test:n") == "5"  # each call ran exactly once
