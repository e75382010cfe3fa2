"""The timer loop and relay stop on shutdown, even when a cancellation is swallowed beneath them."""

import asyncio

from lanyard.runtime.testing import eventually
from lanyard.session.app import BackgroundWork
from lanyard.session.settings import SessionSettings


class StubbornService:
    """Work that swallows the first cancellation, as a library under it once did."""

    def __init__(self) -> None:
        self.rounds = 0

    async def fire_due_timers(self) -> int:
        self.rounds += 1
        try:
            await asyncio.sleep(0.05)
        except asyncio.CancelledError:
            pass
        return 0

    async def relay_outbox(self) -> int:
        return await self.fire_due_timers()


async def test_stop_returns_promptly_even_if_a_cancellation_is_swallowed():
    service = StubbornService()
    work = BackgroundWork(service, SessionSettings(timer_poll_interval_s=0.01, outbox_interval_s=0.01))  # type: ignore[arg-type]
    await work.start()
    await eventually(lambda: service.rounds >= 4, 5, what="loops running")
    loops = list(work._tasks)
    await work.stop(timeout_s=5)
    assert all(task.done() for task in loops)  # they ended, not merely abandoned by the bounded wait
