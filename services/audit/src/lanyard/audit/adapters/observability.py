"""Metrics and logs of the audit log: the `AuditObserver` adapter."""

from __future__ import annotations

from prometheus_client import Counter

from lanyard.audit.ports import AppendResult
from lanyard.runtime.logging import get_logger

APPENDS = Counter("lanyard_audit_appends_total", "Append outcomes: written, redelivered, duplicate", ["outcome"])
GAPS = Counter("lanyard_audit_gaps_total", "Gaps detected in the input, by kind", ["kind"])

log = get_logger("lanyard.audit")


class MetricsObserver:
    """Counts appends and gaps on /metrics; logs each gap (ids and numbers only)."""

    def __init__(self) -> None:
        # labels() validates and looks the child up under a lock on every call, and appends count
        # every consumed record; each outcome's child is resolved once, on its first use, so
        # /metrics shows only outcomes that happened, as before.
        self._outcomes: dict[str, Counter] = {}

    def appended(self, result: AppendResult) -> None:
        """Count the outcome; report a gap."""
        counter = self._outcomes.get(result.outcome)
        if counter is None:
            counter = self._outcomes[result.outcome] = APPENDS.labels(result.outcome)
        counter.inc()
        if (gap := result.sequence_gap) is not None:
            GAPS.labels("device_session_sequence").inc()
            log.warning(
                "gap in device-session sequence",
                enterprise_id=gap.enterprise_id,
                device_session_id=gap.device_session_id,
                first_missing=gap.first_missing,
                last_missing=gap.last_missing,
                seq=gap.detected_at_seq,
            )
        if (off := result.offset_gap) is not None:
            GAPS.labels("partition_offset").inc()
            log.warning(
                "gap in partition offsets",
                topic=off.topic,
                partition=off.partition,
                first_missing=off.first_missing,
                last_missing=off.last_missing,
                seq=off.detected_at_seq,
            )
