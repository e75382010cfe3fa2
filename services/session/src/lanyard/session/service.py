"""Use cases of the session service: enrolment, checkout, face, activity, checkin and the timers.

Every use case that changes state writes the new state and its events atomically through the
`SessionStore` (an outbox), then publishes the events and waits for the broker's ack; an event
whose publish failed stays in the outbox and the relay (`relay_outbox`) sends it later.

A call answers success only once its events are acknowledged (DESIGN §4), retries included: a
retried checkin, checkout, enrolment or retirement that finds its change already made (the
first attempt answered 503 `event_pending`, or its answer was lost) publishes what that attempt
left in the outbox for the device and answers success only after the ack — else 503 again.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from joserfc.errors import JoseError
from joserfc.jwk import ECKey
from prometheus_client import Counter

from lanyard.contracts import Event, Subject
from lanyard.contracts import events as ev
from lanyard.contracts.factors import has_second_factor
from lanyard.runtime.logging import get_logger
from lanyard.runtime.outbox import publish_staged, relay_once
from lanyard.session import domain
from lanyard.session.domain import ClientReport, Device, DeviceSession, Entitlement, LockerOptions, OrgSettings, Step
from lanyard.session.ports import (
    AssertionVerifier,
    Change,
    Clock,
    FaceResultVerifier,
    InvalidFaceResult,
    InvalidProof,
    Mutation,
    ProofVerifier,
    Publisher,
    SessionConflict,
    SessionStore,
)
from lanyard.session.settings import SessionSettings

log = get_logger("lanyard.session")

PRODUCER = "session"
CHECKOUT_AUDIENCE = "lanyard-session"
CHECKOUT_TYP = "checkout+jwt"

CHECKOUTS_REFUSED = Counter(
    "lanyard_checkouts_refused_total", "Checkouts refused before a session existed, by reason", ["reason"]
)


class SessionError(Exception):
    """A refusal the HTTP layer turns into a 4xx (or 503) with a JSON error; `extra` holds
    further fields of the error body an app may use (never secrets)."""

    def __init__(self, status: int, code: str, description: str, extra: dict[str, Any] | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.code = code
        self.description = description
        self.extra = extra or {}


@dataclass(frozen=True)
class EnrolRequest:
    """What an admin enrols: the device's ids and its EC P-256 public key."""

    device_id: str
    public_jwk: dict[str, Any]
    model: str | None = None
    serial: str | None = None
    mdm_id: str | None = None


def public_p256_jwk(jwk: dict[str, Any]) -> tuple[dict[str, str], str]:
    """The public part of an EC P-256 JWK and its RFC 7638 thumbprint; refuses anything else."""
    if not isinstance(jwk, dict) or jwk.get("kty") != "EC" or jwk.get("crv") != "P-256":
        raise SessionError(400, "invalid_key", "public_jwk must be an EC P-256 key")
    if "d" in jwk:
        raise SessionError(400, "invalid_key", "public_jwk must not contain the private key")
    if not all(isinstance(jwk.get(k), str) for k in ("x", "y")):
        raise SessionError(400, "invalid_key", "public_jwk needs x and y")
    try:
        key = ECKey.import_key({"kty": "EC", "crv": "P-256", "x": jwk["x"], "y": jwk["y"]})
    except (JoseError, ValueError, TypeError):
        raise SessionError(400, "invalid_key", "public_jwk is not a valid P-256 point") from None
    public = {k: str(v) for k, v in key.as_dict(private=False).items()}
    return public, key.thumbprint()


def entitlement_from(p: ev.EntitlementGrantedPayload) -> Entitlement:
    """The grant as this service keeps it (live consumption and the rebuild read it the same way)."""
    return Entitlement(
        version=p.version,
        auth_mode=p.auth_mode,
        inactivity_timeout_s=p.inactivity_timeout_s,
        max_session_s=p.max_session_s,
        face_allowed=p.face_allowed,
        face_recency_s=p.face_recency_s,
        policy_id=p.policy_id,
    )


def org_settings_from(p: ev.OrgSettingsChangedPayload) -> OrgSettings:
    """The enterprise settings this service honours, from the policy-config record."""
    return OrgSettings(
        password_autofill_and_sso=p.password_autofill_and_sso,
        require_second_factor=p.require_second_factor,
        checkin_previous_on_checkout=p.checkin_previous_on_checkout,
        face_match_threshold=p.face_match_threshold,
        face_liveness_threshold=p.face_liveness_threshold,
        face_max_failures=p.face_max_failures,
        minimum_locker_version=p.minimum_locker_version,
    )


def locker_options_from(p: ev.LockerOptionsChangedPayload) -> LockerOptions:
    """The Locker options as this service keeps and hands them to the Locker app."""
    return LockerOptions(
        version=p.version,
        hide_password_autofill_prompt=p.hide_password_autofill_prompt,
        show_sso_status_at_checkout=p.show_sso_status_at_checkout,
    )


def new_handle() -> str:
    """A device session's handle: 192 random bits, URL-safe, never starting with "-".

    Admins paste handles into command lines (`lanyard admin force-checkin <handle>`), where a
    leading "-" is read as an option (one handle in 64 did: `No such option`, exit 2)."""
    handle = secrets.token_urlsafe(24)
    while handle.startswith("-"):
        handle = secrets.token_urlsafe(24)
    return handle


def _grant_decision(event: ev.EntitlementGranted) -> Callable[[DeviceSession], Change | None]:
    """The decision that stores a grant on its session (none when it changes nothing)."""
    grant = entitlement_from(event.payload)

    def decide(s: DeviceSession) -> Change | None:
        nxt = domain.apply_entitlement(s, grant)
        return Change((nxt,)) if nxt else None

    return decide


def _touched(session: DeviceSession | None) -> Change | None:
    return Change((session,)) if session else None


def _ts(at: float) -> datetime:
    return datetime.fromtimestamp(at, UTC)


def _iso(at: float | None) -> str | None:
    return None if at is None else _ts(at).isoformat()


ACTIVITY_MEMORY = 100_000
"""Sessions whose latest applied SSO activity one instance remembers (then it starts over)."""


class SessionService:
    """The session service's use cases over its ports."""

    def __init__(
        self,
        *,
        store: SessionStore,
        publisher: Publisher,
        clock: Clock,
        assertions: AssertionVerifier,
        proofs: ProofVerifier,
        faces: FaceResultVerifier,
        settings: SessionSettings,
    ) -> None:
        self.store = store
        self.publisher = publisher
        self.clock = clock
        self.assertions = assertions
        self.proofs = proofs
        self.faces = faces
        self.settings = settings
        # (enterprise, session) → the latest SSO activity this instance applied (see sso_activity).
        self._activity_applied: dict[tuple[str, str], float] = {}

    # ------------------------------------------------------------------ events and publishing

    def _envelope(self, session: DeviceSession, actor: str | None, correlation_id: str | None) -> dict[str, Any]:
        return {
            "enterprise_id": session.enterprise_id,
            "producer": PRODUCER,
            "actor": actor,
            "correlation_id": correlation_id,
            "subject": Subject(
                user_id=session.user_id, device_id=session.device_id, device_session_id=session.device_session_id
            ),
        }

    def _events(self, step: Step, actor: str | None = None, correlation_id: str | None = None) -> tuple[Event, ...]:
        s = step.session
        env = self._envelope(s, actor, correlation_id)
        base = {"device_session_id": s.device_session_id, "device_id": s.device_id, "user_id": s.user_id}
        out: list[Event] = []
        for t in step.transitions:
            at = _ts(t.at)
            if t.kind == "checked_out":
                payload = ev.DeviceCheckedOutPayload(
                    **base, sequence=t.sequence, amr=s.amr, checked_out_at=at, device_jkt=s.device_jkt,
                    locker_version=s.locker_version, sso_extension_installed=s.sso_extension_installed,
                )  # fmt: skip
                out.append(ev.DeviceCheckedOut(**env, occurred_at=at, payload=payload))
            elif t.kind == "locked":
                payload = ev.DeviceLockedPayload(**base, sequence=t.sequence, reason=t.reason)
                out.append(ev.DeviceLocked(**env, occurred_at=at, payload=payload))
            elif t.kind == "face_verified":
                payload = ev.FaceVerifiedPayload(**base, sequence=t.sequence, verified_at=at, unlocked=t.unlocked)
                out.append(ev.FaceVerified(**env, occurred_at=at, payload=payload))
            elif t.kind == "face_failed":
                payload = ev.FaceVerificationFailedPayload(
                    **base, reason=t.reason, failures=t.failures, limit_reached=t.limit_reached
                )
                out.append(ev.FaceVerificationFailed(**env, occurred_at=at, payload=payload))
            else:
                payload = ev.DeviceCheckedInPayload(**base, sequence=t.sequence, reason=t.reason)
                out.append(ev.DeviceCheckedIn(**env, occurred_at=at, payload=payload))
        return tuple(out)

    def _change(self, step: Step | None, actor: str | None = None, correlation_id: str | None = None) -> Change | None:
        if step is None:
            return None
        return Change((step.session,), self._events(step, actor, correlation_id))

    async def _publish(self, events: tuple[Event, ...] | list[Event]) -> None:
        """Publish in order, each acknowledged before the next; leftovers stay in the outbox."""
        try:
            await publish_staged(self.publisher, events, self.settings.publish_timeout_s, self.store.outbox_done)
        except Exception as exc:
            log.warning("publish failed, left in outbox", events=len(events), error=type(exc).__name__)
            raise SessionError(503, "event_pending", "the change is saved; its event will be published") from None

    async def _settle(self, enterprise_id: str, device_id: str) -> None:
        """Publish what earlier calls left unacknowledged for this device (a retry's answer waits
        for it: module docstring)."""
        pending = await self.store.pending_events(enterprise_id, device_id)
        if pending:
            await self._publish(pending)

    async def _mutate(self, eid: str, dsid: str, decide: Any, known: DeviceSession | None = None) -> Change | None:
        change = await self.store.mutate(eid, dsid, decide, known)
        if change is not None:
            await self._publish(change.events)
        return change

    # ------------------------------------------------------------------ devices (admin)

    async def enrol_device(self, enterprise_id: str, request: EnrolRequest, actor: str | None) -> tuple[Device, bool]:
        """Enrol a device (or re-enrol a retired one). Returns the device and whether it is new."""
        public, jkt = public_p256_jwk(request.public_jwk)
        existing = await self.store.get_device(enterprise_id, request.device_id)
        if existing is not None and not existing.retired:
            if existing.jkt == jkt:
                await self._settle(enterprise_id, request.device_id)
                return existing, False
            raise SessionError(409, "device_exists", "the device is enrolled with another key; retire it first")
        device = Device(
            enterprise_id=enterprise_id,
            device_id=request.device_id,
            public_jwk=public,
            jkt=jkt,
            model=request.model,
            serial=request.serial,
            mdm_id=request.mdm_id,
            # At the event's precision (µs), so a device rebuilt from its record reads the same.
            enrolled_at=_ts(self.clock.now()).timestamp(),
        )
        event = ev.DeviceEnrolled(
            enterprise_id=enterprise_id,
            producer=PRODUCER,
            actor=actor,
            occurred_at=_ts(device.enrolled_at),
            subject=Subject(device_id=device.device_id),
            payload=ev.DeviceEnrolledPayload(
                device_id=device.device_id, model=device.model, serial=device.serial, mdm_id=device.mdm_id,
                public_jwk=public,
            ),
        )  # fmt: skip
        await self.store.put_device(device, [event])
        await self._publish([event])
        return device, True

    async def list_devices(self, enterprise_id: str) -> list[Device]:
        """Every device of the enterprise, retired ones included."""
        return await self.store.list_devices(enterprise_id)

    async def retire_device(self, enterprise_id: str, device_id: str, actor: str | None) -> Device:
        """Retire a device: its live session is checked in (device_retired) first."""
        device = await self.store.get_device(enterprise_id, device_id)
        if device is None:
            raise SessionError(404, "device_not_found", "no such device")
        if device.retired:
            await self._settle(enterprise_id, device_id)
            return device
        now = self.clock.now()
        current = await self.store.current_session_id(enterprise_id, device_id)
        if current:
            await self._mutate(
                enterprise_id, current, lambda s: self._change(domain.check_in(s, now, "device_retired"), actor)
            )
        retired = replace(device, retired=True)
        event = ev.DeviceRetired(
            enterprise_id=enterprise_id,
            producer=PRODUCER,
            actor=actor,
            occurred_at=_ts(now),
            subject=Subject(device_id=device_id),
            payload=ev.DeviceRetiredPayload(device_id=device_id),
        )
        await self.store.put_device(retired, [event])
        await self._publish([event])
        return retired

    # ------------------------------------------------------------------ device authentication

    async def authenticate_device(
        self, enterprise_id: str, device_id: str, proof: str | None, method: str, url: str
    ) -> Device:
        """The enrolled, active device whose key signed `proof` over this method and URL."""
        device = await self.store.get_device(enterprise_id, device_id)
        if device is None:
            raise SessionError(404, "device_not_found", "no such device")
        if device.retired:
            raise SessionError(409, "device_retired", "the device is retired")
        await self._verify_proof(enterprise_id, proof, method, url, device.jkt)
        return device

    async def authenticate_session(
        self, enterprise_id: str, device_session_id: str, proof: str | None, method: str, url: str
    ) -> DeviceSession:
        """The session behind a handle, proven by its device's key (the handle alone is not enough)."""
        if not proof:
            raise SessionError(401, "invalid_proof", "a Device-Proof header is required")
        # What the proof says about itself is checked first, so only a validly signed proof for
        # this request marks its jti; the enrolled key is read with the mark, in one round trip.
        try:
            checked = self.proofs.check(proof, method=method, url=url, handle=device_session_id)
            session, first_use = await self.store.get_session_marking_proof(
                enterprise_id, device_session_id, checked.replay_key, checked.ttl_s
            )
            if session is None:
                raise SessionError(404, "session_not_found", "no such device session")
            checked.accept(session.device_jkt, first_use)
        except InvalidProof as exc:
            raise SessionError(401, "invalid_proof", f"device proof refused: {exc}") from None
        return session

    async def _verify_proof(
        self, enterprise_id: str, proof: str | None, method: str, url: str, jkt: str, handle: str | None = None
    ) -> dict[str, Any]:
        if not proof:
            raise SessionError(401, "invalid_proof", "a Device-Proof header is required")
        try:
            return await self.proofs.verify(
                proof, enterprise_id=enterprise_id, method=method, url=url, expected_jkt=jkt, handle=handle
            )
        except InvalidProof as exc:
            raise SessionError(401, "invalid_proof", f"device proof refused: {exc}") from None

    # ------------------------------------------------------------------ checkout

    async def checkout(
        self,
        device: Device,
        assertion: str,
        correlation_id: str | None = None,
        report: ClientReport | None = None,
    ) -> DeviceSession:
        """Check the device out to the assertion's user; answers after `checked_out` was acknowledged.

        A Locker app older than the enterprise's minimum (or one that does not say its release)
        is refused with `locker_update_required`, after the refusal was announced (audited) and
        counted; the assertion is spent either way, so the user signs in again after updating.
        """
        report = report or ClientReport()
        eid = device.enterprise_id
        try:
            claims = await self.assertions.verify(
                assertion, enterprise_id=eid, audience=CHECKOUT_AUDIENCE, typ=CHECKOUT_TYP
            )
        except Exception as exc:  # the verifier's InvalidToken, whatever its module
            raise SessionError(401, "invalid_assertion", f"checkout assertion refused: {exc}") from None
        if claims.get("device_id") != device.device_id:
            raise SessionError(403, "device_mismatch", "the assertion was issued for another device")
        user_id, jti, amr = claims.get("sub"), claims.get("jti"), claims.get("amr") or []
        if not isinstance(user_id, str) or not user_id or not isinstance(jti, str) or not jti:
            raise SessionError(401, "invalid_assertion", "the assertion lacks sub or jti")
        if not isinstance(amr, list) or not all(isinstance(m, str) for m in amr):
            raise SessionError(401, "invalid_assertion", "amr must be a list of strings")
        org = await self.store.get_org_settings(eid)
        if org.require_second_factor and not has_second_factor(amr):
            raise SessionError(403, "second_factor_required", "the enterprise requires a second factor")
        exp = claims.get("exp")
        ttl = max(int(exp - self.clock.now()) if isinstance(exp, int | float) else 0, 0) + 120
        if not await self.store.first_use(eid, "assertion", jti, ttl):
            retried = await self._retried_checkout(device, user_id)
            if retried is None:
                raise SessionError(401, "assertion_replayed", "the checkout assertion was already used")
            return retried
        refusal = domain.locker_refusal(report, org)
        if refusal is not None:
            await self._refuse_checkout(device, user_id, report, org, correlation_id)
            raise SessionError(
                403, "locker_update_required", refusal, {"minimum_locker_version": org.minimum_locker_version}
            )

        now = self.clock.now()
        dsid = new_handle()

        def decide(previous: DeviceSession | None) -> Change:
            sessions: list[DeviceSession] = []
            events: list[Event] = []
            if previous is not None and previous.live:
                if not org.checkin_previous_on_checkout:
                    raise SessionConflict(previous.device_session_id)
                closed = domain.check_in(previous, now, "replaced")
                assert closed is not None
                sessions.append(closed.session)
                events += self._events(closed, actor=user_id, correlation_id=correlation_id)
            step = domain.start(
                enterprise_id=eid,
                device_session_id=dsid,
                device_id=device.device_id,
                user_id=user_id,
                device_jkt=device.jkt,
                amr=tuple(amr),
                now=now,
                default_max_session_s=self.settings.default_max_session_s,
            )
            reported = replace(
                step.session,
                locker_version=report.locker_version,
                sso_extension_installed=report.sso_extension_installed,
            )
            step = Step(reported, step.transitions)
            sessions.append(step.session)
            events += self._events(step, actor=user_id, correlation_id=correlation_id)
            return Change(tuple(sessions), tuple(events))

        try:
            change = await self.store.open(eid, device.device_id, decide)
        except SessionConflict:
            raise SessionError(409, "device_checked_out", "the device is already checked out") from None
        await self._publish(change.events)
        log.info("checked out", enterprise_id=eid, device_id=device.device_id, device_session_id=dsid)
        return change.sessions[-1]

    async def _retried_checkout(self, device: Device, user_id: str) -> DeviceSession | None:
        """The session a replayed assertion already opened, once its events are acknowledged.

        The Locker app retries a checkout whose answer it did not get (503 event_pending, a lost
        connection): the device proof was checked again, the assertion names this device and
        user, and the device's live session is that user's, so this is the same checkout — not
        a new one. Anything else is a replay."""
        eid = device.enterprise_id
        current = await self.store.current_session_id(eid, device.device_id)
        session = await self.store.get_session(eid, current) if current else None
        if session is None or not session.live or session.user_id != user_id:
            return None
        await self._settle(eid, device.device_id)
        return session

    async def _refuse_checkout(
        self, device: Device, user_id: str, report: ClientReport, org: OrgSettings, correlation_id: str | None
    ) -> None:
        """Announce (through the outbox, so it is never lost) and count a refused checkout."""
        event = ev.CheckoutRefused(
            enterprise_id=device.enterprise_id,
            producer=PRODUCER,
            actor=user_id,
            correlation_id=correlation_id,
            occurred_at=_ts(self.clock.now()),
            subject=Subject(user_id=user_id, device_id=device.device_id),
            payload=ev.CheckoutRefusedPayload(
                device_id=device.device_id,
                user_id=user_id,
                reason="locker_update_required",
                locker_version=report.locker_version,
                minimum_locker_version=org.minimum_locker_version,
                sso_extension_installed=report.sso_extension_installed,
            ),
        )
        CHECKOUTS_REFUSED.labels(reason="locker_update_required").inc()
        log.info(
            "checkout refused", enterprise_id=device.enterprise_id, device_id=device.device_id,
            reason="locker_update_required", locker_version=report.locker_version,
        )  # fmt: skip
        await self.store.park([event])
        await self._publish([event])

    # ------------------------------------------------------------------ Locker: activity, face, checkin

    async def heartbeat(self, session: DeviceSession) -> DeviceSession:
        """Locker activity: resets the inactivity timer of an ACTIVE session."""
        if not session.live:
            raise SessionError(409, "session_closed", "the device session is checked in")
        now = self.clock.now()
        change = await self.store.mutate(
            session.enterprise_id,
            session.device_session_id,
            lambda s: _touched(domain.touch(s, now, now)),
            session,
        )
        if change is None:
            return await self.view_session(session)
        return change.sessions[0]

    async def view_session(self, session: DeviceSession) -> DeviceSession:
        """The latest stored state of a session."""
        latest = await self.store.get_session(session.enterprise_id, session.device_session_id)
        return latest or session

    async def check_in(
        self, session: DeviceSession, reason: domain.CheckinReason, actor: str | None = None
    ) -> DeviceSession:
        """End a session (idempotent: an already CLOSED session is returned as it is, once every
        event of its device is acknowledged — a retry after 503 event_pending waits for its ack)."""
        now = self.clock.now()
        change = await self._mutate(
            session.enterprise_id,
            session.device_session_id,
            lambda s: self._change(domain.check_in(s, now, reason), actor),
            session,
        )
        if change is not None:
            # This call made the change and its event is acknowledged (else 503 above): what an
            # earlier call left pending is the relay's, and the answer waits for no extra read.
            return change.sessions[0]
        await self._settle(session.enterprise_id, session.device_id)
        latest = await self.store.get_session(session.enterprise_id, session.device_session_id)
        if latest is None:
            # The session was read a moment ago and is gone now: the store lost it (a Redis
            # flushed under us; the restart rebuilds it from Kafka). Saying "checked in" here
            # would leave the clinician's apps signed in with nothing on the broker (soak).
            raise SessionError(503, "temporarily_unavailable", "the session's state is being restored; retry")
        return latest

    async def force_check_in(self, enterprise_id: str, device_session_id: str, actor: str) -> DeviceSession:
        """An admin ends a session."""
        session = await self.store.get_session(enterprise_id, device_session_id)
        if session is None:
            raise SessionError(404, "session_not_found", "no such device session")
        return await self.check_in(session, "admin", actor)

    async def face_challenge(self, session: DeviceSession) -> tuple[str, float]:
        """A fresh single-use challenge for the face provider, and when it expires."""
        self._require_face(session)
        challenge = secrets.token_urlsafe(32)
        ttl = self.settings.face_challenge_ttl_s
        await self.store.put_challenge(session.enterprise_id, challenge, session.device_session_id, ttl)
        return challenge, self.clock.now() + ttl

    def _require_face(self, session: DeviceSession) -> None:
        if not session.live:
            raise SessionError(409, "session_closed", "the device session is checked in")
        if not domain.face_allowed(session):
            raise SessionError(403, "face_not_allowed", "face authentication is not allowed for this session")

    async def face_result(self, session: DeviceSession, result: str) -> tuple[DeviceSession, domain.Transition]:
        """Judge a signed face result; returns the session after it and the face transition."""
        self._require_face(session)
        eid, dsid = session.enterprise_id, session.device_session_id
        org = await self.store.get_org_settings(eid)
        failure: domain.FaceFailure | None
        try:
            verified = self.faces.verify(result, expected_jkt=session.device_jkt)
        except InvalidFaceResult:
            failure = "bad_signature"
        else:
            owner = await self.store.take_challenge(eid, verified.challenge)
            if owner != dsid:
                failure = "stale_challenge"
            elif verified.subject != session.user_id:
                failure = "wrong_subject"
            else:
                failure = domain.judge_face(verified.match_score, verified.liveness_score, org)
        now = self.clock.now()

        steps: list[Step] = []

        def decide(s: DeviceSession) -> Change | None:
            if failure is None:
                step = domain.face_verified(s, now)
            else:
                step = domain.face_failed(s, now, failure, org.face_max_failures)
            steps.append(step)  # the store may retry on a concurrent write: the last decision is the one written
            return self._change(step, s.user_id)

        try:
            await self._mutate(eid, dsid, decide, session)
        except domain.InvalidTransition:
            raise SessionError(409, "session_closed", "the device session is checked in") from None
        return steps[-1].session, steps[-1].transitions[0]

    # ------------------------------------------------------------------ consumed events

    async def entitlement_granted(self, event: ev.EntitlementGranted) -> None:
        """Store the grant on its session (latest version wins; CLOSED sessions ignore it)."""
        await self.store.mutate(event.enterprise_id, event.payload.device_session_id, _grant_decision(event))

    async def entitlements_granted(self, events: Sequence[ev.EntitlementGranted]) -> None:
        """`entitlement_granted` for several grants, in order, in one write of the store."""
        items = [(e.enterprise_id, e.payload.device_session_id, _grant_decision(e)) for e in events]
        await self.store.mutate_many(items)

    async def entitlement_ended(self, event: ev.EntitlementRevoked | ev.EntitlementDenied) -> None:
        """A revoked or denied entitlement checks the session in (entitlement_revoked), keeping
        why, so the Locker app can tell the clinician."""
        now = self.clock.now()
        why = event.payload.reason
        await self._mutate(
            event.enterprise_id,
            event.payload.device_session_id,
            lambda s: self._change(
                domain.end_entitlement(s, now, why), event.actor, event.correlation_id or event.event_id
            ),
        )

    async def check_in_ended(self, enterprise_id: str, device_session_id: str) -> None:
        """Check in a session whose entitlement ended while its checkin was lost (the rebuild)."""
        session = await self.store.get_session(enterprise_id, device_session_id)
        if session is not None:
            await self.check_in(session, "entitlement_revoked")

    async def sso_activity(self, enterprise_id: str, device_session_id: str, at: datetime) -> None:
        """SSO at the IdP counts as activity (monotonic: a redelivery changes nothing).

        Activity is kept to `activity_resolution_s`: an app refreshing or signing in again within
        that time of activity this instance already applied moves no deadline, so bursts of SSO
        cost one Redis update, not one each. (A session's events share a partition, so one
        instance sees them all; after a rebalance the new owner simply applies the first one.)
        """
        await self.sso_activities([(enterprise_id, device_session_id, at)])

    async def sso_activities(self, activities: Sequence[tuple[str, str, datetime]]) -> None:
        """`sso_activity` for several (enterprise_id, device_session_id, at), in one store write."""
        now, resolution = self.clock.now(), self.settings.activity_resolution_s
        applying: dict[tuple[str, str], float] = {}  # this call's, kept once written
        items: list[Mutation] = []
        for enterprise_id, device_session_id, at in activities:
            key, when = (enterprise_id, device_session_id), at.timestamp()
            applied = applying.get(key, self._activity_applied.get(key))
            if applied is not None and when < applied + resolution:
                continue
            items.append((enterprise_id, device_session_id, lambda s, when=when: _touched(domain.touch(s, when, now))))
            applying[key] = max(when, applied or when)
        if not items:
            return
        await self.store.mutate_many(items)
        if len(self._activity_applied) + len(applying) > ACTIVITY_MEMORY:
            self._activity_applied.clear()
        self._activity_applied.update(applying)

    async def org_settings_changed(self, event: ev.OrgSettingsChanged) -> None:
        """Keep the enterprise's settings (the compacted topic's latest record wins)."""
        await self.store.put_org_settings(event.enterprise_id, org_settings_from(event.payload))

    async def locker_options_changed(self, event: ev.LockerOptionsChanged) -> None:
        """Keep the enterprise's Locker options (the highest version wins)."""
        await self.store.put_locker_options(event.enterprise_id, locker_options_from(event.payload))

    async def locker_view(self, session: DeviceSession) -> dict[str, Any]:
        """What the Locker app reads of its session: the session, whether SSO is available and
        why not, and the enterprise's Locker options (applied without a separate call)."""
        org, options = await self.store.get_view_settings(session.enterprise_id)
        return session_view(session, org, options)

    # ------------------------------------------------------------------ timers and relay

    async def fire_due_timers(self, limit: int = 200) -> int:
        """Fire every timer due now; each claimed by exactly one instance. Returns how many acted."""
        now = self.clock.now()
        refs = await self.store.claim_due_timers(now, self.settings.timer_lease_s, limit)
        acted = 0
        for ref in refs:
            kind = ref.kind
            try:
                change = await self._mutate(
                    ref.enterprise_id,
                    ref.device_session_id,
                    lambda s, kind=kind: self._change(domain.on_timer(s, kind, now)),
                )
            except SessionError:
                continue  # saved, event pending in the outbox: the relay publishes it
            acted += change is not None
        return acted

    async def relay_outbox(self, limit: int = 200) -> int:
        """Publish events whose acknowledgement is not recorded (the runtime's relay). Returns how
        many were acknowledged; raises after putting the rest back when the broker fails."""
        return await relay_once(
            self.store,
            self.publisher,
            self.clock.now(),
            lease_s=self.settings.outbox_lease_s,
            timeout_s=self.settings.publish_timeout_s,
            retry_s=self.settings.outbox_interval_s,
            limit=limit,
        )

    async def org_settings(self, enterprise_id: str) -> OrgSettings:
        """The enterprise's settings as last received."""
        return await self.store.get_org_settings(enterprise_id)


def session_view(session: DeviceSession, org: OrgSettings, options: LockerOptions | None = None) -> dict[str, Any]:
    """What the Locker app and admins see of a session: ids, state, timeouts, face recency, what
    the Locker reported, whether SSO is available (and why not), and the Locker options."""
    due = domain.deadlines(session)
    ent = session.entitlement
    return {
        "device_session_id": session.device_session_id,
        "device_id": session.device_id,
        "user_id": session.user_id,
        "state": session.state.value,
        "sequence": session.sequence,
        "amr": list(session.amr),
        "checked_out_at": _iso(session.checked_out_at),
        "last_activity_at": _iso(session.last_activity_at),
        "last_face_verification_at": _iso(session.last_face_at),
        "face_failures": session.face_failures,
        "auth_mode": ent.auth_mode if ent else None,
        "face_allowed": ent.face_allowed if ent else False,
        "face_recency_s": ent.face_recency_s if ent else None,
        "inactivity_timeout_s": ent.inactivity_timeout_s if ent else None,
        "max_session_s": session.max_session_s,
        "entitlement_version": ent.version if ent else None,
        "inactivity_deadline": _iso(due.get("inactivity")),
        "max_session_deadline": _iso(due.get("max_session")),
        "closed_reason": session.closed_reason,
        "closed_at": _iso(session.closed_at),
        "sso_enabled": org.password_autofill_and_sso,
        "locker_version": session.locker_version,
        "sso_extension_installed": session.sso_extension_installed,
        "sso": domain.sso_availability(session, org),
        "locker_options": dataclasses.asdict(options) if options is not None else None,
    }
