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
import threading
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
        # The machine is shared (other work runs on the same two cores): the load when the
        # result was written says how contended the run was.
        "loadavg_1_5_15": [round(x, 2) for x in os.getloadavg()],
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


def pids_with(fragment: str) -> list[int]:
    """Processes whose command line contains `fragment` (the broker, Redis and the gateway are
    started by scripts, so their pids are found by the scratch path or port they run with)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if fragment in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                    found.append(int(entry.name))
    return found


def components(stack: Any, kafka: str, redis: str, scratch: Path) -> dict[str, list[int]]:
    """Every process of the running stack by component: each service, the broker, Redis, the
    gateway (nginx master; cpu_seconds adds its workers)."""
    out: dict[str, list[int]] = {name: [proc.pid] for name, proc in stack.processes.items()}
    out["kafka"] = pids_with(f"-Dkafka.logs.dir={scratch}")
    out["redis"] = pids_with(f"redis-server {redis.split('//', 1)[-1].split('/', 1)[0]}")
    out["gateway"] = pids_with(f"nginx: master process /usr/sbin/nginx -p {scratch}")
    return out


def cpu_by_component(pids: dict[str, list[int]]) -> dict[str, float]:
    """CPU seconds used so far by each component (see `components`)."""
    return {name: sum(cpu_seconds(p) for p in group) for name, group in pids.items()}


def per_flow(before: dict[str, float], after: dict[str, float], flows: int) -> dict[str, float | None]:
    """CPU ms each component spent per flow between two `cpu_by_component` readings."""
    return {k: (round(1000 * (after[k] - before[k]) / flows, 2) if flows else None) for k in before}


class RssWatch:
    """Samples each service's largest process RSS every `interval_s` in a thread, so the memory
    target is checked throughout a run, not only at its end: `peaks()` → service → max MB."""

    def __init__(self, pids: dict[str, int], interval_s: float = 0.5) -> None:
        self._pids, self._interval = pids, interval_s
        self._peaks: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for name, pid in self._pids.items():
                largest = service_rss(pid)["largest_mb"]
                if largest is not None:
                    self._peaks[name] = max(self._peaks.get(name, 0.0), largest)
            self._stop.wait(self._interval)

    def peaks(self) -> dict[str, float]:
        """The largest RSS (MB) seen so far per service."""
        return dict(self._peaks)

    def __enter__(self) -> RssWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def write(name: str, result: dict[str, Any]) -> Path:
    """bench/results/<name>.json, with the machine it ran on."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"benchmark": name, "machine": machine(), **result}, indent=2) + "\n")
    return path
