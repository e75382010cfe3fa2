"""What every benchmark shares: where Kafka and Redis come from, percentiles, result files.

Benchmarks never assert; they measure, print a summary and write JSON to bench/results/.
Kafka and Redis come from KAFKA_BOOTSTRAP_SERVERS / REDIS_URL when set, otherwise the
project's own from deploy/, started in a throw-away directory and stopped afterwards.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
import subprocess
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lanyard.runtime.testing import local_kafka, local_redis, tcp_open

RESULTS = Path(__file__).resolve().parent / "results"


@contextlib.contextmanager
def infrastructure() -> Iterator[tuple[str, str, Path]]:
    """(kafka bootstrap, redis url, a scratch directory) for one benchmark run."""
    with tempfile.TemporaryDirectory(prefix="lanyard-bench-") as tmp, contextlib.ExitStack() as stack:
        scratch = Path(tmp)
        kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        if not (kafka and tcp_open(kafka)):
            kafka = stack.enter_context(local_kafka(scratch / "kafka"))
        redis = os.environ.get("REDIS_URL")
        if not (redis and tcp_open(redis.split("//", 1)[-1].split("/", 1)[0])):
            redis = stack.enter_context(local_redis(scratch / "redis"))
        os.environ["KAFKA_BOOTSTRAP_SERVERS"], os.environ["REDIS_URL"] = kafka, redis
        yield kafka, redis, scratch


def percentiles(samples_ms: list[float]) -> dict[str, float]:
    """p50/p90/p99/max/mean of latencies in milliseconds (rounded to 0.1 ms)."""
    if not samples_ms:
        return {}
    ordered = sorted(samples_ms)

    def pick(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)

    return {
        "n": len(ordered), "p50": pick(0.50), "p90": pick(0.90), "p99": pick(0.99),
        "max": round(ordered[-1], 1), "mean": round(statistics.fmean(ordered), 1),
    }  # fmt: skip


def machine() -> dict[str, Any]:
    """Enough about the machine to compare runs."""
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False)
    return {
        "cpus": os.cpu_count(), "cpu": cpu, "python": platform.python_version(),
        "commit": commit.stdout.strip() or None, "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }  # fmt: skip


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (uvicorn workers of a service run as children)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{current}/task").iterdir():
                todo.extend(int(c) for c in (task / "children").read_text().split())
    return found


def rss_mb(pid: int) -> float | None:
    """Resident set size of a process in MB (Linux)."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    return None


def service_rss(pid: int) -> dict[str, Any]:
    """A service's memory: its largest process (the per-instance figure DESIGN §6 bounds), the
    total over its processes, and how many there are."""
    sizes = [r for p in process_tree(pid) if (r := rss_mb(p)) is not None]
    return {"largest_mb": max(sizes, default=None), "total_mb": round(sum(sizes), 1), "processes": len(sizes)}


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process and its descendants have used so far (Linux /proc)."""
    total = 0.0
    for p in process_tree(pid):
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def write(name: str, result: dict[str, Any]) -> Path:
    """bench/results/<name>.json, with the machine it ran on."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"benchmark": name, "machine": machine(), **result}, indent=2) + "\n")
    return path
