"""settle / run_all: every step finishes before a failure is reported, and the first one is."""

import asyncio
import inspect

import pytest

from lanyard.runtime.settle import raise_first_failure, run_all, settle


class Refused(Exception):
    pass


async def test_a_failure_is_raised_only_after_the_slower_steps_have_finished():
    finished: list[str] = []

    async def fails_at_once():
        raise Refused("first")

    async def slow_publish():
        await asyncio.sleep(0.05)
        finished.append("published")

    with pytest.raises(Refused, match="first"):
        await run_all([fails_at_once(), slow_publish()])
    # A retry that started now would not race the acknowledged publish still in flight.
    assert finished == ["published"]


async def test_results_come_back_in_the_order_given_with_the_failures_in_place():
    async def value(v, delay):
        await asyncio.sleep(delay)
        return v

    async def refused():
        raise Refused("no")

    results = await settle([value("a", 0.02), refused(), value("c", 0)])
    assert results[0] == "a" and results[2] == "c"
    assert isinstance(results[1], Refused)


async def test_the_first_failure_in_the_order_given_is_the_one_raised():
    async def refused(name, delay):
        await asyncio.sleep(delay)
        raise Refused(name)

    with pytest.raises(Refused, match="earlier-listed"):
        await run_all([refused("earlier-listed", 0.03), refused("faster", 0)])


async def test_a_single_step_reports_its_failure_like_many_do():
    async def refused():
        raise Refused("alone")

    results = await settle([refused()])
    assert isinstance(results[0], Refused)
    with pytest.raises(Refused, match="alone"):
        raise_first_failure(results)


async def test_cancelling_the_caller_of_a_single_step_cancels_it_and_is_not_swallowed():
    started = asyncio.Event()

    async def waits_forever():
        started.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(run_all([waits_forever()]))
    await asyncio.wait_for(started.wait(), 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_no_steps_is_nothing_to_do():
    assert await settle([]) == []
    await run_all([])


async def test_a_limit_bounds_how_many_steps_run_at_once_and_every_one_still_runs():
    running, most, done = 0, 0, []

    async def step(i):
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.01)
        running -= 1
        done.append(i)
        if i == 3:
            raise Refused("three")

    with pytest.raises(Refused, match="three"):
        await run_all([step(i) for i in range(20)], limit=4)
    assert most == 4 and sorted(done) == list(range(20))


async def test_steps_still_waiting_for_the_limit_are_closed_when_the_caller_is_cancelled():
    started: list[int] = []

    async def step(i):
        started.append(i)
        await asyncio.sleep(10)

    steps = [step(i) for i in range(3)]
    task = asyncio.create_task(run_all(steps, limit=1))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The two that never got a turn are closed, not left to warn "never awaited" when collected.
    assert started == [0] and all(inspect.getcoroutinestate(s) == inspect.CORO_CLOSED for s in steps)
