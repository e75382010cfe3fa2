"""`lanyard admin audit-verify`'s export check catches a record changed, or a link broken, with
the audit service's own chain code (records sealed here exactly as the audit log seals them)."""

from __future__ import annotations

import copy

from lanyard.audit.domain import GENESIS_HASH, Position, canonical_json, chain_hash
from lanyard.cli.audit import verify_export


def sealed(n: int) -> list[dict]:
    records, prev = [], GENESIS_HASH
    for seq in range(1, n + 1):
        event = {"event_id": f"e{seq}", "type": "session.device_locked.v1", "payload": {"reason": "inactivity"}}
        position = Position("lanyard.device-sessions.v1", 0, seq * 10)
        digest = chain_hash(seq, prev, canonical_json(event), position)
        records.append(
            {"seq": seq, "event_id": f"e{seq}", "event": event, "prev_hash": prev, "hash": digest,
             "topic": position.topic, "partition": 0, "offset": position.offset}
        )  # fmt: skip
        prev = digest
    return records


def test_an_untouched_export_verifies_with_every_link_checked():
    report = verify_export(sealed(5))
    assert report["ok"] and report["records"] == 5 and report["links_checked"] == 4 and not report["problems"]


def test_a_changed_event_or_a_broken_link_is_named():
    records = sealed(4)
    changed = copy.deepcopy(records)
    changed[2]["event"]["payload"]["reason"] = "admin"
    report = verify_export(changed)
    assert not report["ok"] and report["problems"] == ["seq 3 (e3): hash does not match its content"]

    relinked = copy.deepcopy(records)
    relinked[1]["hash"] = relinked[0]["hash"]  # seq 2's seal swapped: its own hash and seq 3's link break
    problems = verify_export(relinked)["problems"]
    assert any("seq 2" in p for p in problems) and any("seq 3: prev_hash" in p for p in problems)
