"""`lanyard admin audit-verify`'s checks, with the audit service's own chain code.

Through the API an auditor sees one enterprise's records, while the chain runs through every
enterprise's: so the export proves that each record is sealed (its hash matches its content and
place) and that consecutive records link, and the gaps endpoint names missing sequence numbers
and offsets. The whole chain, checkpoint included, is verified from the log file (`--db`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lanyard.audit.adapters.sqlite_store import SqliteLog
from lanyard.audit.domain import Position, canonical_json, chain_hash
from lanyard.audit.service import verify_log
from lanyard.audit.settings import AuditSettings


def verify_export(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Recompute every exported record's seal and the links between consecutive ones."""
    problems: list[str] = []
    links = 0
    previous: dict[str, Any] | None = None
    for record in sorted(records, key=lambda r: r["seq"]):
        position = Position(record["topic"], record["partition"], record["offset"])
        expected = chain_hash(record["seq"], record["prev_hash"], canonical_json(record["event"]), position)
        if expected != record["hash"]:
            problems.append(f"seq {record['seq']} ({record['event_id']}): hash does not match its content")
        if previous is not None and record["seq"] == previous["seq"] + 1:
            links += 1
            if record["prev_hash"] != previous["hash"]:
                problems.append(f"seq {record['seq']}: prev_hash is not the hash of seq {previous['seq']}")
        previous = record
    return {
        "ok": not problems,
        "records": len(records),
        "first_seq": (records and min(r["seq"] for r in records)) or None,
        "last_seq": (records and max(r["seq"] for r in records)) or None,
        "links_checked": links,
        "problems": problems,
    }


def verify_file(path: Path) -> dict[str, Any]:
    """The whole chain in an audit log file (what `python -m lanyard.audit verify` checks)."""
    settings = AuditSettings()
    try:
        log = SqliteLog(path, settings.sqlite_synchronous, create=False)
    except FileNotFoundError:
        return {"ok": False, "reason": f"no audit log at {path}"}
    try:
        # One read snapshot: the audit service may be appending while this reads the live file.
        verdict = log.consistent(lambda snapshot: verify_log(snapshot, settings.checkpoint_verifier()))
    finally:
        log.close()
    return {
        "ok": verdict.ok,
        "count": verdict.count,
        "first_seq": verdict.first_seq,
        "last_seq": verdict.last_seq,
        "broken_seq": verdict.broken_seq,
        "reason": verdict.reason,
    }
