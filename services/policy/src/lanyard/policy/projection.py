"""The policy service's device sessions folded from their history (the rebuild from Kafka). Pure.

`SessionFold.apply` takes device-session and entitlement events in any order between the two
topics (in order within each device's partition) and `result` gives back what the live path
would have stored: every decided session not checked in (granted with its latest grant, or
ended after a denial or a revocation), the tombstones of checked-in sessions, and each device's
latest Locker report. Order between topics does not matter because every state only moves one
way: checked in is terminal, ended beats granted, and a grant of a higher version beats a lower.

A checkout with no decision in the history is left out: the live consumer has not committed it
(it commits only after the decision was acknowledged), so it will decide it once it runs. A
decision whose checkout is not in the history (older than the device topic's retention) is left
out too, and counted: its session's identity and second factors are not known.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from lanyard.contracts import Event
from lanyard.contracts import events as ev
from lanyard.policy.domain import DeviceReport, Grant, LiveSession


@dataclass
class _Tracked:
    checkout: ev.DeviceCheckedOutPayload | None = None
    state: str = "new"
    version: int = 0
    grant: Grant | None = None
    closed_at: datetime | None = None


@dataclass(frozen=True)
class FoldedEnterprise:
    """One enterprise's sessions as the live path would have stored them."""

    sessions: tuple[LiveSession, ...]
    closed: dict[str, int]
    """Device session id → seconds its tombstone still has to live."""
    devices: tuple[DeviceReport, ...]
    undecided: int
    orphaned: int


@dataclass
class SessionFold:
    """Folds lanyard.device-sessions.v1 and lanyard.entitlements.v1 records, per enterprise."""

    closed_ttl_s: int
    events: int = 0
    _sessions: dict[str, dict[str, _Tracked]] = field(default_factory=dict)
    _devices: dict[str, dict[str, DeviceReport]] = field(default_factory=dict)

    def apply(self, event: Event) -> None:
        """Take one event into the fold; events of other kinds change nothing."""
        e, p = event.enterprise_id, event.payload
        match event:
            case ev.DeviceCheckedOut() | ev.CheckoutRefused():
                self._report(e, DeviceReport(p.device_id, p.locker_version, p.sso_extension_installed,
                                             event.occurred_at, isinstance(event, ev.CheckoutRefused)))  # fmt: skip
                if isinstance(event, ev.DeviceCheckedOut):
                    self._tracked(e, p.device_session_id).checkout = p
            case ev.DeviceCheckedIn():
                self._tracked(e, p.device_session_id).closed_at = event.occurred_at
            case ev.EntitlementGranted():
                t = self._tracked(e, p.device_session_id)
                if t.state != "ended" and p.version > t.version:
                    t.state, t.version = "granted", p.version
                    t.grant = Grant(p.apps, p.auth_mode, p.inactivity_timeout_s, p.max_session_s,
                                    p.face_allowed, p.face_recency_s, p.policy_id)  # fmt: skip
            case ev.EntitlementDenied() | ev.EntitlementRevoked():
                # A denied or revoked session never gets a grant again.
                self._tracked(e, p.device_session_id).state = "ended"
            case _:
                return
        self.events += 1

    def _tracked(self, e: str, device_session_id: str) -> _Tracked:
        return self._sessions.setdefault(e, {}).setdefault(device_session_id, _Tracked())

    def _report(self, e: str, report: DeviceReport) -> None:
        reports = self._devices.setdefault(e, {})
        old = reports.get(report.device_id)
        if old is None or old.at <= report.at:
            reports[report.device_id] = report

    def enterprises(self) -> set[str]:
        """Every enterprise the folded events were about."""
        return set(self._sessions) | set(self._devices)

    def result(self, enterprise_id: str, now: datetime) -> FoldedEnterprise:
        """What the live path would hold for the enterprise at `now`."""
        sessions: list[LiveSession] = []
        closed: dict[str, int] = {}
        undecided = orphaned = 0
        for dsid, t in self._sessions.get(enterprise_id, {}).items():
            if t.closed_at is not None:
                left = int((t.closed_at + timedelta(seconds=self.closed_ttl_s) - now).total_seconds())
                if left > 0:
                    closed[dsid] = left
                continue
            if t.checkout is None:
                orphaned += 1
                continue
            if t.state == "new":
                undecided += 1
                continue
            c = t.checkout
            sessions.append(
                LiveSession(
                    dsid,
                    c.device_id,
                    c.user_id,
                    tuple(c.amr),
                    c.checked_out_at,
                    "granted" if t.state == "granted" else "ended",
                    t.version,
                    t.grant,
                )
            )
        return FoldedEnterprise(
            tuple(sessions), closed, tuple(self._devices.get(enterprise_id, {}).values()), undecided, orphaned
        )
