"""Test support shared by every service's tests (imported by tests only, never by services).

- `eventually`: poll an async or sync predicate with a bound, instead of sleeping.
- `TopicProbe`: read what services published to a topic, from "now" on, as contracts events.
- `local_kafka` / `local_redis`: start the project's own broker and Redis from deploy/ in a
  throw-away data dir, for test runs on machines with neither an env-given one nor Docker;
  `kill_redis` / `restart_redis` and `kafka_control` crash and bring back such a private one.
- `serve_in_thread`: a small ASGI app (a test relying party, a stand-in upstream) on a free
  loopback port, served by uvicorn in a thread for a synchronous fixture.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition

from lanyard.contracts import Event, Topic, decode_event

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[5]


async def eventually(
    predicate: Callable[[], Any | Awaitable[Any]], timeout: float = 10.0, interval: float = 0.02, what: str = ""
) -> Any:
    """Poll `predicate` until it returns something truthy (returned), or fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = predicate()
        if inspect.isawaitable(last):
            last = await last
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"not true after {timeout}s: {what or predicate!r} (last value {last!r})")
        await asyncio.sleep(interval)


class TopicProbe:
    """Collects the events published to some topics after `start()`; for integration tests."""

    def __init__(self, bootstrap: str, *topics: Topic) -> None:
        self._bootstrap = bootstrap
        self._topics = topics
        self.events: list[Event] = []
        self.raw: list[Any] = []
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> TopicProbe:
        """Assign every partition at its current end, then collect in the background."""
        self._consumer = AIOKafkaConsumer(bootstrap_servers=self._bootstrap, enable_auto_commit=False)
        await self._consumer.start()
        parts = []
        for topic in self._topics:
            ids = self._consumer.partitions_for_topic(topic.name)
            if not ids:
                await self._consumer._client.force_metadata_update()
                ids = self._consumer.partitions_for_topic(topic.name) or set()
            parts += [TopicPartition(topic.name, p) for p in ids]
        self._consumer.assign(parts)
        await self._consumer.seek_to_end(*parts)
        for p in parts:  # resolve the end offsets now, so nothing published later is skipped
            await self._consumer.position(p)
        self._task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        assert self._consumer is not None
        async for record in self._consumer:
            self.raw.append(record)
            with contextlib.suppress(Exception):
                self.events.append(decode_event(record.value))

    def of_type(self, kind: str, **where: Any) -> list[Event]:
        """Events of `type` == kind whose payload fields equal `where`."""
        return [
            e for e in self.events
            if e.type == kind and all(getattr(e.payload, k, None) == v for k, v in where.items())
        ]  # fmt: skip

    async def wait_for(self, kind: str, timeout: float = 10.0, **where: Any) -> Event:
        """The first event of `kind` matching `where`, waiting for it with a bound."""
        found = await eventually(lambda: self.of_type(kind, **where), timeout, what=f"{kind} {where}")
        return found[0]

    async def stop(self) -> None:
        """Stop collecting."""
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._consumer:
            await self._consumer.stop()


def tcp_open(host_port: str, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections at `host:port` (first of a comma list)."""
    host, _, port = host_port.split(",")[0].rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout):
            return True
    except OSError:
        return False


def stop_process(proc: subprocess.Popen, timeout_s: float = 30) -> None:
    """SIGTERM a service process the test started and wait for it; SIGKILL if it does not stop."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def local_kafka(data_dir: Path) -> Iterator[str]:
    """Start deploy/kafka's broker on free ports in `data_dir`; stop it on exit."""
    port, cport = free_port(), free_port()
    env = {**os.environ, "KAFKA_PORT": str(port), "KAFKA_CONTROLLER_PORT": str(cport), "KAFKA_DATA_DIR": str(data_dir)}
    script = ROOT / "deploy/kafka/kafka.sh"
    subprocess.run([str(script), "start"], env=env, check=True, capture_output=True, timeout=600)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([str(script), "stop"], env=env, check=False, capture_output=True, timeout=120)


@contextlib.contextmanager
def local_redis(data_dir: Path) -> Iterator[str]:
    """Start deploy/redis's server on a free port in `data_dir`; stop it on exit."""
    port = free_port()
    env = {**os.environ, "REDIS_PORT": str(port), "REDIS_DATA_DIR": str(data_dir)}
    script = ROOT / "deploy/redis/redis.sh"
    subprocess.run([str(script), "start"], env=env, check=True, capture_output=True, timeout=600)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        subprocess.run([str(script), "stop"], env=env, check=False, capture_output=True, timeout=60)


def kill_redis(data_dir: Path) -> None:
    """SIGKILL the Redis that `local_redis(data_dir)` started, as a crash would (no SHUTDOWN)."""
    pid = int((data_dir / "redis.pid").read_text())
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # it may be our child: reap it, or kill(pid, 0) keeps succeeding
        time.sleep(0.01)
    (data_dir / "redis.pid").unlink(missing_ok=True)


def restart_redis(data_dir: Path, url: str) -> None:
    """Start the Redis of `local_redis(data_dir)` again, on the same port with the same data (AOF)."""
    port = url.split("//", 1)[-1].split("/", 1)[0].rsplit(":", 1)[1]
    env = {**os.environ, "REDIS_PORT": port, "REDIS_DATA_DIR": str(data_dir)}
    subprocess.run([str(ROOT / "deploy/redis/redis.sh"), "start"], env=env, check=True, capture_output=True, timeout=60)


def kafka_control(command: str, data_dir: Path, bootstrap: str) -> None:
    """`kafka.sh stop|start` for the broker `local_kafka(data_dir)` started (same ports and data)."""
    props = (data_dir / "server.properties").read_text()
    controller = re.search(r"CONTROLLER://127\.0\.0\.1:(\d+)", props)
    assert controller is not None, "not a broker started by local_kafka"
    env = {
        **os.environ,
        "KAFKA_PORT": bootstrap.rsplit(":", 1)[1],
        "KAFKA_CONTROLLER_PORT": controller.group(1),
        "KAFKA_DATA_DIR": str(data_dir),
    }
    subprocess.run(
        [str(ROOT / "deploy/kafka/kafka.sh"), command], env=env, check=True, capture_output=True, timeout=300
    )


def docker_answers() -> bool:
    """True when a Docker engine answers `GET /_ping` on its socket (testcontainers can work)."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if not host.startswith("unix://"):
        return tcp_open(host.split("://", 1)[-1])
    path = host.removeprefix("unix://")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(2)
            sock.connect(path)
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            return b" 200 " in sock.recv(64)
    except OSError:
        return False


async def consumer_lag(bootstrap: str, group: str, topic_names: list[str]) -> int:
    """Records of `topic_names` that consumer group `group` has not committed yet (end − committed).

    A partition the group never committed counts from offset 0."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await admin.start()
    await reader.start()
    try:
        described = await admin.describe_topics(topic_names)
        parts = [TopicPartition(d["topic"], p["partition"]) for d in described for p in d["partitions"]]
        if len(parts) == 0:
            raise RuntimeError(f"no partitions found for {topic_names}")
        committed = await admin.list_consumer_group_offsets(group)
        ends = await reader.end_offsets(parts)
        return sum(
            end - (committed[tp].offset if tp in committed and committed[tp].offset >= 0 else 0)
            for tp, end in ends.items()
        )
    finally:
        await reader.stop()
        await admin.close()


@contextlib.contextmanager
def serve_in_thread(app: Any, port: int | None = None, timeout_s: float = 30) -> Iterator[int]:
    """Serve `app` on 127.0.0.1 in a daemon thread until the block ends; yields the port."""
    import uvicorn  # only the tests that serve an app need it

    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError(f"the test app did not start on port {port}")
        threading.Event().wait(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(10)
