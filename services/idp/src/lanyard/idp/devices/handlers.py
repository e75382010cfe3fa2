"""The consumer of lanyard.device-sessions.v1 and lanyard.entitlements.v1.

Each event becomes a `model` fact applied to the read model (idempotent: the rules are a
monotonic merge). When a fact closes a device session the IdP revokes in one hop, without
waiting for anything else, and two steps run at once: (1) the CLOSED view is written — the flag
refresh, introspection and new authorizations read — while (2) the OIDC side revokes every grant
of the session and marks it revoked (no new grant may join it). A closing fact closes whatever
else arrives, in any order (CLOSED is terminal), so (2) need not wait for (1). (3) A
back-channel logout is queued for each of its clients while (2)'s announcements are still on
their way to the broker (an app's logout does not wait for their acknowledgement). The view
keeps `revocation_done` unset until (1), (2) and (3) succeeded, so a redelivered record of the
session finishes an interrupted revocation.

A fetched batch is applied together (`handle_batch`): the facts of all its sessions in one Redis
transaction, alongside the revocations of the sessions it closes; the per-record path (`handle`)
is the same code with one event.

Resumable: any failure on the way (Redis, the broker) raises, and the runtime retries the
record until it succeeds (it never dead-letters it: `lanyard.runtime.consumer`). Each retry
runs every step again, each idempotent: (1) is a monotonic merge, (2) returns every session of
the device session again and republishes its own announcements under the same event ids, (3) is
keyed by enterprise, client and sid and remembers a delivered logout, so an app is told once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from lanyard.contracts import Event
from lanyard.contracts import events as ev
from lanyard.idp.devices import domain as model
from lanyard.idp.devices.ports import BackchannelLogouts, DeviceStore, RevokedSession, SessionRevoker
from lanyard.idp.devices.service import ChangeNotifier
from lanyard.runtime.consumer import RecordInfo, RecordRefused
from lanyard.runtime.logging import get_logger
from lanyard.runtime.settle import raise_first_failure, run_all, settle

log = get_logger("lanyard.idp.devices.handlers")

REVOCATIONS_AT_ONCE = 8
"""How many revocations this consumer runs at once, over all its partitions. Each holds Redis
connections (its grants, then its apps' logouts) from a pool of 100 that the IdP's requests
share, and a shift change or a replay fetches hundreds of checkins together: unbounded, they
exhausted the pool and failed the whole batch. A batch that closes more sessions than this
revokes them once the views are written (a replay's are mostly done already), not alongside."""


def to_fact(event: Event) -> tuple[str, model.Fact] | None:
    """(device session id, fact) for the events the read model uses; None for the others."""
    p = event.payload
    match event:
        case ev.DeviceCheckedOut():
            return p.device_session_id, model.CheckedOut(
                sequence=p.sequence,
                user_id=p.user_id,
                device_id=p.device_id,
                device_jkt=p.device_jkt,
                amr=tuple(p.amr),
                auth_time=int(p.checked_out_at.timestamp()),
            )
        case ev.DeviceLocked():
            return p.device_session_id, model.Locked(p.sequence)
        case ev.FaceVerified():
            return p.device_session_id, model.FaceVerified(p.sequence, p.verified_at.timestamp())
        case ev.DeviceCheckedIn():
            return p.device_session_id, model.CheckedIn(p.sequence, p.reason)
        case ev.EntitlementGranted():
            return p.device_session_id, model.Granted(
                version=p.version,
                apps=tuple(p.apps),
                auth_mode=p.auth_mode,
                face_recency_s=p.face_recency_s,
                user_id=p.user_id,
                device_id=p.device_id,
            )
        case ev.EntitlementDenied():
            return p.device_session_id, model.Denied(p.reason)
        case ev.EntitlementRevoked():
            return p.device_session_id, model.Revoked(p.reason)
    return None


class DeviceEventHandler:
    """Applies device-session and entitlement events; revokes when a session closes."""

    def __init__(
        self,
        store: DeviceStore,
        notifier: ChangeNotifier,
        revoker: SessionRevoker,
        logouts: BackchannelLogouts,
    ) -> None:
        self.store = store
        self.notifier = notifier
        self.revoker = revoker
        self.logouts = logouts
        self._revoking = asyncio.Semaphore(REVOCATIONS_AT_ONCE)

    async def handle(self, event: Event) -> None:
        """The consumer entry point (registered with lanyard.runtime.consumer.subscribe)."""
        await self.apply([event])

    async def handle_batch(self, items: Sequence[tuple[Event, RecordInfo]]) -> None:
        """The batch entry point: one partition's records of a fetch, applied together. If it
        raises (a malformed record among them, Redis away), the runtime hands the same records
        to `handle` one by one, which re-applies them idempotently and dead-letters the bad one."""
        await self.apply([event for event, _ in items])

    async def apply(self, events: Sequence[Event]) -> None:
        """Apply the events' facts (in order per session, every session in one Redis
        transaction) and revoke each session a fact of theirs closes alongside; then finish any
        earlier revocation the views say was interrupted."""
        by_session: dict[tuple[str, str], list[model.Fact]] = {}
        closing: dict[tuple[str, str], str] = {}
        for event in events:
            found = to_fact(event)
            if found is None:
                continue
            dsid, fact = found
            if not model.HANDLE_RE.match(dsid):
                # No SSO ever accepts such a handle, so no token can hang on it: poison, not a gap.
                raise RecordRefused("malformed device-session id")
            by_session.setdefault((event.enterprise_id, dsid), []).append(fact)
            if (reason := model.closing_reason(fact)) is not None:
                closing.setdefault((event.enterprise_id, dsid), reason)
        if not by_session:
            return
        sessions = list(by_session)
        if len(closing) > REVOCATIONS_AT_ONCE:
            closing = {}  # a burst or a replay: revoked below, bounded, once the views say so
        # A closing fact closes its session whatever the view holds (CLOSED is terminal), so its
        # grants are revoked while the view is written, not after: introspection, refresh and the
        # logout wait for one Redis step instead of two (docs/performance.md). No grant slips in
        # between: the revocation leaves a marker that no new grant may join.
        results = await settle(
            [
                self.store.apply_many([(eid, dsid, by_session[eid, dsid]) for eid, dsid in sessions]),
                *(self.revoke(eid, dsid, reason, first_only=True) for (eid, dsid), reason in closing.items()),
            ]
        )
        raise_first_failure(results)  # the record is retried whole: every step is idempotent
        outcomes: list[model.Outcome] = results[0]  # type: ignore[assignment]
        began = dict(zip(closing, results[1:], strict=True))
        changed = [(s, o) for s, o in zip(sessions, outcomes, strict=True) if o.changed]
        for (eid, dsid), _ in changed:
            self.notifier.notify(eid, dsid)
        if len(changed) == 1:
            (eid, dsid), outcome = changed[0]
            log.info("device session updated", enterprise_id=eid, device_session_id=dsid, state=outcome.view.state)
        elif changed:
            # One line per batch, not per record: at thousands of records/s the lines were a
            # large share of this consumer's CPU (docs/performance.md).
            log.info("device sessions updated", sessions=len(changed), records=len(events))
        unfinished = [
            (key, o.view.closed_reason or "closed")
            for key, o in zip(sessions, outcomes, strict=True)
            if o.view.state == "CLOSED" and not o.view.revocation_done
        ]
        # A revocation the view says is unfinished (interrupted, or begun by an earlier record,
        # which `first_only` left alone) is finished now; one this batch began is done.
        await run_all(
            self.revoke(eid, dsid, reason) for (eid, dsid), reason in unfinished if not began.get((eid, dsid))
        )
        await run_all(
            (self.store.mark_revocation_done(eid, dsid) for (eid, dsid), _ in unfinished), REVOCATIONS_AT_ONCE
        )

    async def revoke(self, enterprise_id: str, device_session_id: str, reason: str, first_only: bool = False) -> bool:
        """End every OIDC session of a closed device session and queue its back-channel logouts
        (idempotent; `apply` records in the view that it is done once the CLOSED view is written).
        False, with nothing done, when `first_only` and the session was revoked before."""

        async def queue_logouts(sessions: list[RevokedSession]) -> None:
            await self.logouts.enqueue_revoked(enterprise_id, sessions, device_session_id)

        async with self._revoking:
            revoked = await self.revoker.revoke_device_session(
                enterprise_id, device_session_id, reason, queue_logouts, first_only=first_only
            )
        if revoked is None:
            return False
        log.info(
            "device session revoked",
            enterprise_id=enterprise_id,
            device_session_id=device_session_id,
            sessions=len(revoked),
        )
        return True
