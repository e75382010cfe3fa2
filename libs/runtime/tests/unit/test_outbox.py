"""The outbox relay over a fake store (the Redis layout has its own tests in the services): one
key's events in order, each after the previous ack; other keys concurrently; a failure puts back
that key's rest and nothing else; what was acknowledged is forgotten in one write."""

from __future__ import annotations

import asyncio

import pytest

from lanyard.contracts import events as ev
from lanyard.runtime.outbox import relay_once


def checked_out(device_id: str, n: int) -> ev.DeviceCheckedOut:
    payload = ev.DeviceCheckedOutPayload(device_session_id=f"ds-{device_id}-{n}", device_id=device_id, user_id="u",
                                         sequence=n, amr=("pwd",), checked_out_at="2026-12-02T12:00:00Z",
                                         device_jkt="jkt")  # fmt: skip
    return ev.DeviceCheckedOut(enterprise_id="e-1", producer="session", payload=payload)


class FakeStore:
    def __init__(self, events):
        self.due = list(events)
        self.done_writes: list[list[str]] = []
        self.put_back: list[tuple[list[str], float]] = []

    async def claim_outbox(self, now, lease_s, limit):
        return self.due[:limit]

    async def outbox_done(self, event):
        self.done_writes.append([event.event_id])

    async def outbox_done_many(self, events):
        self.done_writes.append([e.event_id for e in events])

    async def outbox_later(self, events, due):
        self.put_back.append(([e.event_id for e in events], due))


class SlowBroker:
    """Acknowledges after a delay; remembers the order and how many were in flight at once."""

    def __init__(self, fail_on: set[str] = frozenset()):
        self.acked: list[str] = []
        self.in_flight = self.most_in_flight = 0
        self.fail_on = fail_on

    async def publish(self, event):
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0.01)
            if event.event_id in self.fail_on:
                raise ConnectionError("broker away")
            self.acked.append(event.event_id)
        finally:
            self.in_flight -= 1


def relay(store, broker):
    return relay_once(store, broker, 100.0, lease_s=30, timeout_s=1, retry_s=1)


async def test_one_keys_events_keep_their_order_while_other_keys_go_concurrently():
    a = [checked_out("dev-a", n) for n in (1, 2, 3)]
    b = [checked_out("dev-b", n) for n in (1, 2)]
    store, broker = FakeStore([a[0], b[0], a[1], b[1], a[2]]), SlowBroker()
    assert await relay(store, broker) == 5
    order = broker.acked
    assert [i for i in order if i in {e.event_id for e in a}] == [e.event_id for e in a]
    assert [i for i in order if i in {e.event_id for e in b}] == [e.event_id for e in b]
    assert broker.most_in_flight == 2, "one per key at a time, the two keys at once"
    assert len(store.done_writes) == 1 and sorted(store.done_writes[0]) == sorted(order)


async def test_a_failure_puts_back_that_keys_rest_the_others_are_acknowledged_then_it_raises():
    a = [checked_out("dev-a", n) for n in (1, 2, 3)]
    b = [checked_out("dev-b", 1)]
    store, broker = FakeStore([*a, *b]), SlowBroker(fail_on={a[1].event_id})
    with pytest.raises(ConnectionError):
        await relay(store, broker)
    assert broker.acked.count(a[2].event_id) == 0, "nothing after the failed one of its key"
    assert store.put_back == [([a[1].event_id, a[2].event_id], 101.0)]
    assert sorted(store.done_writes[0]) == sorted([a[0].event_id, b[0].event_id])
