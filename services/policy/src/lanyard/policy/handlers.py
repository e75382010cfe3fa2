"""Handlers for the events the policy service consumes.

Two subscriptions (see app.py):

- `on_device_session` (lanyard.device-sessions.v1): checked_out → evaluate and publish granted or
  denied; checked_in → revoked. Idempotent through the session record: a decided session is
  not decided again, and a closed one (tombstone) never again gets a grant.
  `on_device_sessions` takes a partition's fetched batch, split by enterprise: each enterprise's
  consecutive checkouts are decided as one run (one lock, one read, one write), everything else
  in order as above.
- `on_config` (lanyard.policy-config.v1, lanyard.directory.v1, lanyard.app-profiles.v1):
  project the event into Redis (an upsert: idempotent; a record older than the one its item
  last got is refused, so a consumer re-reading behind its commit never regresses an item), then
  re-evaluate the live sessions it may affect — one user's for a user change, the whole
  enterprise's otherwise. A redelivery re-evaluates to the same outcome and publishes nothing.
  Locker options change no entitlement: they are projected only.

Every checkout, and every checkout the session service refused, also records what the device's
Locker app reported (its release, whether its SSO extension is installed) for the readiness table.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lanyard.contracts import Event
from lanyard.contracts import events as ev
from lanyard.policy.domain import REVOCATION_BY_TRIGGER, DeviceReport
from lanyard.policy.ports import ReadModel
from lanyard.policy.service import Entitlements
from lanyard.runtime.consumer import current_record

_TRIGGER: dict[type[Event], str] = {
    ev.UserPolicyUpserted: "user_policy",
    ev.UserPolicyDeleted: "user_policy",
    ev.AppDeploymentUpserted: "app_deployment",
    ev.AppDeploymentDeleted: "app_deployment",
    ev.LicenceUpserted: "licence",
    ev.LicenceDeleted: "licence",
    ev.OrgSettingsChanged: "org_settings",
    ev.CloudConnectionChanged: "cloud_connection",
    ev.UserUpserted: "directory",
    ev.UserDeleted: "directory",
    ev.GroupUpserted: "directory",
    ev.GroupDeleted: "directory",
    ev.AppProfileUpserted: "app_profile",
    ev.AppProfileDeleted: "app_profile",
}
_PROJECTED_ONLY: tuple[type[Event], ...] = (ev.LockerOptionsChanged,)


def device_report(event: Event) -> DeviceReport | None:
    """What a checkout (or a refused one) tells about the device's Locker app."""
    if isinstance(event, ev.DeviceCheckedOut | ev.CheckoutRefused):
        p = event.payload
        refused = isinstance(event, ev.CheckoutRefused)
        return DeviceReport(p.device_id, p.locker_version, p.sso_extension_installed, event.occurred_at, refused)
    return None


class PolicyHandlers:
    """Routes each consumed event to its use case."""

    def __init__(self, store: ReadModel, entitlements: Entitlements) -> None:
        self._store = store
        self._entitlements = entitlements

    async def _record_devices(self, events: Sequence[Event]) -> None:
        by_enterprise: dict[str, list[DeviceReport]] = {}
        for event in events:
            report = device_report(event)
            if report is not None:
                by_enterprise.setdefault(event.enterprise_id, []).append(report)
        for enterprise_id, reports in by_enterprise.items():
            await self._store.record_devices(enterprise_id, reports)

    async def on_device_session(self, event: Event) -> None:
        """Checkout and checkin; other device-session events do not change entitlements."""
        await self._record_devices([event])
        await self._entitle(event)

    async def _entitle(self, event: Event) -> None:
        if isinstance(event, ev.DeviceCheckedOut):
            await self._entitlements.on_checked_out(event)
        elif isinstance(event, ev.DeviceCheckedIn):
            await self._entitlements.on_checked_in(event)

    async def on_device_sessions(self, items: Sequence[tuple[Event, Any]]) -> None:
        """A partition's batch (the runtime's batch handler), one enterprise after another.

        Each enterprise's events keep their order; different enterprises' events share nothing
        (their sessions, seats and locks are their own), so a partition's batch is split by
        enterprise first. Interleaved checkouts of several enterprises (a partition carries
        many) thus still make one run each — one lock, one read, one write — instead of a
        run of one per record."""
        await self._record_devices([event for event, _ in items])
        by_enterprise: dict[str, list[Event]] = {}
        for event, _record in items:
            by_enterprise.setdefault(event.enterprise_id, []).append(event)
        for events in by_enterprise.values():
            await self._entitle_in_order(events)

    async def _entitle_in_order(self, events: Sequence[Event]) -> None:
        """One enterprise's events in order; consecutive checkouts as one run."""
        run: list[ev.DeviceCheckedOut] = []
        for event in events:
            if isinstance(event, ev.DeviceCheckedOut):
                run.append(event)
                continue
            if run:
                await self._entitlements.on_checked_out_many(run)
                run = []
            await self._entitle(event)
        if run:
            await self._entitlements.on_checked_out_many(run)

    async def on_config(self, event: Event) -> None:
        """Project a configuration or directory event, then re-evaluate what it may change."""
        record = current_record()
        offset = record.offset if record is not None else None
        if isinstance(event, _PROJECTED_ONLY):
            await self._store.apply(event, offset)
            return
        trigger = _TRIGGER.get(type(event))
        # An older record of the item than the projection holds (a re-read) re-evaluates nothing.
        if trigger is None or not await self._store.apply(event, offset):
            return
        reason = REVOCATION_BY_TRIGGER[trigger]
        if isinstance(event, ev.UserUpserted | ev.UserDeleted):
            await self._entitlements.reevaluate(event.enterprise_id, reason, user_id=event.payload.user_id)
        else:
            await self._entitlements.reevaluate(event.enterprise_id, reason)
        if isinstance(event, ev.LicenceUpserted | ev.LicenceDeleted):
            await self._entitlements.schedule_licences(event.enterprise_id)
