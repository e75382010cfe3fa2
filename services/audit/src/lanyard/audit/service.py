"""Use cases of the audit service: they take their ports as parameters."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from lanyard.audit.domain import (
    Access,
    Checkpoint,
    Position,
    Verdict,
    entry_from_json,
    format_time,
    verify_chain,
    who_had_access,
)
from lanyard.audit.ports import AppendResult, AuditObserver, AuditStore, ChainAdmin


async def record_event(
    store: AuditStore, observer: AuditObserver, document: Mapping[str, Any], position: Position
) -> AppendResult:
    """Append one consumed event to the log (idempotent: a redelivered or repeated event changes nothing)."""
    result = await store.append(entry_from_json(document, position))
    observer.appended(result)
    return result


async def record_events(
    store: AuditStore, observer: AuditObserver, documents: Sequence[tuple[Mapping[str, Any], Position]]
) -> list[AppendResult]:
    """`record_event` for one partition's fetched records, written in one transaction."""
    results = await store.append_many([entry_from_json(document, position) for document, position in documents])
    for result in results:
        observer.appended(result)
    return results


def parse_wire(raw: bytes | str) -> dict[str, Any]:
    """The event's JSON document exactly as produced (fields this version does not know are kept)."""
    document = json.loads(raw)
    if not isinstance(document, dict):
        raise ValueError("event is not a JSON object")
    return document


async def find_access(
    store: AuditStore, enterprise_id: str, device_id: str, client_id: str, at: datetime
) -> list[Access]:
    """Who had access to `client_id` on `device_id` at `at`, with the evidence record seqs."""
    moment = format_time(at)
    records = await store.access_records(enterprise_id, device_id, moment)
    return who_had_access(records, device_id=device_id, client_id=client_id, at=moment)


def verify_log(admin: ChainAdmin, key: Ed25519PublicKey | None) -> Verdict:
    """Recompute the whole chain from the checkpoint (or genesis)."""
    checkpoint = admin.checkpoint()
    start = checkpoint.seq if checkpoint else 0
    return verify_chain(admin.stored_records(start), checkpoint=checkpoint, key=key, head=admin.head())


class PruneRefused(Exception):
    """Pruning was not done (no key, or the chain does not verify: pruning must not launder tampering)."""


def prune_log(
    admin: ChainAdmin, before: datetime, key: Ed25519PrivateKey | None, now: datetime
) -> tuple[int, Checkpoint | None]:
    """Delete the records older than `before` behind a signed checkpoint; returns (deleted, checkpoint).

    Only a prefix of the chain can go: the records up to the first one that occurred at or after
    `before`. The chain is verified first, so a signature never vouches for tampered records.
    """
    if not key:
        raise PruneRefused("no checkpoint key configured (LANYARD_AUDIT_CHECKPOINT_KEY)")
    verdict = verify_log(admin, key.public_key())
    if not verdict.ok:
        raise PruneRefused(f"chain does not verify at seq {verdict.broken_seq}: {verdict.reason}")
    through = admin.last_seq_before(format_time(before))
    current = admin.checkpoint()
    if through == 0 or (current is not None and through <= current.seq):
        return 0, current
    last = admin.record_at(through)
    if last is None:
        raise PruneRefused(f"record {through} not found")
    checkpoint = Checkpoint(
        seq=through, hash=last.hash, pruned_before=format_time(before), created_at=format_time(now)
    ).signed(key)
    return admin.prune_through(through, checkpoint), checkpoint
