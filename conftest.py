"""Shared fixtures for every test in the repo: the real Kafka broker and the real Redis.

Where they come from, in order: the environment (KAFKA_BOOTSTRAP_SERVERS, REDIS_URL) when
reachable; else testcontainers when a Docker engine answers; else the project's own Kafka and
Redis from deploy/, started once per test run and stopped at the end. Under CI=true a missing
broker or Redis fails the run; elsewhere the tests that need them are skipped.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import pytest

from lanyard.runtime.testing import docker_answers, local_kafka, local_redis, tcp_open

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _unavailable(what: str, why: str) -> None:
    message = f"{what} is not available: {why}"
    if IN_CI:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap servers of a real Kafka broker with every registry topic created."""
    env = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    with contextlib.ExitStack() as stack:
        if env and tcp_open(env):
            bootstrap = env
        elif docker_answers():
            from testcontainers.kafka import KafkaContainer

            container = stack.enter_context(KafkaContainer("confluentinc/cp-kafka:8.0.0").with_kraft())
            bootstrap = container.get_bootstrap_server()
        else:
            try:
                bootstrap = stack.enter_context(local_kafka(tmp_path_factory.mktemp("kafka")))
            except Exception as exc:
                _unavailable("Kafka", f"deploy/kafka/kafka.sh start failed: {exc}")
        os.environ["KAFKA_BOOTSTRAP_SERVERS"] = bootstrap
        import asyncio

        from lanyard.runtime.kafka import ensure_topics

        asyncio.run(ensure_topics(bootstrap))
        yield bootstrap


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a real Redis server (database 0)."""
    env = os.environ.get("REDIS_URL")
    with contextlib.ExitStack() as stack:
        if env and tcp_open(env.split("//", 1)[-1].split("/", 1)[0]):
            url = env
        elif docker_answers():
            from testcontainers.redis import RedisContainer

            container = stack.enter_context(RedisContainer("redis:7"))
            url = f"redis://{container.get_container_host_ip()}:{container.get_exposed_port(6379)}/0"
        else:
            try:
                url = stack.enter_context(local_redis(tmp_path_factory.mktemp("redis")))
            except Exception as exc:
                _unavailable("Redis", f"deploy/redis/redis.sh start failed: {exc}")
        os.environ["REDIS_URL"] = url
        yield url


@pytest.fixture
async def redis_client(redis_url: str):
    """A client on a flushed Redis: each test starts from an empty read model."""
    from lanyard.runtime.redis import create_redis

    client = create_redis(redis_url)
    await client.flushall()
    yield client
    await client.aclose()
