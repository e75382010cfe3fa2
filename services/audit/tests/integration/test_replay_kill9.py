"""A day of events through the real Kafka into the audit service, killed with SIGKILL mid-stream.

The service runs as its own process (`python -m lanyard.audit`), as in production. After the
restart every event of the day is in the log exactly once, the chain verifies, the queries
answer what the generator knows to be true, and editing one record makes verify name it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from lanyard.audit.app import create_app
from lanyard.audit.settings import AuditSettings
from lanyard.harness.synthetic import generate_day
from lanyard.runtime.testing import eventually, free_port, stop_process
from lanyard.runtime.tokens import TestIssuer, TokenVerifier

pytestmark = pytest.mark.integration

BASE = "http://issuer.test"
KEY = "ioXAoGRLCsrxwuMOAgwk6RqYBVzlq5qZ7CFWbnyu2X0"  # an Ed25519 seed for this test only


async def publish(bootstrap: str, events) -> dict[str, tuple[str, int, int]]:
    """Send in order (per-partition order is the send order), wait for every ack; event_id → position."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5)
    await producer.start()
    try:
        futures = [
            await producer.send(
                e.topic.name,
                e.to_json(),
                key=e.key().encode(),
                headers=[(k, v.encode()) for k, v in e.headers().items()],
            )
            for e in events
        ]
        acks = [await future for future in futures]
        return {e.event_id: (m.topic, m.partition, m.offset) for e, m in zip(events, acks, strict=True)}
    finally:
        await producer.stop()


def count(db: Path, enterprise_id: str) -> int:
    if not db.exists():
        return 0
    with contextlib.closing(sqlite3.connect(db, timeout=30)) as conn:
        try:
            return conn.execute("SELECT count(*) FROM records WHERE enterprise_id = ?", (enterprise_id,)).fetchone()[0]
        except sqlite3.OperationalError:
            return 0  # the service has not created the schema yet


def start(env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("ab") as out:  # the child keeps its own descriptor
        return subprocess.Popen([sys.executable, "-m", "lanyard.audit"], env=env, stdout=out, stderr=subprocess.STDOUT)


def verify(db: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lanyard.audit", "verify", "--db", str(db)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_a_day_survives_kill_9_and_the_log_answers_correctly(kafka_bootstrap, redis_url, tmp_path):
    eid = f"ent-{uuid.uuid4().hex[:10]}"
    day = generate_day(eid)
    total = len(day.events)
    db = tmp_path / "audit.sqlite"
    log = tmp_path / "audit.log"
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "REDIS_URL": redis_url,
        "LANYARD_AUDIT_DB_PATH": str(db),
        "LANYARD_AUDIT_HTTP_PORT": str(free_port()),
        "LANYARD_AUDIT_CONSUMER_GROUP": f"audit-{eid}",
        "LANYARD_AUDIT_CHECKPOINT_KEY": KEY,
        "LANYARD_AUDIT_LOG_LEVEL": "WARNING",
    }
    first_part = (2 * total) // 3
    positions = await publish(kafka_bootstrap, day.events[:first_part])

    proc = start(env, log)
    try:

        def progressed() -> bool:
            assert proc.poll() is None, f"audit service exited: {log.read_text()[-3000:]}"
            return count(db, eid) >= total // 3

        await eventually(progressed, 90, 0.01, what="a third of the day written")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        at_kill = count(db, eid)
        assert at_kill < total, "the kill must land mid-stream"

        positions |= await publish(kafka_bootstrap, day.events[first_part:])
        proc = start(env, log)

        def complete() -> bool:
            assert proc.poll() is None, f"audit service exited: {log.read_text()[-3000:]}"
            return count(db, eid) >= total

        await eventually(complete, 120, 0.05, what="the whole day written after the restart")
    finally:
        stop_process(proc)

    # Nothing lost, nothing duplicated, each at the position the broker acknowledged, no gap reported.
    # (Other tests share the broker, so offset gaps are checked only against this day's offsets.)
    with contextlib.closing(sqlite3.connect(db)) as conn:
        stored = {
            row[0]: (row[1], row[2], row[3])
            for row in conn.execute(
                'SELECT event_id, topic, partition, "offset" FROM records WHERE enterprise_id = ?', (eid,)
            )
        }
        rows = conn.execute("SELECT count(*) FROM records WHERE enterprise_id = ?", (eid,)).fetchone()[0]
        seqs = [row[0] for row in conn.execute("SELECT seq FROM records ORDER BY seq")]
        gaps = conn.execute("SELECT count(*) FROM sequence_gaps WHERE enterprise_id = ?", (eid,)).fetchone()[0]
        offset_gaps = conn.execute("SELECT topic, partition, first_missing, last_missing FROM offset_gaps").fetchall()
    assert rows == total and stored == positions
    assert seqs == list(range(1, len(seqs) + 1))
    assert gaps == 0
    ours = set(positions.values())
    assert not [g for g in offset_gaps if any((g[0], g[1], o) in ours for o in range(g[2], g[3] + 1))]
    verified = verify(db, env)
    assert verified.returncode == 0 and verified.stdout.startswith(f"OK {len(seqs)} records verified"), verified.stdout

    await check_queries(db, day)

    # Editing one record in the file makes verify fail at that record.
    with contextlib.closing(sqlite3.connect(db)) as conn, conn:
        victim = conn.execute(
            "SELECT seq, event_id FROM records WHERE enterprise_id = ? AND type = 'session.device_checked_out.v1' "
            "ORDER BY seq LIMIT 1 OFFSET 5",
            (eid,),
        ).fetchone()
        doc = json.loads(conn.execute("SELECT event_json FROM records WHERE seq = ?", (victim[0],)).fetchone()[0])
        doc["payload"]["user_id"] = "someone-else"
        conn.execute("UPDATE records SET event_json = ? WHERE seq = ?", (json.dumps(doc), victim[0]))
    broken = verify(db, env)
    assert broken.returncode == 1
    assert f"seq {victim[0]} event_id {victim[1]}" in broken.stdout


async def check_queries(db: Path, day) -> None:
    """The query API over the file the killed-and-restarted service wrote."""
    eid = day.enterprise_id
    issuer = TestIssuer(BASE)
    settings = AuditSettings(db_path=db, consume=False, public_base_url=BASE)
    app = create_app(settings, verifier=TokenVerifier(BASE, issuer.static_jwks()))
    headers = {"Authorization": f"Bearer {issuer.admin_token(eid, 'auditor-1', 'auditor')}"}
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://audit", headers=headers
        ) as client:
            for s in day.sessions[::9]:
                inside = s.granted_at + (s.checked_in_at - s.granted_at) / 3
                body = (
                    await client.get(
                        f"/audit/e/{eid}/access",
                        params={"client_id": s.apps[-1], "device_id": s.device_id, "at": inside.isoformat()},
                    )
                ).json()
                assert [(a["user_id"], a["device_session_id"]) for a in body["access"]] == [
                    (s.user_id, s.device_session_id)
                ]
                assert body["access"][0]["interval"]["end"] is not None
                after = s.checked_in_at + timedelta(seconds=30)
                gone = await client.get(
                    f"/audit/e/{eid}/access",
                    params={"client_id": s.apps[-1], "device_id": s.device_id, "at": after.isoformat()},
                )
                assert gone.json()["access"] == []
            admin = await client.get(f"/audit/e/{eid}/records", params={"category": "admin", "limit": 1000})
            rows = admin.json()["records"]
            assert {r["event_id"]: r["actor"] for r in rows} == {e.event_id: e.actor for e in day.admin_events}
            s = day.sessions[0]
            export = await client.get(f"/audit/e/{eid}/export", params={"device_session_id": s.device_session_id})
            exported = {json.loads(line)["event_id"] for line in export.text.splitlines()}
            assert exported == {e.event_id for e in day.events if e.subject.device_session_id == s.device_session_id}
            gaps = (await client.get(f"/audit/e/{eid}/gaps")).json()
            assert gaps["sequence_gaps"] == []
    finally:
        await app.state.store.close()
