"""Run independent steps concurrently, let every one finish, then report the first failure.

Why not `asyncio.gather` alone: without `return_exceptions` the first failure is raised while its
siblings are still running (an acknowledged publish still in flight, a Redis write half done),
and the caller's retry then races them. With it, each caller had to repeat the same "collect,
pick the failures, raise the first" lines. `settle` keeps the per-step results for callers that
act on the steps that succeeded (record exactly the announcements the broker acknowledged);
`raise_first_failure` turns them back into "all or raise" once that is done.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Iterable
from typing import TypeVar

T = TypeVar("T")


async def settle(steps: Iterable[Awaitable[T]], limit: int | None = None) -> list[T | BaseException]:
    """Await every step concurrently; each result or exception, in the order given.

    A single step is awaited directly (no task is created for it: most batches hold one
    partition, most check-ins one revocation). Cancellation of the caller still propagates.
    `limit`: at most that many steps run at once — each step that holds a Redis connection takes
    one of its pool's (redis-py's default is 100, and an exhausted pool fails the command).
    """
    pending = list(steps)
    if limit is not None and len(pending) > limit:
        gate = asyncio.Semaphore(limit)

        async def gated(step: Awaitable[T]) -> T:
            try:
                async with gate:
                    return await step
            finally:
                if inspect.iscoroutine(step) and inspect.getcoroutinestate(step) == inspect.CORO_CREATED:
                    step.close()  # cancelled while waiting for the gate: never started, nothing to undo

        pending = [gated(step) for step in pending]
    if len(pending) == 1:
        try:
            return [await pending[0]]
        except Exception as exc:  # reported to the caller, as gather does
            return [exc]
    return await asyncio.gather(*pending, return_exceptions=True)


def raise_first_failure(results: Iterable[object]) -> None:
    """Raise the first exception among `settle`'s results, if any."""
    for result in results:
        if isinstance(result, BaseException):
            raise result


async def run_all(steps: Iterable[Awaitable[object]], limit: int | None = None) -> None:
    """Await every step concurrently (at most `limit` at once, as `settle`); once all have
    finished, raise the first failure."""
    raise_first_failure(await settle(steps, limit))
