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


async def test_a_server_that_stops_reading_fails_the_write_within_the_bound():
    """A write into a full socket buffer is bounded (redis-py's wait_for replaced by a timeout)."""
    import asyncio
    import time

    from redis.exceptions import TimeoutError as RedisTimeoutError

    from lanyard.runtime.redis import create_redis

    held: list[asyncio.StreamWriter] = []

    async def handshake_then_deaf(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        while chunk := await reader.read(65536):
            if b"lanyard:test:big" in chunk:
                return  # the SET has begun: read nothing more, so the client's writes fill the buffers
            # HELLO, CLIENT SETINFO, the health check's PING: enough for redis-py to connect.
            writer.write(b"+PONG\r\n" if b"PING" in chunk else b"+OK\r\n" * chunk.count(b"*"))

    server = await asyncio.start_server(handshake_then_deaf, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = create_redis(f"redis://127.0.0.1:{port}/0", socket_timeout_s=0.5)
    started = time.monotonic()
    try:
        with pytest.raises(RedisTimeoutError, match="writing"):
            await client.set("lanyard:test:big", "x" * 64_000_000)  # far more than the socket buffers
        assert time.monotonic() - started < 5  # the bound, not forever
    finally:
        await client.aclose()
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()
