"""`LANYARD_IDP_INSTANCES=2`: two IdP processes on one port, supervised as one unit.

The IdP runs as its own process (`python -m lanyard.idp`), as in production, on the real broker
and Redis. Both instances join the consumer group as separate static members; a SIGTERM stops
the unit cleanly; an instance that dies takes the unit down with a failure status, so whatever
supervises the service restarts it whole.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from lanyard.runtime.testing import eventually, free_port, stop_process

pytestmark = pytest.mark.integration


def children(pid: int) -> list[int]:
    """The live child processes of `pid` (Linux /proc)."""
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def start(kafka_bootstrap: str, redis_url: str, tmp_path: Path) -> tuple[subprocess.Popen, str, str, Path]:
    port, group = free_port(), f"idp-instances-{uuid.uuid4().hex[:8]}"
    log = tmp_path / "idp.log"
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "LANYARD_IDP_REDIS_URL": redis_url,
        "LANYARD_IDP_HTTP_PORT": str(port),
        "LANYARD_IDP_INSTANCES": "2",
        "LANYARD_IDP_CONSUMER_GROUP": group,
        "LANYARD_IDP_CONSUMER_INSTANCE": "idp-test",
        "LANYARD_IDP_LOG_LEVEL": "WARNING",
    }
    with log.open("ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "lanyard.idp"], env=env, stdout=out, stderr=subprocess.STDOUT)
    return proc, f"http://127.0.0.1:{port}", group, log


async def group_members(bootstrap: str, group: str) -> list[str]:
    """The member ids the broker holds for `group` (aiokafka's DescribeGroups version predates
    group.instance.id, so static members are counted, not named)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_consumer_groups([group])
    finally:
        await admin.close()
    members = described[0].to_object()["groups"][0]["members"] if described else []
    return [m["member_id"] for m in members]


def alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


async def test_two_instances_share_the_port_join_the_group_and_stop_together(kafka_bootstrap, redis_url, tmp_path):
    proc, base, group, log = start(kafka_bootstrap, redis_url, tmp_path)
    try:

        async def live() -> bool:
            assert proc.poll() is None, f"the IdP exited: {log.read_text()[-3000:]}"
            try:
                async with httpx.AsyncClient(timeout=2) as http:
                    return (await http.get(f"{base}/health/live")).status_code == 200
            except httpx.HTTPError:
                return False

        await eventually(live, 60, 0.1, what="the IdP answering")
        assert len(children(proc.pid)) == 2
        # The device-session consumers: the group that revocation and the freshness watermarks rest on.
        devices = f"{group}-devices"
        await eventually(lambda: _both(kafka_bootstrap, devices), 60, 0.5, what="both instances in the group")
        instances = children(proc.pid)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert not any(alive(pid) for pid in instances)
    finally:
        stop_process(proc)


async def _both(bootstrap: str, group: str) -> bool:
    return len(await group_members(bootstrap, group)) == 2


async def test_an_instance_that_dies_takes_the_unit_down_with_a_failure(kafka_bootstrap, redis_url, tmp_path):
    proc, _, _, _ = start(kafka_bootstrap, redis_url, tmp_path)
    try:
        await eventually(lambda: len(children(proc.pid)) == 2, 60, 0.1, what="two instances started")
        first, second = children(proc.pid)
        os.kill(first, signal.SIGKILL)
        assert proc.wait(timeout=30) != 0, "the supervisor must report the lost instance"
        assert not alive(second), "the other instance is stopped and reaped with the unit"
    finally:
        stop_process(proc)


async def test_the_instances_stop_when_their_supervisor_is_killed(kafka_bootstrap, redis_url, tmp_path):
    proc, _, _, _ = start(kafka_bootstrap, redis_url, tmp_path)
    instances: list[int] = []
    try:
        await eventually(lambda: len(children(proc.pid)) == 2, 60, 0.1, what="two instances started")
        instances = children(proc.pid)
        proc.kill()  # SIGKILL: the supervisor passes nothing on
        proc.wait(timeout=10)
        await eventually(lambda: not any(alive(pid) for pid in instances), 30, 0.1, what="no orphaned instance")
    finally:
        stop_process(proc)
        for pid in instances:  # a failed run must not leave orphans serving the port
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
