"""Running session instances against the real Kafka and Redis, and a Locker app to drive them."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from joserfc.jwk import ECKey

from lanyard.contracts import Event, topics
from lanyard.runtime.kafka import EventPublisher, create_broker
from lanyard.runtime.proofs import sign_device_proof, sign_device_result
from lanyard.runtime.testing import TopicProbe, eventually
from lanyard.runtime.tokens import TestIssuer
from lanyard.session.app import create_app
from lanyard.session.settings import SessionSettings

LOCKER_REPORT = {"locker_version": "4.3.0", "sso_extension_installed": True}
"""What an up-to-date Locker app reports with its checkout."""


def fast_settings(group: str, **kw: Any) -> SessionSettings:
    # The rebuild from Kafka is on in production; here only the tests about it turn it on, since
    # the test run's topics hold every earlier test's enterprises (each test flushes Redis).
    base = {"consumer_group": group, "timer_poll_interval_s": 0.05, "outbox_interval_s": 0.1, "outbox_grace_s": 0.3,
            "rebuild_on_start": False}  # fmt: skip
    return SessionSettings(**{**base, **kw})


class Instance:
    """One running session service and an HTTP client on it."""

    def __init__(self, app: Any, client: httpx.AsyncClient, stack: contextlib.AsyncExitStack) -> None:
        self.app = app
        self.client = client
        self.service = app.state.service
        self.stack = stack


class Harness:
    """Starts instances sharing one consumer group, and plays admin, Locker and policy."""

    def __init__(self, kafka_bootstrap: str, issuer: TestIssuer) -> None:
        self.kafka = kafka_bootstrap
        self.issuer = issuer
        self.group = f"test-session-{uuid.uuid4().hex[:8]}"
        self.eid = f"ent-{uuid.uuid4().hex[:8]}"
        self.base = fast_settings(self.group).public_base_url.rstrip("/")
        self.stack = contextlib.AsyncExitStack()
        self.keys: dict[str, ECKey] = {}
        self.probe = TopicProbe(kafka_bootstrap, topics.DEVICE_SESSIONS)
        self._publisher: EventPublisher | None = None
        self.locker_report = dict(LOCKER_REPORT)

    async def start(self, **settings: Any) -> Instance:
        app = create_app(fast_settings(self.group, **settings), jwks=self.issuer.static_jwks())
        stack = contextlib.AsyncExitStack()
        self.stack.push_async_callback(stack.aclose)
        await stack.enter_async_context(app.router.lifespan_context(app))
        client = await stack.enter_async_context(
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://session")
        )
        instance = Instance(app, client, stack)

        async def ready() -> bool:
            return (await client.get("/health/ready")).status_code == 200

        await eventually(ready, 30, what="session readiness")
        return instance

    async def stop(self, instance: Instance) -> None:
        """Stop one instance as a process exit would (the lifespan's shutdown)."""
        await instance.stack.aclose()

    async def publish(self, event: Event) -> None:
        """Publish as another service would."""
        if self._publisher is None:
            broker = create_broker(self.kafka, "session-tests")
            await broker.start()
            self.stack.push_async_callback(broker.stop)
            self._publisher = EventPublisher(broker)
        await self._publisher.publish(event)

    async def partition_ends(self) -> dict[int, int]:
        """The end offset of each device-sessions partition right now."""
        consumer = AIOKafkaConsumer(bootstrap_servers=self.kafka, enable_auto_commit=False)
        await consumer.start()
        try:
            parts = [TopicPartition(topics.DEVICE_SESSIONS.name, p) for p in range(topics.DEVICE_SESSIONS.partitions)]
            ends = await consumer.end_offsets(parts)
            return {tp.partition: offset for tp, offset in ends.items()}
        finally:
            await consumer.stop()

    async def probe_caught_up(self, since: dict[int, int]) -> None:
        """Wait until the probe holds every record published after `since` (end offsets then)."""
        ends = await self.partition_ends()

        def caught_up() -> bool:
            seen: dict[int, int] = {}
            for record in self.probe.raw:
                seen[record.partition] = max(seen.get(record.partition, -1), record.offset)
            return all(ends[p] <= since.get(p, 0) or seen.get(p, -1) >= ends[p] - 1 for p in ends)

        await eventually(caught_up, 10, what="probe caught up with the topic")

    # ---------------------------------------------------------------- admin

    def admin(self, *roles: str) -> dict[str, str]:
        token = self.issuer.admin_token(self.eid, "admin-1", *(roles or ("admin",)))
        return {"Authorization": f"Bearer {token}"}

    async def enrol(self, inst: Instance, device_id: str = "dev-1") -> dict[str, Any]:
        key = ECKey.generate_key("P-256")
        self.keys[device_id] = key
        body = {"device_id": device_id, "model": "iPhone 15", "serial": f"SN-{device_id}", "mdm_id": "mdm-1",
                "public_jwk": key.as_dict(private=False)}  # fmt: skip
        r = await inst.client.post(f"/session/e/{self.eid}/devices", json=body, headers=self.admin())
        assert r.status_code == 201, r.text
        return r.json()

    # ---------------------------------------------------------------- Locker

    def path(self, rest: str) -> str:
        return f"/session/e/{self.eid}{rest}"

    def proof(self, device_id: str, method: str, path: str, handle: str | None = None) -> dict[str, str]:
        return {"Device-Proof": sign_device_proof(self.keys[device_id], method, self.base + path, handle)}

    async def checkout(
        self, inst: Instance, device_id: str = "dev-1", user: str = "u-1", report: dict | None = None, **kw: Any
    ) -> httpx.Response:
        """Check out as an up-to-date Locker app with its SSO extension (unless `report` says else);
        `kw` are extra headers."""
        path = self.path(f"/devices/{device_id}/checkout")
        assertion = self.issuer.checkout_assertion(self.eid, user, device_id)
        body = {"assertion": assertion, **(LOCKER_REPORT if report is None else report)}
        return await inst.client.post(path, json=body, headers={**self.proof(device_id, "POST", path), **kw})

    async def locker(
        self, inst: Instance, method: str, dsid: str, rest: str = "", device_id: str = "dev-1", **kw: Any
    ) -> httpx.Response:
        path = self.path(f"/device-sessions/{dsid}{rest}")
        headers = {**self.proof(device_id, method, path, dsid), **kw.pop("headers", {})}
        return await inst.client.request(method, path, headers=headers, **kw)

    def face_result(self, device_id: str, challenge: str, user: str = "u-1", match: float = 0.97) -> str:
        claims = {"challenge": challenge, "sub": user, "match_score": match, "liveness_score": 0.96,
                  "iat": int(time.time())}  # fmt: skip
        return sign_device_result(self.keys[device_id], claims, "face-result+jwt")


@pytest.fixture
async def harness(kafka_bootstrap: str, redis_client: Any) -> AsyncIterator[Harness]:
    h = Harness(kafka_bootstrap, TestIssuer(fast_settings("x").public_base_url))
    await h.probe.start()
    try:
        async with h.stack:
            yield h
    finally:
        await h.probe.stop()
