"""The embedded default audit store: one SQLite file in WAL mode.

Durability: `synchronous=FULL` by default. In WAL mode, NORMAL survives a process crash (kill -9)
but an OS crash or power loss can roll back the last transactions, and by then the Kafka offsets
of those records are committed: the audit log would silently lose them. FULL syncs the WAL on
every commit, so a record whose offset is committed is on disk. NORMAL is a setting for machines
where the benchmark says FULL is too slow and losing the tail on power loss is acceptable.

Appends: a batch (one partition's fetched records) is one transaction that reads the state the
per-record rules consult (chain head, partition offsets, session sequences, known event ids) once
and writes it once, leaving exactly what appending its records one by one would have left.

Threads: every SQLite call runs off the event loop. Appends go to one writer thread that owns the
only writing connection (appends are serial anyway, and one writer never waits on SQLite's lock);
queries run on a small pool of reader threads, each with its own connection (WAL lets readers and
the writer proceed together).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal, TypeVar

from lanyard.audit.domain import (
    GENESIS_HASH,
    AuditRecord,
    Checkpoint,
    Entry,
    OffsetGap,
    Position,
    SequenceGap,
    StoredRecord,
    offset_gap,
    seal,
    sequence_gap,
)
from lanyard.audit.ports import AppendResult, ChainAdmin, GapReport, RecordQuery

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    enterprise_id TEXT NOT NULL,
    occurred_at TEXT NOT NULL,
    producer TEXT NOT NULL,
    actor TEXT,
    user_id TEXT,
    device_id TEXT,
    device_session_id TEXT,
    client_id TEXT,
    sequence INTEGER,
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    "offset" INTEGER NOT NULL,
    event_json TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS records_user ON records (enterprise_id, user_id, seq);
CREATE INDEX IF NOT EXISTS records_device ON records (enterprise_id, device_id, seq);
CREATE INDEX IF NOT EXISTS records_session ON records (enterprise_id, device_session_id, seq);
CREATE INDEX IF NOT EXISTS records_type ON records (enterprise_id, type, seq);
CREATE INDEX IF NOT EXISTS records_actor ON records (enterprise_id, actor, seq);
CREATE INDEX IF NOT EXISTS records_time ON records (enterprise_id, occurred_at);
CREATE INDEX IF NOT EXISTS records_enterprise ON records (enterprise_id, seq);
CREATE TABLE IF NOT EXISTS record_clients (
    enterprise_id TEXT NOT NULL,
    client_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (enterprise_id, client_id, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS record_clients_seq ON record_clients (seq);
CREATE TABLE IF NOT EXISTS partition_offsets (
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    last_offset INTEGER NOT NULL,
    PRIMARY KEY (topic, partition)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS chain_head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS checkpoint (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL,
    pruned_before TEXT NOT NULL,
    created_at TEXT NOT NULL,
    signature TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS session_sequences (
    enterprise_id TEXT NOT NULL,
    device_session_id TEXT NOT NULL,
    last_sequence INTEGER NOT NULL,
    PRIMARY KEY (enterprise_id, device_session_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sequence_gaps (
    id INTEGER PRIMARY KEY,
    enterprise_id TEXT NOT NULL,
    device_session_id TEXT NOT NULL,
    first_missing INTEGER NOT NULL,
    last_missing INTEGER NOT NULL,
    detected_at_seq INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS sequence_gaps_enterprise ON sequence_gaps (enterprise_id, id);
CREATE TABLE IF NOT EXISTS offset_gaps (
    id INTEGER PRIMARY KEY,
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    first_missing INTEGER NOT NULL,
    last_missing INTEGER NOT NULL,
    detected_at_seq INTEGER NOT NULL
);
"""

COLUMNS = (
    "seq, event_id, type, enterprise_id, occurred_at, producer, actor, user_id, device_id, device_session_id, "
    'client_id, sequence, topic, partition, "offset", event_json, prev_hash, hash'
)

Synchronous = Literal["FULL", "NORMAL"]

INSERT_RECORD = f"INSERT INTO records ({COLUMNS}) VALUES ({', '.join('?' * 18)})"  # noqa: S608 (constant columns)
INSERT_CLIENT = "INSERT INTO record_clients (enterprise_id, client_id, seq) VALUES (?, ?, ?)"
SET_HEAD = (
    "INSERT INTO chain_head (id, seq, hash) VALUES (1, ?, ?) "
    "ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash"
)
SET_OFFSET = (
    "INSERT INTO partition_offsets (topic, partition, last_offset) VALUES (?, ?, ?) "
    "ON CONFLICT (topic, partition) DO UPDATE SET last_offset = excluded.last_offset"
)
SET_SEQUENCE = (
    "INSERT INTO session_sequences (enterprise_id, device_session_id, last_sequence) VALUES (?, ?, ?) "
    "ON CONFLICT DO UPDATE SET last_sequence = max(last_sequence, excluded.last_sequence)"
)
INSERT_SEQUENCE_GAP = (
    "INSERT INTO sequence_gaps (enterprise_id, device_session_id, first_missing, last_missing, detected_at_seq) "
    "VALUES (?, ?, ?, ?, ?)"
)
INSERT_OFFSET_GAP = (
    "INSERT INTO offset_gaps (topic, partition, first_missing, last_missing, detected_at_seq) VALUES (?, ?, ?, ?, ?)"
)
KNOWN_IDS_CHUNK = 64
"""Event ids looked up per query when a batch checks for duplicates. A short chunk repeats one of
its ids to fill the list, so the statement text (and its prepared form) stays the same; padding
with NULL would match nothing too, but SQLite handles a NULL in an IN list far more slowly."""
KNOWN_IDS = f"SELECT event_id FROM records WHERE event_id IN ({', '.join('?' * KNOWN_IDS_CHUNK)})"  # noqa: S608
KNOWN_ID = "SELECT 1 FROM records WHERE event_id = ?"
KNOWN_IDS_ONE_BY_ONE = 4
"""Below this many ids one indexed lookup each is cheaper than a padded list (single appends)."""


def connect(path: Path, synchronous: Synchronous = "FULL", *, create: bool = True) -> sqlite3.Connection:
    """Open the file in WAL mode with the schema in place (autocommit: transactions are explicit)."""
    if create:
        path.parent.mkdir(parents=True, exist_ok=True)
    elif not path.exists():
        raise FileNotFoundError(str(path))
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={'FULL' if synchronous == 'FULL' else 'NORMAL'}")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=30000")
    if create:
        conn.executescript(SCHEMA)
    return conn


def _record(row: sqlite3.Row | tuple[Any, ...], clients: tuple[str, ...] = ()) -> AuditRecord:
    (seq, event_id, kind, eid, occurred, producer, actor, user, device, session, client, sequence,
     topic, partition, offset, event_json, prev_hash, digest) = row  # fmt: skip
    entry = Entry(
        event_id=event_id,
        type=kind,
        enterprise_id=eid,
        occurred_at=occurred,
        producer=producer,
        actor=actor,
        user_id=user,
        device_id=device,
        device_session_id=session,
        client_id=client,
        clients=clients,
        sequence=sequence,
        position=Position(topic, partition, offset),
        event_json=event_json,
    )
    return AuditRecord(seq=seq, entry=entry, prev_hash=prev_hash, hash=digest)


class _Batch:
    """One append transaction: `append`'s rules record by record, with the state they consult read
    once per batch and kept here, and every write made once at the end.

    The state is the chain head, each partition's last offset, each device session's last sequence
    and which event ids are already recorded. The writer took the write lock with BEGIN IMMEDIATE,
    so only this batch changes that state until it commits; keeping it in memory gives each record
    the answer a query at its turn would have given, and the end state is the per-record one.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._c = conn
        self._offsets: dict[tuple[str, int], int | None] = {}
        self._moved: set[tuple[str, int]] = set()
        self._sequences: dict[tuple[str, str], int] = {}
        self._touched: set[tuple[str, str]] = set()
        self._sequence_gaps: list[tuple[str, str, int, int, int]] = []

    def append(self, entries: Sequence[Entry]) -> list[AppendResult]:
        """Append `entries` in order; returns what happened to each."""
        c = self._c
        head = c.execute("SELECT seq, hash FROM chain_head WHERE id = 1").fetchone()
        seq, prev = head if head else (0, GENESIS_HASH)
        offsets = self._offsets
        known: set[str] | None = None  # looked up when the first record not redelivered needs it
        results: list[AppendResult] = []
        rows: list[tuple[Any, ...]] = []
        clients: list[tuple[str, str, int]] = []
        offset_gaps: list[tuple[str, int, int, int, int]] = []
        for i, entry in enumerate(entries):
            pos = entry.position
            key = (pos.topic, pos.partition)
            last_offset = offsets[key] if key in offsets else self._last_offset(key)
            if last_offset is not None and pos.offset <= last_offset:
                results.append(AppendResult("redelivered"))
                continue
            offsets[key] = pos.offset
            self._moved.add(key)
            if known is None:
                known = self._known_event_ids(entries[i:])
            if entry.event_id in known:
                results.append(AppendResult("duplicate"))
                continue
            known.add(entry.event_id)
            seq += 1
            record = seal(entry, seq, prev)
            prev = record.hash
            rows.append(
                (
                    seq, entry.event_id, entry.type, entry.enterprise_id, entry.occurred_at, entry.producer,
                    entry.actor, entry.user_id, entry.device_id, entry.device_session_id, entry.client_id,
                    entry.sequence, pos.topic, pos.partition, pos.offset, entry.event_json, record.prev_hash,
                    record.hash,
                )
            )  # fmt: skip
            clients.extend((entry.enterprise_id, client, seq) for client in entry.clients)
            seq_gap = self._sequence_gap(entry, seq)
            off_gap = None
            if (span := offset_gap(pos.topic, last_offset, pos.offset)) is not None:
                off_gap = OffsetGap(pos.topic, pos.partition, span[0], span[1], seq)
                offset_gaps.append((pos.topic, pos.partition, span[0], span[1], seq))
            results.append(AppendResult("written", record, seq_gap, off_gap))
        if rows:
            c.executemany(INSERT_RECORD, rows)
            c.executemany(INSERT_CLIENT, clients)
            c.execute(SET_HEAD, (seq, prev))
        if self._moved:
            c.executemany(SET_OFFSET, [(*key, offsets[key]) for key in self._moved])
        if self._touched:
            c.executemany(SET_SEQUENCE, [(*key, self._sequences[key]) for key in self._touched])
        # Gap rows in detection order: their ids order the gap report.
        if self._sequence_gaps:
            c.executemany(INSERT_SEQUENCE_GAP, self._sequence_gaps)
        if offset_gaps:
            c.executemany(INSERT_OFFSET_GAP, offset_gaps)
        return results

    def _last_offset(self, key: tuple[str, int]) -> int | None:
        row = self._c.execute(
            "SELECT last_offset FROM partition_offsets WHERE topic = ? AND partition = ?", key
        ).fetchone()
        self._offsets[key] = last = row[0] if row else None
        return last

    def _known_event_ids(self, entries: Sequence[Entry]) -> set[str]:
        """Which of the entries' event ids the log already holds (the duplicates check, in bulk)."""
        c = self._c
        ids = list(dict.fromkeys(entry.event_id for entry in entries))
        known: set[str] = set()
        for start in range(0, len(ids), KNOWN_IDS_CHUNK):
            chunk = ids[start : start + KNOWN_IDS_CHUNK]
            if len(chunk) < KNOWN_IDS_ONE_BY_ONE:
                known.update(i for i in chunk if c.execute(KNOWN_ID, (i,)).fetchone())
                continue
            chunk += chunk[-1:] * (KNOWN_IDS_CHUNK - len(chunk))
            known.update(row[0] for row in c.execute(KNOWN_IDS, chunk))
        return known

    def _sequence_gap(self, entry: Entry, seq: int) -> SequenceGap | None:
        if entry.sequence is None or entry.device_session_id is None:
            return None
        key = (entry.enterprise_id, entry.device_session_id)
        sequences = self._sequences
        if key in sequences:
            last = sequences[key]
        else:
            row = self._c.execute(
                "SELECT last_sequence FROM session_sequences WHERE enterprise_id = ? AND device_session_id = ?", key
            ).fetchone()
            last = row[0] if row else None
        # What the per-record upsert (max of the stored and the new sequence) would have left.
        sequences[key] = entry.sequence if last is None else max(last, entry.sequence)
        self._touched.add(key)
        span = sequence_gap(last, entry.sequence)
        if span is None:
            return None
        self._sequence_gaps.append((*key, span[0], span[1], seq))
        return SequenceGap(entry.enterprise_id, entry.device_session_id, span[0], span[1], seq)


class SqliteLog:
    """Synchronous access to the log file: appends, queries, verification input and pruning."""

    def __init__(self, path: Path, synchronous: Synchronous = "FULL", *, create: bool = True) -> None:
        self.path = path
        self._conn = connect(path, synchronous, create=create)

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()

    def consistent(self, fn: Callable[[SqliteLog], T]) -> T:
        """`fn` inside one read transaction: every read sees the same snapshot of the file, so a
        chain check made while the writer appends never sees a head newer than its records."""
        self._conn.execute("BEGIN")
        try:
            return fn(self)
        finally:
            self._conn.execute("ROLLBACK")

    # ---------------------------------------------------------------------------------- writes

    def append(self, entry: Entry) -> AppendResult:
        """One transaction: the record, its apps, the partition offset, the chain head, any gap."""
        return self.append_many([entry])[0]

    def append_many(self, entries: Sequence[Entry]) -> list[AppendResult]:
        """Several entries in one transaction (one fsync), in order; all or none are kept."""
        c = self._conn
        c.execute("BEGIN IMMEDIATE")
        try:
            results = _Batch(c).append(entries)
            c.execute("COMMIT")
        except BaseException:
            if c.in_transaction:
                c.execute("ROLLBACK")
            raise
        return results

    # ---------------------------------------------------------------------------------- reads

    def query(self, q: RecordQuery) -> list[AuditRecord]:
        """Records matching the filters, ascending seq, after the cursor."""
        where, args = ["r.enterprise_id = ?", "r.seq > ?"], [q.enterprise_id, q.after_seq]
        for column, value in (
            ("user_id", q.user_id),
            ("device_id", q.device_id),
            ("device_session_id", q.device_session_id),
            ("actor", q.actor),
        ):
            if value is not None:
                where.append(f"r.{column} = ?")
                args.append(value)
        for column, values in (("type", q.types), ("topic", q.topics)):
            if values:
                where.append(f"r.{column} IN ({', '.join('?' * len(values))})")
                args.extend(values)
        if q.since is not None:
            where.append("r.occurred_at >= ?")
            args.append(q.since)
        if q.until is not None:
            where.append("r.occurred_at < ?")
            args.append(q.until)
        if q.client_id is not None:
            where.append("r.seq IN (SELECT seq FROM record_clients WHERE enterprise_id = ? AND client_id = ?)")
            args.extend([q.enterprise_id, q.client_id])
        cols = ", ".join(f"r.{c.strip()}" for c in COLUMNS.split(","))
        sql = f"SELECT {cols} FROM records r WHERE {' AND '.join(where)} ORDER BY r.seq LIMIT ?"  # noqa: S608
        rows = self._conn.execute(sql, [*args, q.limit]).fetchall()
        return [_record(row) for row in rows]

    def access_records(self, enterprise_id: str, device_id: str, at: str) -> list[AuditRecord]:
        """Session and entitlement records of device sessions checked out on the device by `at`
        and not checked in before it."""
        sessions = [
            row[0]
            for row in self._conn.execute(
                "SELECT device_session_id FROM records WHERE enterprise_id = ? AND device_id = ? AND type = ? "
                "AND occurred_at <= ? AND device_session_id IS NOT NULL "
                "AND device_session_id NOT IN (SELECT device_session_id FROM records "
                "WHERE enterprise_id = ? AND device_id = ? AND type = ? AND occurred_at <= ? "
                "AND device_session_id IS NOT NULL)",
                (enterprise_id, device_id, "session.device_checked_out.v1", at,
                 enterprise_id, device_id, "session.device_checked_in.v1", at),
            )
        ]  # fmt: skip
        records: list[AuditRecord] = []
        for session in sessions:
            rows = self._conn.execute(
                f"SELECT {COLUMNS} FROM records WHERE enterprise_id = ? AND device_session_id = ? ORDER BY seq",  # noqa: S608
                (enterprise_id, session),
            ).fetchall()
            for row in rows:
                clients = tuple(
                    r[0] for r in self._conn.execute("SELECT client_id FROM record_clients WHERE seq = ?", (row[0],))
                )
                records.append(_record(row, tuple(sorted(clients))))
        return records

    def gaps(self, enterprise_id: str) -> GapReport:
        """Sequence gaps of this enterprise and offset gaps of every partition."""
        seq_gaps = tuple(
            SequenceGap(*row)
            for row in self._conn.execute(
                "SELECT enterprise_id, device_session_id, first_missing, last_missing, detected_at_seq "
                "FROM sequence_gaps WHERE enterprise_id = ? ORDER BY id",
                (enterprise_id,),
            )
        )
        off_gaps = tuple(
            OffsetGap(*row)
            for row in self._conn.execute(
                "SELECT topic, partition, first_missing, last_missing, detected_at_seq FROM offset_gaps ORDER BY id"
            )
        )
        return GapReport(seq_gaps, off_gaps)

    def count(self) -> int:
        """Number of records held."""
        return self._conn.execute("SELECT count(*) FROM records").fetchone()[0]

    def has_enterprise(self, enterprise_id: str) -> bool:
        """Whether any record of the enterprise is held (one probe of `records_enterprise`)."""
        sql = "SELECT 1 FROM records WHERE enterprise_id = ? LIMIT 1"
        return self._conn.execute(sql, (enterprise_id,)).fetchone() is not None

    # ------------------------------------------------------------------------------ ChainAdmin

    def stored_records(self, after_seq: int = 0) -> Iterator[StoredRecord]:
        """Every record after `after_seq` with its app rows, ascending, in batches."""
        cursor = after_seq
        while True:
            rows = self._conn.execute(
                f"SELECT {COLUMNS} FROM records WHERE seq > ? ORDER BY seq LIMIT 1000",  # noqa: S608
                (cursor,),
            ).fetchall()
            if not rows:
                return
            apps: dict[int, list[str]] = {}
            for seq, client in self._conn.execute(
                "SELECT seq, client_id FROM record_clients WHERE seq BETWEEN ? AND ?", (rows[0][0], rows[-1][0])
            ):
                apps.setdefault(seq, []).append(client)
            for row in rows:
                record = _record(row, tuple(sorted(apps.get(row[0], ()))))
                yield StoredRecord(record, record.entry.clients)
            cursor = rows[-1][0]

    def checkpoint(self) -> Checkpoint | None:
        """The checkpoint, if records were pruned."""
        row = self._conn.execute(
            "SELECT seq, hash, pruned_before, created_at, signature FROM checkpoint WHERE id = 1"
        ).fetchone()
        return Checkpoint(*row) if row else None

    def head(self) -> tuple[int, str] | None:
        """The last appended (seq, hash), as the store noted it."""
        row = self._conn.execute("SELECT seq, hash FROM chain_head WHERE id = 1").fetchone()
        return (row[0], row[1]) if row else None

    def last_seq_before(self, before: str) -> int:
        """The end of the longest prefix of the chain whose records all occurred before `before`."""
        first_kept = self._conn.execute("SELECT min(seq) FROM records WHERE occurred_at >= ?", (before,)).fetchone()[0]
        if first_kept is not None:
            return first_kept - 1
        return self._conn.execute("SELECT coalesce(max(seq), 0) FROM records").fetchone()[0]

    def record_at(self, seq: int) -> AuditRecord | None:
        """The record with this seq."""
        row = self._conn.execute(f"SELECT {COLUMNS} FROM records WHERE seq = ?", (seq,)).fetchone()  # noqa: S608
        return _record(row) if row else None

    def prune_through(self, seq: int, checkpoint: Checkpoint) -> int:
        """Delete the prefix through `seq` and store the checkpoint, atomically."""
        c = self._conn
        c.execute("BEGIN IMMEDIATE")
        try:
            c.execute("DELETE FROM record_clients WHERE seq <= ?", (seq,))
            deleted = c.execute("DELETE FROM records WHERE seq <= ?", (seq,)).rowcount
            c.execute(
                "INSERT INTO checkpoint (id, seq, hash, pruned_before, created_at, signature) "
                "VALUES (1, ?, ?, ?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, "
                "pruned_before = excluded.pruned_before, created_at = excluded.created_at, "
                "signature = excluded.signature",
                (
                    checkpoint.seq,
                    checkpoint.hash,
                    checkpoint.pruned_before,
                    checkpoint.created_at,
                    checkpoint.signature,
                ),
            )
            c.execute("COMMIT")
        except BaseException:
            if c.in_transaction:
                c.execute("ROLLBACK")
            raise
        return deleted


class SqliteAuditStore:
    """The async `AuditStore` over the file: a writer thread and a pool of reader threads."""

    def __init__(self, path: Path, synchronous: Synchronous = "FULL", readers: int = 4) -> None:
        self.path = Path(path)
        self._synchronous: Synchronous = synchronous
        self._writer_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit-writer")
        self._reader_pool = ThreadPoolExecutor(max_workers=readers, thread_name_prefix="audit-reader")
        self._writer: SqliteLog | None = None
        self._local = threading.local()
        self._readers: list[SqliteLog] = []
        self._lock = threading.Lock()

    def _writer_log(self) -> SqliteLog:
        # Only ever called on the writer thread; the file and schema are created on first use.
        if self._writer is None:
            self._writer = SqliteLog(self.path, self._synchronous)
        return self._writer

    def _reader(self) -> SqliteLog:
        log = getattr(self._local, "log", None)
        if log is None:
            log = SqliteLog(self.path, self._synchronous, create=False)
            self._local.log = log
            with self._lock:
                self._readers.append(log)
        return log

    async def open(self) -> None:
        """Create the file and schema now (otherwise the first append does)."""
        await self._write(lambda _log: None)

    async def _write(self, fn: Callable[[SqliteLog], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._writer_pool, lambda: fn(self._writer_log()))

    async def _read(self, fn: Callable[[SqliteLog], T]) -> T:
        if self._writer is None:
            await self.open()
        return await asyncio.get_running_loop().run_in_executor(self._reader_pool, lambda: fn(self._reader()))

    async def append(self, entry: Entry) -> AppendResult:
        """Append on the writer thread."""
        return await self._write(lambda log: log.append(entry))

    async def append_many(self, entries: Sequence[Entry]) -> list[AppendResult]:
        """Append several in one transaction on the writer thread."""
        return await self._write(lambda log: log.append_many(entries))

    async def query(self, query: RecordQuery) -> list[AuditRecord]:
        """Query on a reader thread."""
        return await self._read(lambda log: log.query(query))

    async def access_records(self, enterprise_id: str, device_id: str, at: str) -> list[AuditRecord]:
        """Evidence for the access question, on a reader thread."""
        return await self._read(lambda log: log.access_records(enterprise_id, device_id, at))

    async def gaps(self, enterprise_id: str) -> GapReport:
        """Detected gaps, on a reader thread."""
        return await self._read(lambda log: log.gaps(enterprise_id))

    async def count(self) -> int:
        """Number of records, on a reader thread."""
        return await self._read(lambda log: log.count())

    async def with_chain(self, fn: Callable[[ChainAdmin], T]) -> T:
        """`fn` over one consistent snapshot of a reader's connection, on a reader thread."""
        return await self._read(lambda log: log.consistent(fn))

    async def has_enterprise(self, enterprise_id: str) -> bool:
        """Whether the enterprise has records, on a reader thread."""
        return await self._read(lambda log: log.has_enterprise(enterprise_id))

    async def close(self) -> None:
        """Close every connection and stop the threads."""
        if self._writer is not None:
            await self._write(lambda log: log.close())
        self._writer_pool.shutdown(wait=True)
        with self._lock:
            readers = list(self._readers)
        # Connections were opened with check_same_thread=False, so closing them here is allowed.
        for log in readers:
            log.close()
        self._reader_pool.shutdown(wait=True)
