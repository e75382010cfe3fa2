"""A service process started while Redis or the broker is down waits for it instead of exiting
(issue 17: an IdP restarted during a Redis outage exited at start and stayed down)."""

import pytest
from aiokafka.errors import KafkaConnectionError
from redis.exceptions import ConnectionError as RedisConnectionError

from lanyard.runtime.service import until_up


async def test_start_waits_for_a_dependency_that_comes_back():
    outcomes = [RedisConnectionError("refused"), KafkaConnectionError("refused"), OSError("reset"), None]
    calls = []

    async def call():
        calls.append(1)
        outcome = outcomes[len(calls) - 1]
        if outcome is not None:
            raise outcome

    await until_up("redis", call, first_s=0.001, most_s=0.002)
    assert len(calls) == 4


async def test_a_bug_at_start_is_not_waited_on():
    async def call():
        raise ValueError("a bug, not an outage")

    with pytest.raises(ValueError):
        await until_up("redis", call, first_s=0.001)
