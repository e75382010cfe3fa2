"""The Redis factory (one asyncio client per service, decoded strings, bounded timeouts) and `LuaScript`."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError


def create_redis(url: str) -> Redis:
    """An asyncio Redis client for `url` (decode_responses on: keys and values are str)."""
    return Redis.from_url(
        url,
        decode_responses=True,
        socket_timeout=5,
        socket_connect_timeout=2,
        health_check_interval=30,
    )


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
