"""Examples for the audit service's OpenAPI document (`lanyard.runtime.openapi`), as the demo
enterprise's stack answered them."""

from __future__ import annotations

from typing import Any

from lanyard.runtime.openapi import ADMIN_REFUSALS, Example

BASE = "/audit/e/{enterprise_id}"
AUDITOR_ONLY = (ADMIN_REFUSALS[0], (403, "insufficient_role", "needs one of ('auditor', 'superadmin')"))
SUBJECT = {
    "user_id": "usr_qoyUat3ykEEo_8Zd",
    "device_id": "iphone-b4a3003b82",
    "device_session_id": "wwgXKgFKz0r0Uqq75Fz_tI7HWXvXQsji",
    "client_id": None,
}
RECORD: dict[str, Any] = {
    "seq": 42,
    "event_id": "01a23538-8325-7e60-9fd0-9cce3c23ccb5",
    "type": "session.device_checked_in.v1",
    "enterprise_id": "st-mungos",
    "occurred_at": "2026-12-02T05:27:05.765599Z",
    "producer": "session",
    "actor": "usr_qoyUat3ykEEo_8Zd",
    "admin_action": False,
    **SUBJECT,
    "topic": "lanyard.device-sessions.v1",
    "partition": 0,
    "offset": 5,
    "event": {
        "event_id": "01a23538-8325-7e60-9fd0-9cce3c23ccb5",
        "type": "session.device_checked_in.v1",
        "occurred_at": "2026-12-02T05:27:05.765599Z",
        "enterprise_id": "st-mungos",
        "producer": "session",
        "correlation_id": None,
        "actor": "usr_qoyUat3ykEEo_8Zd",
        "subject": SUBJECT,
        "payload": {
            "device_id": "iphone-b4a3003b82",
            "device_session_id": "wwgXKgFKz0r0Uqq75Fz_tI7HWXvXQsji",
            "reason": "user",
            "sequence": 5,
            "user_id": "usr_qoyUat3ykEEo_8Zd",
        },
    },
    "prev_hash": "0cd358c659774987e762050601a0cbc3e7ef112b1af0e9482c1818a7f0fff2fd",
    "hash": "455537dd35af403ef9c519602a50c02f1ec51ca607d9adbdd0195ecf9c4d96d3",
}

EXAMPLES: dict[str, Example] = {
    f"GET {BASE}/records": Example(
        response={"records": [RECORD], "next_cursor": 42},
        refusals=((400, "invalid_request", "limit must be at most 1000"), *AUDITOR_ONLY),
    ),
    f"GET {BASE}/access": Example(
        response={
            "client_id": "cli_T4FjacJ88-kJMXvd",
            "device_id": "iphone-b4a3003b82",
            "at": "2026-12-02T05:27:00.000000Z",
            "access": [
                {
                    "user_id": "usr_qoyUat3ykEEo_8Zd",
                    "device_session_id": "wwgXKgFKz0r0Uqq75Fz_tI7HWXvXQsji",
                    "device_id": "iphone-b4a3003b82",
                    "client_id": "cli_T4FjacJ88-kJMXvd",
                    "interval": {"start": "2026-12-02T05:26:55.448214Z", "end": "2026-12-02T05:27:05.765599Z"},
                    "ended_by": "session.device_checked_in.v1",
                    "locked_at_time": False,
                    "evidence_seqs": [31, 32, 42],
                }
            ],
        },
        refusals=AUDITOR_ONLY,
    ),
    f"GET {BASE}/gaps": Example(
        response={
            "sequence_gaps": [],
            "offset_gaps": [
                {
                    "topic": "lanyard.oidc-events.v1",
                    "partition": 3,
                    "first_missing": 1181,
                    "last_missing": 1182,
                    "detected_at_seq": 5120,
                }
            ],
        },
        refusals=AUDITOR_ONLY,
    ),
    f"GET {BASE}/verification": Example(
        response={"ok": True, "count": 112, "first_seq": 1, "last_seq": 112, "broken_seq": None, "reason": ""},
        refusals=AUDITOR_ONLY,
    ),
    f"GET {BASE}/export": Example(response=RECORD, media_type="application/x-ndjson", refusals=AUDITOR_ONLY),
}
