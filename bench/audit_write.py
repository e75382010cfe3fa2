"""Audit write throughput: events appended to the hash-chained SQLite log per second.

Two measurements:
- `store`: the audit store alone (`SqliteAuditStore.append`, one transaction per event, on its
  writer thread), for synchronous=FULL (the default) and NORMAL; and `append_many` with 100
  events per transaction, as the consumer writes a fetched batch.
- `kafka` (with --kafka): the whole service path, events pre-published to the real broker and
  consumed by the audit app in-process (decode, batched fetch, one transaction per partition
  batch, commit per batch). Uses
  KAFKA_BOOTSTRAP_SERVERS / REDIS_URL when set, else starts the project's Kafka and Redis from deploy/.

Run:  uv run python -m bench.audit_write [--events 5000] [--kafka]
Writes bench/results/audit_write.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import sqlite3
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from lanyard.audit.adapters.sqlite_store import SqliteAuditStore
from lanyard.audit.domain import Position, entry_from_json
from lanyard.harness.synthetic import generate_day

NOTES = (
    "End to end, records are fetched in batches, partitions handled concurrently, each partition's batch "
    "appended in one SQLite transaction (synchronous=FULL) and offsets committed once per batch "
    "(lanyard.runtime.consumer batch_handler). History: one commit per record did 93 events/s; one "
    "transaction per event 856 events/s."
)
RESULTS = Path(__file__).resolve().parent / "results" / "audit_write.json"


def synthetic_events(n: int, enterprise_id: str) -> list:
    events: list = []
    seed = 0
    while len(events) < n:
        events += generate_day(f"{enterprise_id}-{seed}", seed=seed).events
        seed += 1
    return events[:n]


async def bench_store(events: list, synchronous: str, workdir: Path, batch: int = 0) -> dict:
    offsets: dict[str, int] = {}
    entries = []
    for e in events:
        offsets[e.topic.name] = offsets.get(e.topic.name, -1) + 1
        entries.append(entry_from_json(json.loads(e.to_json()), Position(e.topic.name, 0, offsets[e.topic.name])))
    store = SqliteAuditStore(workdir / f"store-{synchronous}-{batch}.sqlite", synchronous)  # type: ignore[arg-type]
    await store.open()
    start = time.perf_counter()
    if batch:
        for i in range(0, len(entries), batch):
            await store.append_many(entries[i : i + batch])
    else:
        for entry in entries:
            await store.append(entry)
    elapsed = time.perf_counter() - start
    await store.close()
    return {"synchronous": synchronous, "per_transaction": batch or 1, "events": len(entries),
            "seconds": round(elapsed, 3), "events_per_second": round(len(entries) / elapsed, 1)}  # fmt: skip


async def bench_kafka(events: list, workdir: Path) -> dict:
    from aiokafka import AIOKafkaProducer

    from lanyard.audit.app import create_app
    from lanyard.audit.settings import AuditSettings
    from lanyard.runtime.kafka import ensure_topics
    from lanyard.runtime.testing import eventually, local_kafka, local_redis, tcp_open

    with contextlib.ExitStack() as stack:
        bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        if not (bootstrap and tcp_open(bootstrap)):
            bootstrap = stack.enter_context(local_kafka(workdir / "kafka"))
        redis_url = os.environ.get("REDIS_URL")
        if not (redis_url and tcp_open(redis_url.split("//", 1)[-1].split("/", 1)[0])):
            redis_url = stack.enter_context(local_redis(workdir / "redis"))
        await ensure_topics(bootstrap)
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5)
        await producer.start()
        futures = [await producer.send(e.topic.name, e.to_json(), key=e.key().encode()) for e in events]
        for f in futures:
            await f
        await producer.stop()
        db = workdir / "service.sqlite"
        settings = AuditSettings(
            kafka_bootstrap_servers=bootstrap,
            redis_url=redis_url,
            db_path=db,
            consumer_group=f"bench-{uuid.uuid4().hex}",
        )
        app = create_app(settings)
        eids = {e.enterprise_id for e in events}

        def written() -> int:
            if not db.exists():
                return 0
            with contextlib.closing(sqlite3.connect(db)) as conn:
                marks = ",".join("?" * len(eids))
                query = f"SELECT count(*) FROM records WHERE enterprise_id IN ({marks})"
                return conn.execute(query, list(eids)).fetchone()[0]

        async with app.router.lifespan_context(app):
            await eventually(lambda: written() > 0, 120, 0.005, what="first record written")
            start, first = time.perf_counter(), written()
            n = await eventually(lambda: (c := written()) >= len(events) and c, 900, 0.05, what="all written")
            elapsed = time.perf_counter() - start
        return {"path": "kafka -> consumer -> sqlite (FULL), batched fetch, commit per batch", "events": n - first,
                "seconds": round(elapsed, 3), "events_per_second": round((n - first) / elapsed, 1)}  # fmt: skip


def machine() -> dict:
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "sqlite": sqlite3.sqlite_version,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--kafka", action="store_true", help="also measure through the real broker")
    args = parser.parse_args()
    events = synthetic_events(args.events, f"bench-{uuid.uuid4().hex[:6]}")
    with tempfile.TemporaryDirectory(dir=Path.cwd() / ".var" if (Path.cwd() / ".var").exists() else None) as tmp:
        workdir = Path(tmp)
        results = {"store": [await bench_store(events, mode, workdir) for mode in ("FULL", "NORMAL")]}
        results["store"].append(await bench_store(events, "FULL", workdir, batch=100))
        if args.kafka:
            results["kafka"] = await bench_kafka(events, workdir)
    report = {
        "benchmark": "audit_write",
        "measured_at": datetime.now(UTC).isoformat(),
        "how_to_run": "uv run python -m bench.audit_write --events 5000 --kafka",
        "machine": machine(),
        "notes": NOTES,
        "results": results,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
