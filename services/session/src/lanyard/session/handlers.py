"""Handlers for the events the session service consumes.

A fetched batch (`handle_batch`) stores each run of grants, and each run of SSO activity, in
one write, and handles everything else one by one, in order. Each is idempotent: grants by
entitlement version, checkins by the terminal CLOSED state, activity by taking the later time,
org settings by overwriting with the latest record, Locker options by keeping the highest
version.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from lanyard.contracts import Event
from lanyard.contracts import events as ev
from lanyard.session.service import SessionService


class SessionHandlers:
    """Routes each consumed event to its use case; other event types are ignored."""

    def __init__(self, service: SessionService) -> None:
        self._service = service

    async def handle(self, event: Event) -> None:
        """Apply one consumed event."""
        s = self._service
        if isinstance(event, ev.EntitlementGranted):
            await s.entitlement_granted(event)
        elif isinstance(event, ev.EntitlementRevoked | ev.EntitlementDenied):
            await s.entitlement_ended(event)
        elif isinstance(event, ev.AuthorizationGranted | ev.TokensRefreshed):
            if event.payload.device_session_id:
                await s.sso_activity(event.enterprise_id, event.payload.device_session_id, event.occurred_at)
        elif isinstance(event, ev.OrgSettingsChanged):
            await s.org_settings_changed(event)
        elif isinstance(event, ev.LockerOptionsChanged):
            await s.locker_options_changed(event)

    async def handle_batch(self, items: Sequence[tuple[Event, Any]]) -> None:
        """Apply one partition's fetched records in order (the runtime falls back to `handle`
        record by record if this raises; every handler is idempotent, so that is safe)."""
        grants: list[ev.EntitlementGranted] = []
        activity: list[tuple[str, str, datetime]] = []
        for event, _ in items:
            if isinstance(event, ev.EntitlementGranted):
                grants.append(event)
                continue
            if isinstance(event, ev.AuthorizationGranted | ev.TokensRefreshed):
                if event.payload.device_session_id:
                    activity.append((event.enterprise_id, event.payload.device_session_id, event.occurred_at))
                continue
            # Anything else may depend on what came before it (a revocation after a grant): the
            # runs gathered so far are written first.
            await self._flush(grants, activity)
            await self.handle(event)
        await self._flush(grants, activity)

    async def _flush(self, grants: list[ev.EntitlementGranted], activity: list[tuple[str, str, datetime]]) -> None:
        if grants:
            await self._service.entitlements_granted(grants)
            grants.clear()
        if activity:
            await self._service.sso_activities(activity)
            activity.clear()
