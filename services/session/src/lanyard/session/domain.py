"""The session service's domain: the device-session state machine and its timers. Pure, no I/O.

A device session moves ACTIVE → LOCKED → ACTIVE → … → CLOSED; CLOSED is terminal. Every function
here takes the current session and the time (seconds since the epoch, from the caller's clock)
and returns the next session plus the transitions to announce, or None when nothing changes.
Each announced transition that carries a sequence number is exactly one more than the previous
one, so consumers can order and deduplicate a session's events.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, Literal

from lanyard.contracts.versions import DEFAULT_MINIMUM_LOCKER_VERSION, at_least

AuthMode = Literal["passcode", "face"]
TimerKind = Literal["inactivity", "max_session"]
TIMER_KINDS: tuple[TimerKind, ...] = ("inactivity", "max_session")
CheckinReason = Literal[
    "user", "admin", "inactivity", "max_session", "entitlement_revoked", "replaced", "device_retired", "face_failures"
]  # fmt: skip
FaceFailure = Literal["no_match", "not_live", "bad_signature", "stale_challenge", "wrong_subject"]


class State(StrEnum):
    """Where a device session is in its life."""

    ACTIVE = "ACTIVE"
    LOCKED = "LOCKED"
    CLOSED = "CLOSED"


class InvalidTransition(Exception):
    """The requested change does not apply to the session's current state."""

    def __init__(self, state: State, action: str) -> None:
        super().__init__(f"cannot {action} a session that is {state.value}")
        self.state = state
        self.action = action


@dataclass(frozen=True)
class OrgSettings:
    """The enterprise settings this service honours (defaults as `lanyard.policy-config.v1`)."""

    password_autofill_and_sso: bool = False
    require_second_factor: bool = True
    checkin_previous_on_checkout: bool = False
    face_match_threshold: float = 0.9
    face_liveness_threshold: float = 0.9
    face_max_failures: int = 5
    minimum_locker_version: str = DEFAULT_MINIMUM_LOCKER_VERSION


@dataclass(frozen=True)
class LockerOptions:
    """Locker custom options (from `policy.locker_options_changed.v1`); version 0: the defaults."""

    version: int = 0
    hide_password_autofill_prompt: bool = False
    show_sso_status_at_checkout: bool = True


@dataclass(frozen=True)
class ClientReport:
    """What the Locker app says about itself at checkout."""

    locker_version: str | None = None
    sso_extension_installed: bool | None = None


@dataclass(frozen=True)
class Entitlement:
    """What the user's policy says about this session (from `entitlement.granted`)."""

    version: int
    auth_mode: AuthMode
    inactivity_timeout_s: int
    max_session_s: int
    face_allowed: bool
    face_recency_s: int = 300
    policy_id: str = ""

    @property
    def locks_on_inactivity(self) -> bool:
        """Face mode with face allowed locks on inactivity; anything else checks the user in."""
        return self.auth_mode == "face" and self.face_allowed


@dataclass(frozen=True)
class Device:
    """An enrolled shared device and the thumbprint of its EC P-256 key."""

    enterprise_id: str
    device_id: str
    public_jwk: dict[str, str]
    jkt: str
    model: str | None = None
    serial: str | None = None
    mdm_id: str | None = None
    enrolled_at: float = 0.0
    retired: bool = False


@dataclass(frozen=True)
class DeviceSession:
    """One checkout of one device by one user."""

    enterprise_id: str
    device_session_id: str
    device_id: str
    user_id: str
    device_jkt: str
    amr: tuple[str, ...]
    state: State
    sequence: int
    checked_out_at: float
    last_activity_at: float
    default_max_session_s: int
    last_face_at: float | None = None
    face_failures: int = 0
    entitlement: Entitlement | None = None
    closed_reason: CheckinReason | None = None
    closed_at: float | None = None
    locker_version: str | None = None
    sso_extension_installed: bool | None = None
    entitlement_ended: str | None = None
    """Why policy denied or revoked the entitlement (its reason code), when it did."""

    @property
    def live(self) -> bool:
        """Not yet checked in."""
        return self.state is not State.CLOSED

    @property
    def max_session_s(self) -> int:
        """The policy's maximum session length, or the service default until a grant arrives."""
        return self.entitlement.max_session_s if self.entitlement else self.default_max_session_s


@dataclass(frozen=True)
class Transition:
    """One announced change. `sequence` is None only for face failures that do not move state."""

    kind: Literal["checked_out", "locked", "face_verified", "face_failed", "checked_in"]
    at: float
    sequence: int | None
    reason: str | None = None
    unlocked: bool = False
    failures: int = 0
    limit_reached: bool = False


@dataclass(frozen=True)
class Step:
    """The session after a change and what to announce about it, in order."""

    session: DeviceSession
    transitions: tuple[Transition, ...]


def start(
    *,
    enterprise_id: str,
    device_session_id: str,
    device_id: str,
    user_id: str,
    device_jkt: str,
    amr: tuple[str, ...],
    now: float,
    default_max_session_s: int,
) -> Step:
    """A new ACTIVE session: sequence 1, announced as checked out."""
    session = DeviceSession(
        enterprise_id=enterprise_id,
        device_session_id=device_session_id,
        device_id=device_id,
        user_id=user_id,
        device_jkt=device_jkt,
        amr=tuple(amr),
        state=State.ACTIVE,
        sequence=1,
        checked_out_at=now,
        last_activity_at=now,
        default_max_session_s=default_max_session_s,
    )
    return Step(session, (Transition("checked_out", now, 1),))


def _advance(session: DeviceSession, transition: Transition, **changes: object) -> Step:
    """Apply `changes` with the next sequence number, announced by `transition`."""
    seq = session.sequence + 1
    nxt = replace(session, sequence=seq, **changes)  # type: ignore[arg-type]
    return Step(nxt, (replace(transition, sequence=seq),))


def check_in(session: DeviceSession, now: float, reason: CheckinReason) -> Step | None:
    """End the session (from ACTIVE or LOCKED). None when it is already CLOSED: checkin is idempotent."""
    if not session.live:
        return None
    t = Transition("checked_in", now, None, reason=reason)
    return _advance(session, t, state=State.CLOSED, closed_reason=reason, closed_at=now)


def end_entitlement(session: DeviceSession, now: float, why: str) -> Step | None:
    """Policy denied or revoked the entitlement: check the session in, keeping why."""
    step = check_in(session, now, "entitlement_revoked")
    return None if step is None else Step(replace(step.session, entitlement_ended=why), step.transitions)


def locker_refusal(report: ClientReport, org: OrgSettings) -> str | None:
    """Why checkout must refuse this Locker app (None: it may check out). A Locker that does not
    report its release predates reporting it, so it is older than any minimum."""
    if at_least(report.locker_version, org.minimum_locker_version):
        return None
    found = (
        f"this Locker is {report.locker_version}" if report.locker_version else "this Locker did not report its version"
    )
    return f"Update Locker to version {org.minimum_locker_version} or later to check out this device ({found})."


SsoReason = Literal[
    "sso_disabled_for_org", "sso_extension_missing", "entitlement_pending", "entitlement_ended", "checked_in"
]
_SSO_MESSAGES: dict[str, str] = {
    "sso_disabled_for_org": "Password Autofill and SSO is switched off for your organisation.",
    "sso_extension_missing": "The SSO extension profile is not installed on this device; ask IT to deploy it.",
    "entitlement_pending": "Checking whether your account may use single sign-on on this device.",
    "entitlement_ended": "Your account may not use single sign-on on this device",
    "checked_in": "The device is checked in.",
}


def sso_availability(session: DeviceSession, org: OrgSettings) -> dict[str, Any]:
    """Whether SSO works on this device session, and why not: what the Locker app tells the
    clinician at checkout instead of at her first app. `available` is None while policy has not
    decided yet (`status` pending); every reason that applies is listed."""
    reasons: list[str] = []
    if not session.live:
        reasons.append("entitlement_ended" if session.entitlement_ended else "checked_in")
    if not org.password_autofill_and_sso:
        reasons.append("sso_disabled_for_org")
    if session.sso_extension_installed is False:
        reasons.append("sso_extension_missing")
    pending = session.live and session.entitlement is None
    if pending and not reasons:
        reasons.append("entitlement_pending")
    if reasons and reasons != ["entitlement_pending"]:
        status, available = "unavailable", False
    elif pending:
        status, available = "pending", None
    else:
        status, available = "available", True

    def message(reason: str) -> str:
        text = _SSO_MESSAGES[reason]
        if reason == "entitlement_ended" and session.entitlement_ended:
            return f"{text} ({session.entitlement_ended})."
        return text

    return {
        "available": available,
        "status": status,
        "reasons": [{"code": r, "message": message(r)} for r in reasons],
        "denied_because": session.entitlement_ended,
    }


def lock(session: DeviceSession, now: float, reason: Literal["inactivity", "admin"] = "inactivity") -> Step:
    """ACTIVE → LOCKED."""
    if session.state is not State.ACTIVE:
        raise InvalidTransition(session.state, "lock")
    return _advance(session, Transition("locked", now, None, reason=reason), state=State.LOCKED)


def touch(session: DeviceSession, at: float, now: float) -> DeviceSession | None:
    """Record activity at `at` (never later than `now`); only ACTIVE sessions, only forward in time."""
    at = min(at, now)
    if session.state is not State.ACTIVE or at <= session.last_activity_at:
        return None
    return replace(session, last_activity_at=at)


def apply_entitlement(session: DeviceSession, entitlement: Entitlement) -> DeviceSession | None:
    """Store a grant; the highest version wins and a CLOSED session ignores grants."""
    if not session.live:
        return None
    if session.entitlement and session.entitlement.version >= entitlement.version:
        return None
    return replace(session, entitlement=entitlement)


def face_allowed(session: DeviceSession) -> bool:
    """Face verification needs a grant that allows it (the APA licence covers it)."""
    return bool(session.entitlement and session.entitlement.face_allowed)


def judge_face(match_score: float, liveness_score: float, settings: OrgSettings) -> FaceFailure | None:
    """None when both scores reach the enterprise's thresholds; else why the result fails."""
    if liveness_score < settings.face_liveness_threshold:
        return "not_live"
    if match_score < settings.face_match_threshold:
        return "no_match"
    return None


def face_verified(session: DeviceSession, now: float) -> Step:
    """A successful face verification: resets failures and activity; LOCKED → ACTIVE."""
    if not session.live:
        raise InvalidTransition(session.state, "verify a face on")
    unlocked = session.state is State.LOCKED
    return _advance(
        session,
        Transition("face_verified", now, None, unlocked=unlocked),
        state=State.ACTIVE,
        last_face_at=now,
        last_activity_at=max(now, session.last_activity_at),
        face_failures=0,
    )


def face_failed(session: DeviceSession, now: float, reason: FaceFailure, max_failures: int) -> Step:
    """Count a failed face verification; at `max_failures` the session is checked in."""
    if not session.live:
        raise InvalidTransition(session.state, "verify a face on")
    failures = session.face_failures + 1
    limit = failures >= max_failures
    counted = replace(session, face_failures=failures)
    failed = Transition("face_failed", now, None, reason=reason, failures=failures, limit_reached=limit)
    if not limit:
        return Step(counted, (failed,))
    closed = check_in(counted, now, "face_failures")
    assert closed is not None
    return Step(closed.session, (failed, *closed.transitions))


def deadlines(session: DeviceSession) -> dict[TimerKind, float]:
    """When each timer of the session is due; a CLOSED session has none."""
    if not session.live:
        return {}
    due: dict[TimerKind, float] = {"max_session": session.checked_out_at + session.max_session_s}
    if session.state is State.ACTIVE and session.entitlement is not None:
        due["inactivity"] = session.last_activity_at + session.entitlement.inactivity_timeout_s
    return due


def on_timer(session: DeviceSession, kind: TimerKind, now: float) -> Step | None:
    """A timer fired: act if it is really due against the session's current state, else nothing.

    A timer can fire late or stale (activity moved the deadline, the session was locked or closed
    meanwhile); the state decides, so a timer that fires twice acts at most once.
    """
    due = deadlines(session).get(kind)
    if due is None or due > now:
        return None
    if kind == "max_session":
        return check_in(session, now, "max_session")
    assert session.entitlement is not None
    if session.entitlement.locks_on_inactivity:
        return lock(session, now, "inactivity")
    return check_in(session, now, "inactivity")


def replay(session: DeviceSession, recorded: Transition) -> DeviceSession | None:
    """Apply a transition read back from the topic (a rebuild); None when it changes nothing.

    The same transitions as the live path, driven by the record instead of a decision: the
    record's time and sequence are taken as they were announced. A record at or below the
    session's sequence was already applied (a redelivery), and CLOSED stays terminal.
    """
    if not session.live:
        return None
    if recorded.kind == "face_failed":
        # Failures carry no sequence; the record says the count (a later success resets it).
        return replace(session, face_failures=recorded.failures)
    if recorded.sequence is None or recorded.sequence <= session.sequence:
        return None
    try:
        if recorded.kind == "locked":
            reason = "admin" if recorded.reason == "admin" else "inactivity"
            step = lock(session, recorded.at, reason)
        elif recorded.kind == "face_verified":
            step = face_verified(session, recorded.at)
        elif recorded.kind == "checked_in":
            closed = check_in(session, recorded.at, recorded.reason)  # type: ignore[arg-type]
            assert closed is not None  # live, checked above
            step = closed
        else:  # a second checked_out for one session id does not happen; keep what we have
            return None
    except InvalidTransition:
        # A record between was lost (it cannot be, with an idempotent producer, but a rebuild
        # must not stop on it): the state already says what this record says; keep its number.
        return replace(session, sequence=recorded.sequence)
    return replace(step.session, sequence=recorded.sequence)
