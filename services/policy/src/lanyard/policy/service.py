"""Use cases of the policy service: they take their ports as parameters.

- `Entitlements`: checkout → grant/deny, checkin → revoke, and re-evaluation of live sessions
  after any configuration or directory change (or a licence starting/ending). Every evaluation
  of one enterprise runs under that enterprise's lock; the event is published first and the
  session record written after the ack, so a crash in between only repeats the same event
  (same version, same content) on redelivery.
- `ConfigCommands`: what the admin API does — publish the policy-config event (actor = the
  admin) and wait, bounded, until our own projection applied it. Configuration reaches Redis
  only by consuming those events (no dual write).
- `CloudConnection`: provisioning codes (the enterprise's superadmin) and establish-trust (only a
  vendor services principal; every attempt, refused ones included, is announced with who made it).
- `LockerOptionsCommands`: versioned Locker custom options.
- `Readiness`: the integration-readiness table and the per-user explanation.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import metadata
from typing import Any, Literal

from lanyard.contracts import Event, Subject, decode_event
from lanyard.contracts import events as ev
from lanyard.policy import domain
from lanyard.policy.domain import Denial, Grant, LiveSession, LockerOptions, RevocationReason, SupportedRelease
from lanyard.policy.ports import Clock, CloudSecrets, EventSink, ReadModel
from lanyard.runtime.logging import get_logger
from lanyard.runtime.settle import raise_first_failure, settle

PRODUCER = "policy"
log = get_logger("lanyard.policy")


def release() -> str:
    """The running release of the policy service."""
    try:
        return metadata.version("lanyard-policy")
    except metadata.PackageNotFoundError:
        return "unknown"


def _subject(session: LiveSession) -> Subject:
    return Subject(user_id=session.user_id, device_id=session.device_id, device_session_id=session.device_session_id)


def _entitlement_event(
    event_class: Any, payload_class: Any, e: str, session: LiveSession, correlation_id: str | None, **fields: Any
) -> Event:
    """An entitlements event about `session`: the envelope and the session's ids every one carries."""
    return event_class(
        enterprise_id=e,
        producer=PRODUCER,
        correlation_id=correlation_id,
        subject=_subject(session),
        payload=payload_class(
            device_session_id=session.device_session_id, device_id=session.device_id, user_id=session.user_id, **fields
        ),
    )


class Entitlements:
    """Turns device sessions and configuration into entitlement events."""

    def __init__(self, store: ReadModel, sink: EventSink, clock: Clock) -> None:
        self._store = store
        self._sink = sink
        self._clock = clock

    async def on_checked_out(self, event: ev.DeviceCheckedOut) -> None:
        """Evaluate a new device session and publish granted or denied (a run of one)."""
        await self.on_checked_out_many([event])

    async def on_checked_out_many(self, events: Sequence[ev.DeviceCheckedOut]) -> None:
        """Evaluate a run of one enterprise's new device sessions, in arrival order, and publish
        granted or denied for each.

        The decisions are taken and saved under the enterprise's lock (seats and versions need
        it) with one read and one write for the whole run, each together with the event that
        announces it; the broker's acknowledgements are awaited after the lock is released, so
        checkouts of one enterprise overlap on the slowest step instead of queueing behind it. If
        a publish fails, the record is handled again and finds its saved announcement (same
        event_id) to publish; downstream, CLOSED is terminal and versions only grow, so an
        announcement that lands late changes nothing it should not.
        """
        e = events[0].enterprise_id
        announcements: list[Event] = []
        async with self._store.lock(e):
            view = await self._store.checkout_view(
                e, [(x.payload.user_id, x.payload.device_session_id) for x in events]
            )
            fresh: list[tuple[LiveSession, str]] = []
            seen: set[str] = set()
            for x in events:
                p = x.payload
                if p.device_session_id in seen or p.device_session_id in view.closed:
                    continue  # a duplicate in the run, or checked in before we saw it (CLOSED is terminal)
                seen.add(p.device_session_id)
                existing = view.existing.get(p.device_session_id)
                if existing is not None and existing.state != "new":
                    saved = view.pending.get(p.device_session_id)
                    if saved is not None:  # decided, not yet acknowledged: announce the same event
                        announcements.append(decode_event(saved))
                    continue
                session = LiveSession(p.device_session_id, p.device_id, p.user_id, tuple(p.amr), p.checked_out_at)
                fresh.append((session, x.correlation_id or x.event_id))
            decisions = domain.evaluate_checkouts(
                [s for s, _ in fresh], view.users, view.snapshot, view.seats, self._clock()
            )
            changes: list[tuple[LiveSession | None, LiveSession, bytes | None]] = []
            for (session, corr), decision in zip(fresh, decisions, strict=True):
                announcement = self._event(e, session, decision, None, corr)
                changes.append(
                    (None, domain.after(session, decision), announcement.to_json() if announcement else None)
                )
                if announcement is not None:
                    announcements.append(announcement)
            if changes:
                await self._store.save_sessions(e, changes)
        results = await settle(self._sink.publish(a) for a in announcements)
        acknowledged = [
            a.payload.device_session_id for a, r in zip(announcements, results, strict=True) if r is None
        ]  # fmt: skip
        await self._store.clear_pending(e, *acknowledged)
        raise_first_failure(results)

    async def on_checked_in(self, event: ev.DeviceCheckedIn) -> None:
        """Close the session for good; publish `revoked` (checked_in) if it held a grant."""
        e, p = event.enterprise_id, event.payload
        async with self._store.lock(e):
            if await self._store.is_closed(e, p.device_session_id):
                return
            session = await self._store.session(e, p.device_session_id)
            if session is not None and session.granted:
                await self._sink.publish(
                    self._revoked(e, session, "checked_in", f"checked in ({p.reason})", event.correlation_id)
                )
            await self._store.close_session(e, p.device_session_id, session)

    async def reevaluate(self, enterprise_id: str, reason: RevocationReason, user_id: str | None = None) -> int:
        """Re-evaluate the enterprise's live sessions (or one user's); returns how many changed."""
        e = enterprise_id
        async with self._store.lock(e):
            sessions = await self._store.live_sessions(e, user_id)
            if not sessions:
                return 0
            users = await self._store.users(e, [s.user_id for s in sessions])
            snapshot = await self._store.snapshot(e)
            holders = await self._store.seat_holders(e)
            apa_holders = await self._store.seat_holders(e, "apa")
            todo = [
                (session, decision)
                for session, decision in domain.reevaluate(
                    sessions, users, snapshot, holders, self._clock(), apa_holders
                )
                if decision.action != "none"
            ]
            # Publish concurrently (each still waits for its ack), then record exactly the ones the
            # broker acknowledged; a failure raises after that, so the retry redoes only the rest.
            results = await settle(self._publish(e, s, d, reason, None) for s, d in todo)
            for (session, decision), result in zip(todo, results, strict=True):
                if not isinstance(result, BaseException):
                    await self._store.save_session(e, session, domain.after(session, decision))
            if todo:
                log.info("re-evaluated live sessions", enterprise_id=e, changed=len(todo), reason=reason)
            raise_first_failure(results)
            return len(todo)

    async def _publish(
        self,
        e: str,
        session: LiveSession,
        decision: domain.Decision,
        reason: RevocationReason | None,
        correlation_id: str | None,
    ) -> None:
        announcement = self._event(e, session, decision, reason, correlation_id)
        if announcement is not None:
            await self._sink.publish(announcement)

    def _event(
        self,
        e: str,
        session: LiveSession,
        decision: domain.Decision,
        reason: RevocationReason | None,
        correlation_id: str | None,
    ) -> Event | None:
        """The event announcing a decision (None for `none`)."""
        outcome = decision.outcome
        if decision.action == "grant":
            assert isinstance(outcome, Grant)
            return _entitlement_event(
                ev.EntitlementGranted, ev.EntitlementGrantedPayload, e, session, correlation_id,
                version=decision.version, apps=outcome.apps, auth_mode=outcome.auth_mode,
                inactivity_timeout_s=outcome.inactivity_timeout_s, max_session_s=outcome.max_session_s,
                face_allowed=outcome.face_allowed, face_recency_s=outcome.face_recency_s, policy_id=outcome.policy_id,
            )  # fmt: skip
        if decision.action == "deny":
            assert isinstance(outcome, Denial)
            return _entitlement_event(
                ev.EntitlementDenied, ev.EntitlementDeniedPayload, e, session, correlation_id,
                reason=outcome.reason, detail=outcome.detail,
            )  # fmt: skip
        if decision.action == "revoke":
            assert isinstance(outcome, Denial)
            return self._revoked(
                e, session, reason or "policy_changed", f"{outcome.reason}: {outcome.detail}", correlation_id
            )
        return None

    @staticmethod
    def _revoked(
        e: str, session: LiveSession, reason: RevocationReason, detail: str, correlation_id: str | None
    ) -> Event:
        return _entitlement_event(
            ev.EntitlementRevoked, ev.EntitlementRevokedPayload, e, session, correlation_id,
            reason=reason, detail=detail[:500],
        )  # fmt: skip

    async def check_licences(self) -> int:
        """Re-evaluate every enterprise whose licences started or ended since the last check."""
        done = 0
        now = self._clock()
        async for enterprise_id in self._store.due_licence_checks(now):
            try:
                await self.reevaluate(enterprise_id, "licence_changed")
            except Exception:
                # We claimed the check; put it back so the next round (or instance) retries it.
                await self._store.schedule_licence_check(enterprise_id, now)
                raise
            await self.schedule_licences(enterprise_id)
            done += 1
        return done

    async def schedule_licences(self, enterprise_id: str) -> None:
        """Remember the next licence boundary of the enterprise (also during the rebuild: the
        check it schedules is itself a decision, refused while the projection is incomplete)."""
        snapshot = await self._store.snapshot(enterprise_id, complete=False)
        await self._store.schedule_licence_check(
            enterprise_id, domain.next_licence_boundary(snapshot.licences, self._clock())
        )


class NotApplied(Exception):
    """The event was acknowledged but the projection did not apply it within the bound."""


class ConfigCommands:
    """Publish configuration changes (answering after the broker ack) and read them back."""

    def __init__(self, store: ReadModel, sink: EventSink, apply_wait_s: float = 5.0) -> None:
        self._store = store
        self._sink = sink
        self._apply_wait_s = apply_wait_s

    async def publish(self, event: Event) -> bool:
        """Publish, then wait (bounded) until our projection applied it; True when it did."""
        await self._sink.publish(event)
        deadline = time.monotonic() + self._apply_wait_s
        while time.monotonic() < deadline:
            if await self._store.was_applied(event.enterprise_id, event.event_id):
                return True
            await asyncio.sleep(0.01)
        log.warning("config event not yet projected", event_id=event.event_id, type=event.type)
        return False


def hash_secret(value: str) -> str:
    """SHA-256 of a high-entropy random secret (codes, client secrets)."""
    return hashlib.sha256(value.encode()).hexdigest()


CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: codes are read aloud and typed


@dataclass(frozen=True)
class IssuedCode:
    """A provisioning code, shown once."""

    code: str
    expires_at: datetime


@dataclass(frozen=True)
class Credentials:
    """The enterprise's cloud credentials, shown once."""

    enterprise_id: str
    client_id: str
    client_secret: str


class TrustRefused(Exception):
    """Establish-trust failed; `why` is wrong, used, expired or none (no code was issued)."""

    def __init__(self, why: str, failed_attempts: int) -> None:
        super().__init__(why)
        self.why = why
        self.failed_attempts = failed_attempts


@dataclass(frozen=True)
class TrustActor:
    """Who attempts to establish trust: a vendor services principal, or an enterprise admin."""

    actor: str
    principal: Literal["services", "enterprise_admin"]


class CloudConnection:
    """Provisioning codes (5 minutes, single use, hashed) and establishing trust.

    Every record of the trust state is whole (the topic is compacted): state, failures, who
    established trust and when, and the last attempt with who made it and how it ended.
    """

    def __init__(
        self,
        store: ReadModel,
        secrets_store: CloudSecrets,
        commands: ConfigCommands,
        clock: Clock,
        code_ttl_s: int = 300,
    ) -> None:
        self._store = store
        self._secrets = secrets_store
        self._commands = commands
        self._clock = clock
        self._ttl = timedelta(seconds=code_ttl_s)

    async def generate_code(self, e: str, actor: str) -> IssuedCode:
        """A new code; any earlier code stops working."""
        code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(12))
        expires_at = self._clock() + self._ttl
        await self._secrets.issue_code(e, hash_secret(code), expires_at)
        current = await self._store.cloud(e)
        state = "established" if current["state"] == "established" else "code_issued"
        await self._commands.publish(self._event(e, actor, state, await self._secrets.failures(e), current))
        return IssuedCode(code, expires_at)

    async def establish_trust(self, e: str, presented_enterprise_id: str, code: str, who: TrustActor) -> Credentials:
        """Redeem the code; on success publish `established` and return fresh credentials once.

        Only a services principal may (the seed: "The cloud connection must be established by
        Imprivata Services"); an enterprise admin's attempt is refused and announced like any other.
        """
        if who.principal != "services":
            return await self._refuse(e, who, "services_only", count=False)
        result = "wrong"
        if presented_enterprise_id == e and code:
            result = await self._secrets.redeem_code(e, hash_secret(code.strip().upper()), self._clock())
        if result != "ok":
            return await self._refuse(e, who, result, count=True)
        client_id = f"ent-{uuid.uuid4()}"
        client_secret = secrets.token_urlsafe(32)
        now = self._clock()
        await self._secrets.store_credentials(e, client_id, hash_secret(client_secret), now)
        attempt = ev.TrustAttempt(at=now, by=who.actor, principal=who.principal, outcome="established")
        current = {**await self._store.cloud(e), "established_by": who.actor, "established_at": now.isoformat()}
        failures = await self._secrets.failures(e)
        await self._commands.publish(self._event(e, who.actor, "established", failures, current, attempt))
        return Credentials(e, client_id, client_secret)

    async def _refuse(self, e: str, who: TrustActor, why: str, count: bool) -> Credentials:
        failures = await self._secrets.count_failure(e) if count else await self._secrets.failures(e)
        attempt = ev.TrustAttempt(
            at=self._clock(),
            by=who.actor,
            principal=who.principal,
            outcome="refused",
            reason=why,  # type: ignore[arg-type]
        )
        current = await self._store.cloud(e)
        await self._commands.publish(self._event(e, who.actor, current["state"], failures, current, attempt))
        log.info("establish trust refused", enterprise_id=e, why=why, failed_attempts=failures, by=who.principal)
        raise TrustRefused(why, failures)

    async def view(self, e: str) -> dict[str, Any]:
        """The visible trust state, who established it, and the last attempt (the superadmin's view)."""
        cloud = await self._store.cloud(e)
        expires = await self._secrets.code_expires_at(e)
        pending = expires is not None and expires > self._clock()
        return {
            "enterprise_id": e,
            "state": cloud["state"],
            "failed_attempts": await self._secrets.failures(e),
            "code_expires_at": expires.isoformat() if pending and expires else None,
            "established_by": cloud.get("established_by"),
            "established_at": cloud.get("established_at"),
            "last_attempt": cloud.get("last_attempt"),
        }

    @staticmethod
    def _event(
        e: str, actor: str, state: str, failures: int, current: dict[str, Any], attempt: ev.TrustAttempt | None = None
    ) -> ev.CloudConnectionChanged:
        last = attempt or (
            ev.TrustAttempt.model_validate(current["last_attempt"]) if current.get("last_attempt") else None
        )
        established_at = current.get("established_at")
        return ev.CloudConnectionChanged(
            enterprise_id=e,
            producer=PRODUCER,
            actor=actor,
            payload=ev.CloudConnectionChangedPayload(
                state=state,  # type: ignore[arg-type]
                failed_attempts=failures,
                established_by=current.get("established_by"),
                established_at=datetime.fromisoformat(established_at) if established_at else None,
                last_attempt=last,
            ),
        )


class VersionConflict(Exception):
    """A change made against a version that is no longer the current one (safe to show)."""


class LockerOptionsCommands:
    """Locker custom options: each change gets the next version, is published, and is applied by
    our projection (the highest version wins, so a late duplicate never undoes a newer change)."""

    def __init__(self, store: ReadModel, commands: ConfigCommands) -> None:
        self._store = store
        self._commands = commands

    async def change(
        self, e: str, wanted: LockerOptions, expected_version: int | None, actor: str
    ) -> tuple[ev.LockerOptionsChanged, bool]:
        """Publish `wanted` as the next version; (the event, whether our projection applied it)."""
        version, current = await self._store.next_locker_options_version(e, expected_version)
        if version < 0:
            raise VersionConflict(f"the Locker options are at version {current}, not {expected_version}: reload them")
        payload = ev.LockerOptionsChangedPayload(
            version=version,
            hide_password_autofill_prompt=wanted.hide_password_autofill_prompt,
            show_sso_status_at_checkout=wanted.show_sso_status_at_checkout,
        )
        event = ev.LockerOptionsChanged(enterprise_id=e, producer=PRODUCER, actor=actor, payload=payload)
        return event, await self._commands.publish(event)


class Readiness:
    """The integration-readiness report and the per-user explanation (the same pure evaluation)."""

    def __init__(
        self,
        store: ReadModel,
        clock: Clock,
        supported: Sequence[SupportedRelease] = (),
        device_window: timedelta = domain.DEVICE_WINDOW,
    ) -> None:
        self._store = store
        self._clock = clock
        self._supported = tuple(supported)
        self._device_window = device_window

    @classmethod
    def from_settings(cls, store: ReadModel, clock: Clock, settings: Any) -> Readiness:
        """Built from the service settings (supported releases, device window)."""
        supported = [
            SupportedRelease(series, datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1))
            for series, day in settings.supported_releases.items()
        ]
        return cls(store, clock, supported, timedelta(seconds=settings.device_activity_window_s))

    async def report(self, e: str) -> list[domain.ReadinessCheck]:
        """The seed's table for one enterprise, plus the MAM settings, prerequisites and blockers."""
        snapshot, users, devices = await asyncio.gather(
            self._store.snapshot(e), self._store.all_users(e), self._store.devices(e)
        )
        return domain.readiness(
            snapshot, self._clock(), release(), self._supported, users, devices, self._device_window
        )

    async def seats(self, e: str) -> dict[str, dict[str, int]]:
        """Seats in use and seats valid now, per licence kind (the console's licence page)."""
        snapshot = await self._store.snapshot(e)
        # The count of seats in use does not depend on the user asked about; no user is named.
        count = await self._store.user_seats(e, "")
        now = self._clock()
        return {
            "sso": {"in_use": count.in_use, "valid": domain.valid_seats("sso", snapshot.licences, now)},
            "apa": {"in_use": count.apa_in_use, "valid": domain.valid_seats("apa", snapshot.licences, now)},
        }

    async def explain(self, e: str, user_id: str, client_id: str | None) -> dict[str, Any]:
        """Why this user can or cannot use SSO (and the app, when given) on a checked-out device.

        Assumes the checkout used a second factor (the Locker flow does), so the answer is about
        configuration, not about how one particular checkout authenticated.
        """
        users = await self._store.users(e, [user_id])
        snapshot = await self._store.snapshot(e)
        seats = (await self._store.user_seats(e, user_id)).seen_by(user_id)
        user = users.get(user_id)
        outcome = domain.evaluate(user, snapshot, seats, self._clock())
        blockers = domain.checkout_blockers(user, snapshot.org) if user is not None else []
        body: dict[str, Any] = {
            "enterprise_id": e, "user_id": user_id, "client_id": client_id, "checkout_blockers": blockers,
        }  # fmt: skip
        if isinstance(outcome, Denial):
            return {**body, "allowed": False, "reason": outcome.reason, "detail": outcome.detail}
        if blockers:
            detail = "the enterprise requires a second factor and the user has none enrolled: enrol TOTP"
            grant = {**outcome.__dict__, "apps": list(outcome.apps)}
            return {**body, "allowed": False, "reason": blockers[0], "detail": detail, "grant": grant}
        grant = {**outcome.__dict__, "apps": list(outcome.apps)}
        if client_id is not None and client_id not in outcome.apps:
            detail = "the app is not deployed to the user, or its profile is missing or disabled"
            return {**body, "allowed": False, "reason": "app_not_deployed", "detail": detail, "grant": grant}
        return {**body, "allowed": True, "reason": None, "detail": "the user would be granted SSO", "grant": grant}
