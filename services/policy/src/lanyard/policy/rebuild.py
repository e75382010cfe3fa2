"""Rebuilding the policy service's Redis projection from Kafka when Redis lost it (DESIGN §4).

At startup, before the HTTP API and the consumers serve, `Rebuild.run` looks for the marker the
projection writes once complete (`lanyard.runtime.rebuild`: marker, lock, bound, history read).
Without it, one instance reads, from their earliest offsets up to their ends at the start of
each read:

- `lanyard.policy-config.v1`, `lanyard.directory.v1`, `lanyard.app-profiles.v1`, projected
  through the live path's own `ReadModel.apply` in partition order (so the last change of each
  item wins, as it did live);
- `lanyard.entitlements.v1` then `lanyard.device-sessions.v1`, folded (`projection.SessionFold`)
  into the decided sessions, their seats, the tombstones of checked-in sessions and the
  devices' Locker reports. Entitlements are read first: every decision this instance published
  came after its checkout was on the broker, so each decision read has its checkout in the
  later read. This instance's consumers are not running yet, so nothing is decided meanwhile.

Only enterprises the projection does not know (none of their records is in Redis) are rebuilt:
a Redis loses everything or nothing, and an upgrade that finds a working projection without a
marker rewrites nothing. Nothing is published: the decisions are already on the broker; the
licence clock is scheduled again from the rebuilt licences.

Limits: what never travels on Kafka is not rebuilt — provisioning codes, failure counters and
enterprise credentials (`CloudSecrets`; the projected trust state itself is rebuilt from its
events), idempotency records, decisions saved but not yet acknowledged (their checkouts are not
committed, so the live consumer decides them again). Sessions whose checkout is older than the
device topic's retention (7 days) are not rebuilt.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from lanyard.contracts import topics
from lanyard.policy.ports import Clock, ReadModel
from lanyard.policy.projection import SessionFold
from lanyard.runtime.logging import get_logger
from lanyard.runtime.rebuild import History, ProjectionMarker, rebuild_once

log = get_logger("lanyard.policy.rebuild")

CONFIG_SOURCES = (topics.POLICY_CONFIG, topics.DIRECTORY, topics.APP_PROFILES)
SESSION_SOURCES = (topics.ENTITLEMENTS, topics.DEVICE_SESSIONS)
"""In this order: see the module docstring."""


@dataclass(frozen=True)
class RebuildReport:
    """What one rebuild did (logged, and kept with the marker)."""

    enterprises: int
    config_events: int
    session_events: int
    sessions: int
    granted: int
    closed: int
    undecided: int
    orphaned: int
    seconds: float


class Rebuild:
    """Brings the projection to a complete state before the service serves."""

    def __init__(
        self,
        *,
        store: ReadModel,
        marker: ProjectionMarker,
        history: History,
        clock: Clock,
        closed_ttl_s: int,
        schedule_licences: Callable[[str], Awaitable[None]],
        timeout_s: float,
        wait_poll_s: float = 0.2,
    ) -> None:
        self._store = store
        self._marker = marker
        self._history = history
        self._clock = clock
        self._closed_ttl_s = closed_ttl_s
        self._schedule_licences = schedule_licences
        self._timeout_s = timeout_s
        self._wait_poll_s = wait_poll_s
        self.report: RebuildReport | None = None

    async def run(self) -> RebuildReport | None:
        """Rebuild if the projection is incomplete; None when it was complete (or another
        instance rebuilt it). Raises `RebuildTimeout` past the bound, so startup fails loudly."""
        return await rebuild_once(
            self._marker, self._rebuild, timeout_s=self._timeout_s, wait_poll_s=self._wait_poll_s, what="policy"
        )

    async def _rebuild(self) -> tuple[RebuildReport, dict[str, Any]]:
        log.warning("policy projection incomplete (Redis lost it?): rebuilding from Kafka")
        started = asyncio.get_running_loop().time()
        lost: dict[str, bool] = {}  # enterprise → absent from the store when the rebuild first met it

        async def is_lost(enterprise_id: str) -> bool:
            if enterprise_id not in lost:
                lost[enterprise_id] = not await self._store.known(enterprise_id)
            return lost[enterprise_id]

        config_events = 0
        for topic in CONFIG_SOURCES:
            async for offset, event in self._history.read_positioned(topic.name):
                if await is_lost(event.enterprise_id):
                    # With its offset, so the live consumer that resumes behind it (at its
                    # last commit) finds every item newer than what it re-reads.
                    await self._store.apply(event, offset)
                    config_events += 1
        fold = SessionFold(self._closed_ttl_s)
        for topic in SESSION_SOURCES:
            async for event in self._history.read(topic.name):
                if await is_lost(event.enterprise_id):
                    fold.apply(event)
        now = self._clock()
        sessions = granted = closed = undecided = orphaned = 0
        for enterprise_id in sorted(fold.enterprises()):
            folded = fold.result(enterprise_id, now)
            await self._store.restore_sessions(enterprise_id, folded.sessions, folded.closed)
            await self._store.record_devices(enterprise_id, folded.devices)
            sessions += len(folded.sessions)
            granted += sum(s.granted for s in folded.sessions)
            closed += len(folded.closed)
            undecided += folded.undecided
            orphaned += folded.orphaned
        rebuilt = sorted(e for e, was_lost in lost.items() if was_lost)
        for enterprise_id in rebuilt:
            await self._schedule_licences(enterprise_id)
        report = RebuildReport(
            enterprises=len(rebuilt),
            config_events=config_events,
            session_events=fold.events,
            sessions=sessions,
            granted=granted,
            closed=closed,
            undecided=undecided,
            orphaned=orphaned,
            seconds=round(asyncio.get_running_loop().time() - started, 3),
        )
        self.report = report
        log.info("rebuilt the policy projection from Kafka", **report.__dict__)
        return report, {"rebuilt_at": now.isoformat(), **report.__dict__}
