"""The scaffolding every service's composition root uses: infrastructure, lifespan, serving.

A service's `app.create_app(settings, **overrides)` builds its adapters, registers its handlers
with `subscribe`, and hands both to `ServiceRuntime`, which owns the start/stop order:
Redis → topics → broker (publisher and consumers) on start, the reverse on stop. A process
started while Redis or the broker is down waits for them (backoff, logged) instead of exiting:
a dependency away is never fatal (DESIGN §4), and nothing may depend on a supervisor's restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import socket
import sys
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from aiokafka.errors import KafkaError
from faststream.kafka import KafkaBroker
from redis.asyncio import Redis
from redis.exceptions import RedisError
from uvicorn.config import STARTUP_FAILURE

from lanyard.runtime.consumer import consumer_state, subscriber_ready
from lanyard.runtime.health import Check
from lanyard.runtime.kafka import EventPublisher, create_broker, ensure_topics
from lanyard.runtime.logging import configure_logging, get_logger
from lanyard.runtime.redis import create_redis
from lanyard.runtime.settings import ServiceSettings

Hook = Callable[[], Awaitable[None]]
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


@dataclass
class ServiceRuntime:
    """Kafka broker, publisher and Redis client of one service process, and their lifecycle."""

    settings: ServiceSettings
    broker: KafkaBroker
    redis: Redis
    publisher: EventPublisher
    subscribers: list[Any] = field(default_factory=list)
    on_start: list[Hook] = field(default_factory=list)
    on_stop: list[Hook] = field(default_factory=list)

    @classmethod
    def from_settings(cls, settings: ServiceSettings, **overrides: Any) -> ServiceRuntime:
        """Build the real adapters, or take the ones a test hands in (`broker=`, `redis=`)."""
        broker = overrides.get("broker") or create_broker(
            settings.kafka_bootstrap_servers, client_id=f"lanyard-{settings.service_name}"
        )
        redis = overrides.get("redis") or create_redis(settings.redis_url)
        return cls(settings=settings, broker=broker, redis=redis, publisher=EventPublisher(broker))

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: Any = None) -> AsyncIterator[None]:
        """Start everything in dependency order; stop in reverse, even after a failure."""
        log = get_logger("lanyard.service")
        await until_up("redis", self.redis.ping)
        if self.settings.create_topics:
            await until_up("kafka", lambda: ensure_topics(self.settings.kafka_bootstrap_servers))
        await until_up("kafka", self.broker.connect)
        await self.broker.start()
        try:
            for hook in self.on_start:
                await hook()
            log.info("started", service=self.settings.service_name)
            yield
        finally:
            for hook in reversed(self.on_stop):
                with contextlib.suppress(Exception):
                    await hook()
            await self.broker.stop()
            await self.redis.aclose()
            log.info("stopped", service=self.settings.service_name)

    def checks(self) -> dict[str, Check]:
        """Readiness: Redis answers, the broker is connected, every consumer has partitions, and
        no consumer holds a record it keeps failing on (a dependency away: DESIGN §4)."""

        async def redis_ok() -> bool:
            return bool(await self.redis.ping())

        async def kafka_ok() -> bool:
            return bool(await self.broker.ping(timeout=2))

        async def consumers_ok() -> bool:
            return all(subscriber_ready(s) for s in self.subscribers)

        async def handlers_ok() -> bool:
            return not any((state := consumer_state(s)) is not None and state.holding for s in self.subscribers)

        return {"redis": redis_ok, "kafka": kafka_ok, "consumers": consumers_ok, "handlers": handlers_ok}


async def until_up(what: str, call: Callable[[], Awaitable[Any]], first_s: float = 0.05, most_s: float = 2.0) -> None:
    """Call until it succeeds, backing off; each failure logged with its type (found by the soak:
    an IdP restarted while Redis was down exited at start and stayed down)."""
    log = get_logger("lanyard.service")
    pause = first_s
    while True:
        try:
            await call()
            return
        except (OSError, RedisError, KafkaError) as exc:
            log.warning("waiting for a dependency at start", dependency=what, error=type(exc).__name__)
        await asyncio.sleep(pause)
        pause = min(most_s, pause * 2)


def serve_instances(create_app: Callable[[Any], Any], settings: ServiceSettings, instances: int) -> None:
    """Run `instances` processes of one service on its host and port.

    For a service built to run as several instances (its read models shared in Redis, its
    consumers members of one group, nothing held in one process that another must see). One
    instance is `serve(create_app(settings), settings)` in this process. With
    more, this process forks them before anything connects, each builds its own application
    from a copy of the settings whose `consumer_instance` is suffixed with its number (static
    members of one group must differ), and all listen on the port with SO_REUSEPORT. This
    process only supervises: SIGTERM and SIGINT are passed on, and when one instance exits on
    its own (even cleanly) the others are stopped and this process exits with a failure status
    (that instance's, or 1), so the service's own supervisor sees one unit that either runs whole
    or not at all."""
    if instances == 1:
        serve(create_app(settings), settings)
        return
    children: list[int] = []
    supervisor = os.getpid()
    for number in range(1, instances + 1):
        member = f"{settings.consumer_instance}-{number}" if settings.consumer_instance else None
        instance = settings.model_copy(update={"consumer_instance": member})
        pid = os.fork()
        if pid == 0:  # the instance: serve, then leave without running the supervisor's cleanup
            status = 1
            try:
                _stop_with(supervisor)
                serve(create_app(instance), instance, reuse_port=True)
                status = 0
            except SystemExit as exc:
                status = exc.code if isinstance(exc.code, int) else 1
            except BaseException:  # a failed start: its traceback, then a failure status
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(status)
        children.append(pid)
    _supervise(children)


def _stop_with(supervisor: int) -> None:
    """Have the kernel send this process SIGTERM when its supervisor dies, however it dies.

    A supervisor killed with SIGKILL cannot pass anything on; without this its instances would
    keep serving the port as orphans, next to the unit a service manager starts in its place."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != supervisor:  # it died before the request took effect
        sys.exit(1)


def _supervise(children: list[int]) -> None:
    """Pass stop signals to the instances; when one exits on its own, stop the rest and fail."""
    stopping = False

    def stop_all(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    signal.signal(signal.SIGTERM, stop_all)
    signal.signal(signal.SIGINT, stop_all)
    failure = 0
    running = set(children)
    while running:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        running.discard(pid)
        if not stopping:  # one instance gone on its own, even cleanly: the unit is not whole
            code = os.waitstatus_to_exitcode(status)
            failure = code if code > 0 else 1  # killed by a signal: a failure all the same
            stop_all(signal.SIGTERM, None)
    sys.exit(failure)


def serve(app: Any, settings: ServiceSettings, reuse_port: bool = False) -> None:
    """Run one service under uvicorn with Lanyard's logging (the body of every `__main__`).

    The loop's default executor (asyncio.to_thread) gets `settings.blocking_threads` threads:
    it bounds memory-hungry blocking work such as argon2id hashes (64 MiB each while they run).
    Set here, in the service process, not in the lifespan: tests run apps on their own loop."""
    configure_logging(settings.service_name, settings.log_level, settings.log_json)
    config = uvicorn.Config(
        app,
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        access_log=False,
        proxy_headers=True,
        forwarded_allow_ips="127.0.0.1",
        timeout_graceful_shutdown=10,
    )
    server = uvicorn.Server(config)
    sockets = [_reuse_port_socket(settings.http_host, settings.http_port)] if reuse_port else None

    async def main() -> None:
        executor = ThreadPoolExecutor(max_workers=settings.blocking_threads, thread_name_prefix="lanyard-blocking")
        asyncio.get_running_loop().set_default_executor(executor)
        await server.serve(sockets=sockets)

    with asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:
        runner.run(main())
    if not server.started:
        sys.exit(STARTUP_FAILURE)  # as uvicorn.run does: the lifespan or the bind failed


def _reuse_port_socket(host: str, port: int) -> socket.socket:
    """A bound TCP socket that other instances of the service may bind too (SO_REUSEPORT)."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(address)
    return sock
