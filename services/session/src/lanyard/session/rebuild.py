"""Rebuilding the session service's Redis state from Kafka when Redis lost it (DESIGN §4).

At startup, before the HTTP API and the consumers serve, `Rebuild.run` looks for the marker the
service writes once its state is complete (`lanyard.runtime.rebuild`: marker, lock, bound and
history read, shared with the policy service). A Redis that lost its data lost the marker too:
then one instance (holding a lock; others wait for the marker, with a bound) reads
`lanyard.device-sessions.v1`, `lanyard.entitlements.v1`, `lanyard.policy-config.v1` and
`lanyard.oidc-events.v1` from their earliest offsets up to their ends at the start of the read,
folds them (`projection.Projection`), writes what Redis does not hold (timers of live sessions
included, so an idle session still expires), and sets the marker. A fresh system rebuilds
nothing and sets the marker. No event is published while rebuilding: the records already exist.

Records published after the read's end offsets are not lost: the service's consumer group
resumes from its committed offsets (at or before those ends), and its handlers are
idempotent, so a record read by both is applied once in effect.

Limits (see also `projection`): device enrolments older than the device-sessions topic's 7-day
retention are not in it and are not rebuilt; Locker heartbeats are not events; events still in
the outbox when Redis was lost are gone. A live session whose entitlement the topic shows
revoked or denied is checked in by the live path once the broker is up (`Rebuild.settle`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from lanyard.contracts import topics
from lanyard.runtime.logging import get_logger
from lanyard.runtime.rebuild import rebuild_once
from lanyard.session.ports import Clock, History, ProjectionMarker, SessionStore
from lanyard.session.projection import Key, Projection, Rebuilt
from lanyard.session.service import SessionError

log = get_logger("lanyard.session.rebuild")

SOURCES = (topics.DEVICE_SESSIONS, topics.ENTITLEMENTS, topics.POLICY_CONFIG, topics.OIDC_EVENTS)
"""What the state is folded from; order does not matter (the fold joins them at the end)."""


@dataclass(frozen=True)
class RebuildReport:
    """What one rebuild did (logged; tests and operators read it)."""

    events: int
    devices: int
    sessions: int
    live: int
    written: int
    skipped: int
    seconds: float


class Rebuild:
    """Brings the store to a complete state before the service serves."""

    def __init__(
        self,
        *,
        store: SessionStore,
        marker: ProjectionMarker,
        history: History,
        clock: Clock,
        default_max_session_s: int,
        timeout_s: float,
        activity_lookback_s: float = 24 * 3600,
        wait_poll_s: float = 0.2,
    ) -> None:
        self._store = store
        self._marker = marker
        self._history = history
        self._clock = clock
        self._default_max_session_s = default_max_session_s
        self._timeout_s = timeout_s
        self._activity_lookback_s = activity_lookback_s
        self._wait_poll_s = wait_poll_s
        self.report: RebuildReport | None = None
        self.ended: list[Key] = []

    async def run(self) -> RebuildReport | None:
        """Rebuild if the state is incomplete; None when it was complete (or another instance
        rebuilt it). Raises `RebuildTimeout` past the bound, so startup fails loudly."""
        return await rebuild_once(
            self._marker, self._rebuild, timeout_s=self._timeout_s, wait_poll_s=self._wait_poll_s, what="session"
        )

    async def _rebuild(self) -> tuple[RebuildReport, dict[str, Any]]:
        log.warning("session state incomplete (Redis lost it?): rebuilding from Kafka")
        started = asyncio.get_running_loop().time()
        projection = Projection(self._default_max_session_s)
        for topic in SOURCES:
            # SSO activity is the busiest topic and only its recent records can matter: activity
            # older than the lookback is far past any inactivity timeout.
            since = self._clock.now() - self._activity_lookback_s if topic is topics.OIDC_EVENTS else None
            async for event in self._history.read(topic.name, since):
                projection.apply(event)
        state: Rebuilt = projection.result(self._clock.now())
        written = await self._store.restore(state.devices, state.sessions, state.org_settings)
        for eid, options in state.locker_options.items():
            written += await self._store.put_locker_options(eid, options)  # never over a newer version
        seconds = asyncio.get_running_loop().time() - started
        report = RebuildReport(
            events=state.events,
            devices=len(state.devices),
            sessions=len(state.sessions),
            live=sum(s.live for s in state.sessions),
            written=written,
            skipped=state.skipped,
            seconds=round(seconds, 3),
        )
        self.report = report
        self.ended = state.ended
        log.info("rebuilt session state from Kafka", **report.__dict__)
        return report, {"rebuilt_at": self._clock.now(), **report.__dict__}

    async def settle(self, check_in: Callable[[str, str], Awaitable[Any]]) -> None:
        """Check in the live sessions whose entitlement the topics show ended, through the live
        path (`check_in(enterprise_id, device_session_id)`), once the broker is up."""
        for eid, dsid in self.ended:
            try:
                await check_in(eid, dsid)
            except SessionError as exc:  # saved; its event waits in the outbox
                log.warning("rebuild: checkin of an ended session pending", device_session_id=dsid, error=exc.code)
        self.ended = []
