"""The SQLite store: atomic idempotent appends, gaps, queries, pruning and verification."""

import json
import sqlite3
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from lanyard.audit.adapters.sqlite_store import SqliteAuditStore, SqliteLog
from lanyard.audit.domain import Position, entry_from_json, format_time
from lanyard.audit.ports import RecordQuery
from lanyard.audit.service import PruneRefused, prune_log, verify_log
from lanyard.contracts import events as ev
from lanyard.harness.synthetic import generate_day

KEY = Ed25519PrivateKey.generate()


def entries(eid="e1", **kw):
    day = generate_day(eid, **kw)
    offsets: dict[tuple[str, int], int] = {}
    out = []
    for e in day.events:
        part = hash(e.key()) % e.topic.partitions
        off = offsets.get((e.topic.name, part), 0)
        offsets[(e.topic.name, part)] = off + 1
        out.append(entry_from_json(json.loads(e.to_json()), Position(e.topic.name, part, off)))
    return day, out


@pytest.fixture
def log(tmp_path):
    log = SqliteLog(tmp_path / "audit.sqlite")
    yield log
    log.close()


def test_appends_chain_and_a_redelivery_or_repeat_changes_nothing(log):
    _, items = entries(devices=1, users=2, shifts=1)
    for item in items[:30]:
        assert log.append(item).outcome == "written"
    assert log.append(items[10]).outcome == "redelivered"
    moved = items[5].__class__(**{**items[5].__dict__, "position": Position(items[5].position.topic, 99, 0)})
    assert log.append(moved).outcome == "duplicate"
    assert log.count() == 30
    assert verify_log(log, None).ok and verify_log(log, None).count == 30
    assert log.head()[0] == 30


def test_a_batch_is_one_transaction_with_the_same_idempotence_as_single_appends(log, tmp_path):
    _, items = entries(devices=1, users=2, shifts=1)
    moved = items[5].__class__(**{**items[5].__dict__, "position": Position(items[5].position.topic, 99, 0)})
    outcomes = [r.outcome for r in log.append_many([*items[:20], items[10], moved])]
    assert outcomes == ["written"] * 20 + ["redelivered", "duplicate"]
    assert log.count() == 20 and verify_log(log, None).ok

    # All or none: a batch that fails part-way leaves nothing of itself behind.
    broken = items[21].__class__(**{**items[21].__dict__, "event_json": None})  # cannot be sealed
    with pytest.raises(TypeError):
        log.append_many([items[20], broken])
    assert log.count() == 20 and log.head()[0] == 20
    assert [r.outcome for r in log.append_many(items[20:22])] == ["written", "written"]
    assert verify_log(log, None).ok


def test_sequence_and_offset_gaps_are_recorded(log):
    def locked(seq):
        return ev.DeviceLocked(
            enterprise_id="e1", producer="session",
            payload=ev.DeviceLockedPayload(device_session_id="ds", device_id="d", user_id="u", sequence=seq),
        )  # fmt: skip

    def add(event, offset, topic="lanyard.device-sessions.v1"):
        return log.append(entry_from_json(json.loads(event.to_json()), Position(topic, 0, offset)))

    assert add(locked(1), 0).sequence_gap is None
    result = add(locked(4), 5)
    assert (result.sequence_gap.first_missing, result.sequence_gap.last_missing) == (2, 3)
    assert (result.offset_gap.first_missing, result.offset_gap.last_missing) == (1, 4)
    assert add(locked(5), 9, topic="lanyard.directory.v1").offset_gap is None
    report = log.gaps("e1")
    assert len(report.sequence_gaps) == 1 and len(report.offset_gaps) == 1
    assert log.gaps("another").sequence_gaps == ()


def test_queries_filter_and_page_by_seq(log):
    day, items = entries(devices=2, users=4, shifts=1)
    for item in items:
        log.append(item)
    session = day.sessions[0]
    by_session = log.query(RecordQuery("e1", device_session_id=session.device_session_id, limit=1000))
    assert {r.entry.device_session_id for r in by_session} == {session.device_session_id}
    assert by_session[0].entry.type == "session.device_checked_out.v1"
    app = session.apps[0]
    by_app = log.query(RecordQuery("e1", client_id=app, limit=5000))
    assert any(r.entry.type == "entitlement.granted.v1" for r in by_app)
    assert all(app in json.dumps(json.loads(r.entry.event_json)) for r in by_app)
    admin = log.query(RecordQuery("e1", actor="admin-super", limit=1000))
    assert admin and all(r.entry.actor == "admin-super" for r in admin)
    window = log.query(
        RecordQuery(
            "e1", since=format_time(session.checked_out_at), until=format_time(session.checked_in_at), limit=5000
        )
    )
    assert all(
        format_time(session.checked_out_at) <= r.entry.occurred_at < format_time(session.checked_in_at) for r in window
    )
    pages, after = [], 0
    while page := log.query(RecordQuery("e1", types=("oidc.tokens_issued.v1",), after_seq=after, limit=7)):
        pages.extend(page)
        after = page[-1].seq
    assert len(pages) == sum(1 for i in items if i.type == "oidc.tokens_issued.v1")
    assert log.query(RecordQuery("other-enterprise", limit=10)) == []


def test_editing_one_record_in_the_file_makes_verify_name_it(tmp_path, log):
    _, items = entries(devices=1, users=2, shifts=1)
    for item in items[:40]:
        log.append(item)
    with sqlite3.connect(tmp_path / "audit.sqlite") as raw:
        raw.execute(
            'UPDATE records SET event_json = replace(event_json, \'"producer":"\', \'"producer":"x\') WHERE seq = 17'
        )
        assert raw.total_changes == 1
    verdict = verify_log(log, None)
    assert not verdict.ok and verdict.broken_seq == 17 and verdict.broken_event_id == items[16].event_id


def test_prune_behind_a_signed_checkpoint_still_verifies_and_a_tampered_checkpoint_fails(tmp_path, log):
    day, items = entries(devices=1, users=2, shifts=1)
    for item in items:
        log.append(item)
    total = log.count()
    cut = day.sessions[1].checked_out_at
    with pytest.raises(PruneRefused):
        prune_log(log, cut, None, datetime.now(UTC))
    deleted, checkpoint = prune_log(log, cut, KEY, datetime.now(UTC))
    assert deleted > 0 and log.count() == total - deleted and checkpoint.seq == deleted
    assert all(r.entry.occurred_at >= format_time(cut) for r in log.query(RecordQuery("e1", limit=5000)))
    verdict = verify_log(log, KEY.public_key())
    assert verdict.ok and verdict.first_seq == deleted + 1 and verdict.count == total - deleted
    # A second prune moves the checkpoint on; the chain still verifies.
    prune_log(log, cut + timedelta(hours=3), KEY, datetime.now(UTC))
    assert verify_log(log, KEY.public_key()).ok
    with sqlite3.connect(tmp_path / "audit.sqlite") as raw:
        raw.execute("UPDATE checkpoint SET seq = seq - 1")
    assert not verify_log(log, KEY.public_key()).ok


async def test_async_store_appends_on_its_writer_and_queries_on_readers(tmp_path):
    store = SqliteAuditStore(tmp_path / "a.sqlite")
    _, items = entries(devices=1, users=2, shifts=1)
    try:
        assert await store.count() == 0
        for item in items[:25]:
            await store.append(item)
        assert await store.count() == 25
        found = await store.query(RecordQuery("e1", limit=10, after_seq=20))
        assert [r.seq for r in found] == [21, 22, 23, 24, 25]
    finally:
        await store.close()


async def test_a_chain_check_while_the_writer_appends_sees_one_consistent_snapshot(tmp_path):
    import asyncio

    store = SqliteAuditStore(tmp_path / "busy.sqlite", "NORMAL")
    _, batch = entries(devices=2, users=4, shifts=2)
    try:

        async def write() -> None:
            for i in range(0, len(batch), 5):
                await store.append_many(batch[i : i + 5])

        async def check() -> list:
            verdicts = []
            for _ in range(30):
                verdicts.append(await store.with_chain(lambda chain: verify_log(chain, None)))
            return verdicts

        _, verdicts = await asyncio.gather(write(), check())
    finally:
        await store.close()
    assert all(v.ok for v in verdicts), [v for v in verdicts if not v.ok][:1]


STATE = {
    "records": "SELECT * FROM records ORDER BY seq",
    "record_clients": "SELECT * FROM record_clients ORDER BY seq, client_id",
    "partition_offsets": "SELECT * FROM partition_offsets ORDER BY topic, partition",
    "chain_head": "SELECT * FROM chain_head",
    "session_sequences": "SELECT * FROM session_sequences ORDER BY enterprise_id, device_session_id",
    "sequence_gaps": "SELECT * FROM sequence_gaps ORDER BY id",
    "offset_gaps": "SELECT * FROM offset_gaps ORDER BY id",
}


def state(path):
    with sqlite3.connect(path) as raw:
        return {table: raw.execute(sql).fetchall() for table, sql in STATE.items()}


def test_a_batch_with_redeliveries_duplicates_and_gaps_leaves_what_appending_one_by_one_leaves(tmp_path):
    sessions, grants = "lanyard.device-sessions.v1", "lanyard.entitlements.v1"

    def locked(sequence, dsid="ds-1"):
        return json.loads(
            ev.DeviceLocked(
                enterprise_id="e1", producer="session",
                payload=ev.DeviceLockedPayload(device_session_id=dsid, device_id="d", user_id="u", sequence=sequence),
            ).to_json()
        )  # fmt: skip

    def granted(*apps, dsid="ds-1"):
        payload = ev.EntitlementGrantedPayload(
            device_session_id=dsid, device_id="d", user_id="u", version=1, apps=apps, auth_mode="passcode",
            inactivity_timeout_s=300, max_session_s=3600, face_allowed=False, policy_id="p",
        )  # fmt: skip
        return json.loads(ev.EntitlementGranted(enterprise_id="e1", producer="policy", payload=payload).to_json())

    def at(document, topic, partition, offset):
        return entry_from_json(document, Position(topic, partition, offset))

    earlier = [at(locked(1), sessions, 0, 0), at(locked(2), sessions, 0, 1), at(granted("a"), grants, 0, 0)]
    four, seven = locked(4), locked(7)
    batch = [
        at(locked(3), sessions, 0, 1),  # offset already recorded: redelivered
        at(four, sessions, 0, 2),  # written (sequence 2 -> 4: gap 3..3)
        at(four, sessions, 0, 3),  # the same event at a later offset, in this batch: duplicate
        at(locked(5), sessions, 0, 3),  # offset taken by the duplicate just now: redelivered
        at(seven, sessions, 0, 7),  # written: sequence gap 5..6, offset gap 4..6
        at(seven, sessions, 3, 0),  # another partition, the same event: duplicate
        at(locked(6), sessions, 0, 5),  # behind this batch's offset 7: redelivered
        at(granted("vocera", "epic-rover"), grants, 0, 1),  # written, with its two apps
        at(json.loads(earlier[2].event_json), grants, 0, 2),  # recorded before this batch: duplicate
        at(locked(2), sessions, 0, 8),  # a late sequence: written, no gap, the session's last stays 7
        at(locked(3, dsid="ds-2"), sessions, 0, 9),  # a new session starting at 3: gap 1..2
        at(locked(9), sessions, 0, 12),  # written: sequence gap 8..8, offset gap 10..11
    ]

    one_by_one = SqliteLog(tmp_path / "single.sqlite")
    batched = SqliteLog(tmp_path / "batched.sqlite")
    try:
        for log in (one_by_one, batched):
            assert [r.outcome for r in log.append_many(earlier)] == ["written"] * 3
        singles = [one_by_one.append(entry) for entry in batch]
        together = batched.append_many(batch)

        assert [r.outcome for r in together] == [
            "redelivered", "written", "duplicate", "redelivered", "written", "duplicate", "redelivered",
            "written", "duplicate", "written", "written", "written",
        ]  # fmt: skip
        assert together == singles
        gaps = [(r.sequence_gap, r.offset_gap) for r in together if r.outcome == "written"]
        assert [(s.first_missing, s.last_missing, s.detected_at_seq) if s else None for s, _ in gaps] == [
            (3, 3, 4), (5, 6, 5), None, None, (1, 2, 8), (8, 8, 9)
        ]  # fmt: skip
        assert [(o.first_missing, o.last_missing) if o else None for _, o in gaps] == [
            None, (4, 6), None, None, None, (10, 11)
        ]  # fmt: skip

        stored = state(tmp_path / "batched.sqlite")
        assert stored == state(tmp_path / "single.sqlite")
        assert [row[0] for row in stored["records"]] == list(range(1, 10))
        assert stored["chain_head"] == [(1, 9, together[-1].record.hash)]
        assert stored["partition_offsets"] == [(sessions, 0, 12), (sessions, 3, 0), (grants, 0, 2)]
        assert stored["session_sequences"] == [("e1", "ds-1", 9), ("e1", "ds-2", 3)]
        assert stored["record_clients"] == [("e1", "a", 3), ("e1", "epic-rover", 6), ("e1", "vocera", 6)]
        assert len(stored["sequence_gaps"]) == 4 and len(stored["offset_gaps"]) == 2
        for log in (one_by_one, batched):
            verdict = verify_log(log, None)
            assert verdict.ok and verdict.count == 9, verdict
    finally:
        one_by_one.close()
        batched.close()
