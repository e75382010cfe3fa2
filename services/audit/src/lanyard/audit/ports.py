"""The interfaces the audit service's use cases depend on; adapters implement them.

`AuditStore` is the log itself. The embedded default is SQLite (adapters/sqlite_store.py); another
store (Postgres, an object store with a ledger) can replace it by honouring the same Protocol.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from lanyard.audit.domain import AuditRecord, Checkpoint, Entry, OffsetGap, SequenceGap, StoredRecord

T = TypeVar("T")


@dataclass(frozen=True)
class RecordQuery:
    """Filters of the records query and the exports. Times are in `domain.format_time` form."""

    enterprise_id: str
    user_id: str | None = None
    device_id: str | None = None
    client_id: str | None = None
    device_session_id: str | None = None
    types: tuple[str, ...] = ()
    actor: str | None = None
    topics: tuple[str, ...] = ()
    since: str | None = None
    until: str | None = None
    after_seq: int = 0
    limit: int = 100


@dataclass(frozen=True)
class AppendResult:
    """What `append` did: wrote a new record, or recognised a redelivery / duplicate."""

    outcome: str  # "written" | "redelivered" | "duplicate"
    record: AuditRecord | None = None
    sequence_gap: SequenceGap | None = None
    offset_gap: OffsetGap | None = None


@dataclass(frozen=True)
class GapReport:
    """Every gap the store has detected for one enterprise, plus partition-level offset gaps."""

    sequence_gaps: tuple[SequenceGap, ...]
    offset_gaps: tuple[OffsetGap, ...]


class AuditStore(Protocol):
    """The hash-chained audit log (async surface for the service's event loop)."""

    async def append(self, entry: Entry) -> AppendResult:
        """Append atomically with its partition offset; a record already recorded changes nothing."""
        ...

    async def append_many(self, entries: Sequence[Entry]) -> list[AppendResult]:
        """`append` for several entries in order, all in one transaction (all or none kept)."""
        ...

    async def query(self, query: RecordQuery) -> list[AuditRecord]:
        """Records matching `query`, ascending seq, after `query.after_seq`, at most `query.limit`."""
        ...

    async def access_records(self, enterprise_id: str, device_id: str, at: str) -> list[AuditRecord]:
        """Session and entitlement records of the device sessions open on `device_id` at `at`."""
        ...

    async def gaps(self, enterprise_id: str) -> GapReport:
        """Detected gaps."""
        ...

    async def count(self) -> int:
        """Number of records held (all enterprises)."""
        ...

    async def with_chain(self, fn: Callable[[ChainAdmin], T]) -> T:
        """Run `fn` on a synchronous view of the log off the event loop (chain verification)."""
        ...

    async def has_enterprise(self, enterprise_id: str) -> bool:
        """Whether any record of this enterprise is held (tokens are verified only for those)."""
        ...

    async def close(self) -> None:
        """Release connections and threads."""
        ...


class ChainAdmin(Protocol):
    """Synchronous maintenance of the log, for the command line (never on the event loop)."""

    def stored_records(self, after_seq: int = 0) -> Iterator[StoredRecord]:
        """Every record after `after_seq`, ascending, as stored (for verification)."""
        ...

    def checkpoint(self) -> Checkpoint | None:
        """The checkpoint standing in for pruned records, if any."""
        ...

    def head(self) -> tuple[int, str] | None:
        """The store's note of the last appended (seq, hash)."""
        ...

    def prune_through(self, seq: int, checkpoint: Checkpoint) -> int:
        """Delete records with seq ≤ `seq` and store `checkpoint` in one transaction; returns the count."""
        ...

    def last_seq_before(self, before: str) -> int:
        """The last seq of the longest chain prefix whose records all occurred before `before` (0: none)."""
        ...

    def record_at(self, seq: int) -> AuditRecord | None:
        """The record with this seq, if held."""
        ...


class AuditObserver(Protocol):
    """Told about every append outcome and gap: metrics and logs live behind it."""

    def appended(self, result: AppendResult) -> None:
        """One append finished (written, redelivered or duplicate), with any gap it detected."""
        ...
