"""The Redis factory: one asyncio client per service, decoded strings, bounded timeouts."""

from __future__ import annotations

from redis.asyncio import Redis


def create_redis(url: str) -> Redis:
    """An asyncio Redis client for `url` (decode_responses on: keys and values are str)."""
    return Redis.from_url(
        url,
        decode_responses=True,
        socket_timeout=5,
        socket_connect_timeout=2,
        health_check_interval=30,
    )
