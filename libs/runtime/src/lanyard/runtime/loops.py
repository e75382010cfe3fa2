"""Periodic background work of a service process (the outbox relay, the session's timers)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from lanyard.runtime.logging import get_logger

log = get_logger("lanyard.loops")


class BackgroundLoops:
    """Periodic work of one process (the outbox relay, a service's timers), stopped promptly.

    Stopping does not rely on task cancellation alone: a library that swallows a CancelledError
    (Python 3.11's `wait_for` can, when its inner await finishes at the same moment) would leave
    a loop running forever, so the loops also watch a stop flag and the wait for them is bounded.
    A round that fails (Redis or the broker briefly away) is logged and the next round retries.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._work: list[tuple[str, Callable[[], Awaitable[Any]], float]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()

    def add(self, name: str, work: Callable[[], Awaitable[Any]], interval_s: float) -> BackgroundLoops:
        """Run `work` every `interval_s` once started."""
        self._work.append((name, work, interval_s))
        return self

    async def _loop(self, name: str, work: Callable[[], Awaitable[Any]], interval: float) -> None:
        failing = False
        while not self._stopping.is_set():
            try:
                await work()
                if failing:
                    log.info("background work recovered", work=name)
                failing = False
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not failing:  # once per outage, not once per round
                    log.warning("background work failed", work=name, error=type(exc).__name__)
                failing = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), interval)

    async def start(self) -> None:
        """Start every loop; each one's first round runs at once."""
        self._stopping.clear()
        self._tasks = [asyncio.create_task(self._loop(n, w, i), name=f"{self._name}-{n}") for n, w, i in self._work]

    async def stop(self, timeout_s: float = 5.0) -> None:
        """Stop every loop (work claimed mid-round comes due again after its lease)."""
        self._stopping.set()
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=timeout_s)
            if pending:
                log.warning("background work did not stop in time", loops=self._name, tasks=len(pending))
        self._tasks = []

    @property
    def tasks(self) -> list[asyncio.Task[None]]:
        """The running loops (for tests)."""
        return list(self._tasks)
