"""Faults the soak injects into a running stack, each as an operator would meet it, and the
recovery it is measured by (fault → first successful checkout + SSO; → every service ready).

| name                 | what happens                                                           |
|----------------------|------------------------------------------------------------------------|
| kill:<service>       | SIGKILL of one service process, restarted at once (a supervisor would) |
| kill:idp-after-checkin | SIGKILL of the IdP the moment a checkin is answered, before the IdP  |
|                      | can have observed it                                                   |
| kafka-kill           | SIGKILL of the broker, started again on the same data                  |
| redis-kill           | SIGKILL of Redis, started again on the same data (AOF replay)          |
| redis-flush:<svc>    | one service's Redis database flushed, the service restarted (session   |
|                      | and policy rebuild from Kafka at start; see REBUILT_FROM_KAFKA)        |
| rp-down              | the relying party's back-channel logout endpoint answers 503 a while   |
| broker-cut           | the broker frozen (SIGSTOP) for a while: every connection to it hangs, |
|                      | as when the network to it is cut; then SIGCONT                         |
| together             | redis-kill, kill:idp, rp-down at the same moment                       |
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lanyard.harness.rp import LogoutReceiver
from lanyard.harness.soak.ledger import Ledger
from lanyard.harness.stack import SERVICES, Stack
from lanyard.runtime.redis import create_redis
from lanyard.runtime.testing import kafka_control, kill_redis, restart_redis


@dataclass
class Target:
    """What the faults act on."""

    stack: Stack
    kafka: str
    kafka_dir: Path
    redis: str
    redis_dir: Path
    receiver: LogoutReceiver
    ledger: Ledger
    rp_down_s: float = 60.0
    cut_s: float = 30.0


@dataclass
class Injected:
    """One fault as it happened."""

    name: str
    at: float
    restored: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)


def _kill_pid(pid: int, sig: int = signal.SIGKILL) -> None:
    os.kill(pid, sig)


def _kill_service(target: Target, service: str) -> None:
    proc = target.stack.processes[service]
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    target.stack.start_service(service)


def _kill_broker(target: Target) -> None:
    pid = int((target.kafka_dir / "kafka.pid").read_text())
    _kill_pid(pid)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # not our child (nohup'd by kafka.sh), but reap it if it is
        time.sleep(0.05)
    kafka_control("start", target.kafka_dir, target.kafka)


async def _freeze_broker(target: Target) -> None:
    pid = int((target.kafka_dir / "kafka.pid").read_text())
    _kill_pid(pid, signal.SIGSTOP)
    try:
        await asyncio.sleep(target.cut_s)
    finally:
        _kill_pid(pid, signal.SIGCONT)


REBUILT_FROM_KAFKA = ("session", "policy")
"""The services whose Redis database is a read model they rebuild from Kafka on their own at
start (DESIGN §3). The IdP's database also holds what never travels on Kafka (password hashes,
refresh tokens): its loss is a restore from backup, not a rebuild."""


async def _flush_redis(target: Target, service: str) -> None:
    """FLUSHDB of one service's database, then that service killed and started again."""
    client = create_redis(target.stack.env[f"LANYARD_{service.upper()}_REDIS_URL"])
    try:
        await client.flushdb()
    finally:
        await client.aclose()
    await asyncio.to_thread(_kill_service, target, service)


async def _rp_down(target: Target) -> None:
    target.receiver.down_until = time.time() + target.rp_down_s
    await asyncio.sleep(target.rp_down_s)


async def _after_checkin(target: Target) -> None:
    """Kill the IdP the moment the next checkin is answered."""
    seen = {t.n for t in target.ledger.traces if t.checkin_answered}
    deadline = time.time() + 60
    while time.time() < deadline:
        if any(t.checkin_answered and t.n not in seen for t in target.ledger.traces):
            break
        await asyncio.sleep(0.005)
    await asyncio.to_thread(_kill_service, target, "idp")


async def _together(target: Target) -> None:
    await asyncio.to_thread(kill_redis, target.redis_dir)
    await asyncio.to_thread(_kill_service, target, "idp")
    target.receiver.down_until = time.time() + target.rp_down_s
    await asyncio.sleep(2.0)
    await asyncio.to_thread(restart_redis, target.redis_dir, target.redis)
    await asyncio.sleep(max(0.0, target.receiver.down_until - time.time()))


async def _redis_kill(target: Target) -> None:
    await asyncio.to_thread(kill_redis, target.redis_dir)
    await asyncio.sleep(2.0)
    await asyncio.to_thread(restart_redis, target.redis_dir, target.redis)


def injector(name: str) -> Callable[[Target], Awaitable[None]]:
    """The coroutine that injects fault `name` and returns once the fault is over (the broken
    part restarted or reconnected)."""
    if name == "kill:idp-after-checkin":
        return _after_checkin
    if name.startswith("redis-flush:"):
        flushed = name.split(":", 1)[1]
        if flushed not in SERVICES:
            raise ValueError(f"unknown service {flushed}")
        return lambda target: _flush_redis(target, flushed)
    if name.startswith("kill:"):
        service = name.split(":", 1)[1]
        if service not in SERVICES:
            raise ValueError(f"unknown service {service}")
        return lambda target: asyncio.to_thread(_kill_service, target, service)
    known: dict[str, Callable[[Target], Awaitable[None]]] = {
        "kafka-kill": lambda target: asyncio.to_thread(_kill_broker, target),
        "redis-kill": _redis_kill,
        "rp-down": _rp_down,
        "broker-cut": _freeze_broker,
        "together": _together,
    }
    if name not in known:
        raise ValueError(f"unknown fault {name}")
    return known[name]


ALL_FAULTS = (
    *(f"kill:{s}" for s in SERVICES),
    "kill:idp-after-checkin",
    "kafka-kill",
    "redis-kill",
    *(f"redis-flush:{s}" for s in REBUILT_FROM_KAFKA),
    "rp-down",
    "broker-cut",
    "together",
)
