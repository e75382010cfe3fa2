"""The Redis factory (one asyncio client per service, decoded strings, bounded timeouts) and `LuaScript`."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

from redis.asyncio import Connection, Redis
from redis.exceptions import NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError


def create_redis(url: str, socket_timeout_s: float = 5) -> Redis:
    """An asyncio Redis client for `url` (decode_responses on: keys and values are str).

    Every write and every read is bounded by `socket_timeout_s`: a Redis that stops answering
    fails the command (a `redis.exceptions.TimeoutError`) instead of holding the request."""
    tcp = {"connection_class": BoundedWriteConnection} if url.startswith("redis://") else {}
    return Redis.from_url(
        url,
        decode_responses=True,
        socket_timeout=socket_timeout_s,
        socket_connect_timeout=2,
        health_check_interval=30,
        **tcp,
    )


class BoundedWriteConnection(Connection):
    """A TCP connection whose writes are bounded by `asyncio.timeout` rather than `wait_for`.

    redis-py bounds each write with `asyncio.wait_for`, which on Python 3.11 runs the write as a
    new Task: a task creation and two extra event-loop turns for every command. Under wrk load
    that was ≈ 5 % of the IdP's CPU per introspection (py-spy, docs/performance.md). The bound is
    the same; only the mechanism differs. Reads keep redis-py's own timeout."""

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        bound = self.socket_timeout
        if not bound:
            await super().send_packed_command(command, check_health)
            return
        # Without socket_timeout the parent writes in this task; the timeout below bounds it. A
        # connection carries one command at a time, so no other caller sees the attribute unset.
        self.socket_timeout = None
        try:
            async with asyncio.timeout(bound):
                await super().send_packed_command(command, check_health)
        except TimeoutError:
            raise RedisTimeoutError("Timeout writing to socket") from None  # the parent disconnected
        finally:
            self.socket_timeout = bound


class LuaScript:
    """A Lua script run with EVALSHA on one client, loaded again if the server has forgotten it.

    In place of redis-py's `register_script`: its script object checks on every call whether the
    client is a pipeline, and that `isinstance` against a Protocol-derived class was 4.8 % of the
    IdP's CPU per introspection under wrk load (py-spy, docs/performance.md). No Lanyard script
    runs inside a pipeline, so this one sends EVALSHA straight away; a restarted or flushed
    Redis answers NOSCRIPT, and the script is loaded and run once more."""

    def __init__(self, redis: Redis, source: str) -> None:
        self._redis = redis
        self._source = source
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()  # the name Redis gives it

    async def __call__(self, keys: Sequence[str] = (), args: Iterable[Any] = ()) -> Any:
        """Run the script on `keys` with `args`; its reply as redis-py decodes it."""
        try:
            return await self._redis.execute_command("EVALSHA", self.sha, len(keys), *keys, *args)
        except NoScriptError:
            self.sha = await self._redis.script_load(self._source)
            return await self._redis.execute_command("EVALSHA", self.sha, len(keys), *keys, *args)
