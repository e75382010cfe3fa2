"""Pure rules of the IdP's device-session read model: no I/O, no clock, no randomness.

One `SessionView` per (enterprise, device session). Facts come from two topics that are not
ordered against each other (device sessions keyed by device, entitlements by device session),
and every record may be delivered twice. The rules make the view a monotonic merge:

- CLOSED is terminal: once a checkin, an entitlement revocation or a denial was seen, nothing
  changes the view again (a grant arriving after the checkin is ignored).
- A device-session transition applies only with a higher `sequence` than the one recorded; the
  state is the one the highest-sequence transition implies.
- A grant applies only with a higher entitlement `version`.
- The identity fixed at checkout (user, device, device key thumbprint, amr, auth time) is filled
  in whenever the checkout is seen, and never changed afterwards.
- The last face verification time only grows.

Without a closing fact the result is therefore the same for every order and any duplication of
the facts; with one, the state is CLOSED whatever the order.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

State = Literal["PENDING", "ACTIVE", "LOCKED", "CLOSED"]
"""PENDING: known only from an entitlement so far (its checkout has not been seen yet)."""

HANDLE_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
"""What a device-session handle may look like; anything else is refused before any look-up."""


def sid_for(enterprise_id: str, device_session_id: str) -> str:
    """The OIDC session id (`sid`) of a device session: stable, shared by every app on the device.

    Derived, not stored, so every instance and every side of the IdP agrees on it; one-way, so a
    relying party that sees the sid never learns the device-session handle."""
    digest = hashlib.sha256(f"lanyard-device-sid\x00{enterprise_id}\x00{device_session_id}".encode()).digest()
    return "ds_" + base64.urlsafe_b64encode(digest[:24]).decode().rstrip("=")


# ------------------------------------------------------------------------------------- facts


@dataclass(frozen=True)
class CheckedOut:
    sequence: int
    user_id: str
    device_id: str
    device_jkt: str
    amr: tuple[str, ...]
    auth_time: int


@dataclass(frozen=True)
class Locked:
    sequence: int


@dataclass(frozen=True)
class FaceVerified:
    sequence: int
    verified_at: float


@dataclass(frozen=True)
class CheckedIn:
    sequence: int
    reason: str


@dataclass(frozen=True)
class Granted:
    version: int
    apps: tuple[str, ...]
    auth_mode: str
    face_recency_s: int
    user_id: str
    device_id: str


@dataclass(frozen=True)
class Denied:
    reason: str


@dataclass(frozen=True)
class Revoked:
    reason: str


Fact = CheckedOut | Locked | FaceVerified | CheckedIn | Granted | Denied | Revoked

# -------------------------------------------------------------------------------------- view


@dataclass(frozen=True)
class SessionView:
    """What the IdP knows about one device session."""

    state: State = "PENDING"
    sequence: int = 0
    user_id: str | None = None
    device_id: str | None = None
    device_jkt: str | None = None
    amr: tuple[str, ...] = ()
    auth_time: int | None = None
    face_verified_at: float | None = None
    ent_version: int = 0
    apps: tuple[str, ...] = ()
    auth_mode: str | None = None
    face_recency_s: int | None = None
    closed_reason: str | None = None
    denial: str | None = None
    revocation_done: bool = False

    @property
    def checked_out(self) -> bool:
        """The checkout has been seen (identity and device key are known)."""
        return self.device_jkt is not None

    @property
    def granted(self) -> bool:
        """An entitlement grant has been seen."""
        return self.ent_version > 0


@dataclass(frozen=True)
class Outcome:
    """The view after one fact; `changed` when it differs, `closed` when this fact closed it."""

    view: SessionView
    changed: bool
    closed: bool


def _close(view: SessionView, reason: str, *, sequence: int = 0, denial: str | None = None) -> SessionView:
    return replace(
        view,
        state="CLOSED",
        sequence=max(view.sequence, sequence),
        closed_reason=reason,
        denial=denial,
        revocation_done=False,
    )


def _advance(view: SessionView, sequence: int, state: State) -> SessionView:
    if sequence <= view.sequence:
        return view
    return replace(view, sequence=sequence, state=state)


def closing_reason(fact: Fact) -> str | None:
    """The `closed_reason` a closing fact (checkin, entitlement denied or revoked) gives a view;
    None for the others. Such a fact closes its session whatever it is applied to: CLOSED is
    terminal, so no other fact, in any order, can keep the session open."""
    match fact:
        case CheckedIn():
            return f"checked_in:{fact.reason}"
        case Denied():
            return f"entitlement_denied:{fact.reason}"
        case Revoked():
            return f"entitlement_revoked:{fact.reason}"
    return None


def apply(view: SessionView | None, fact: Fact) -> Outcome:
    """The view after `fact` (pure; the same inputs always give the same outcome)."""
    before = view or SessionView()
    if before.state == "CLOSED":
        return Outcome(before, changed=False, closed=False)
    if (reason := closing_reason(fact)) is not None:
        sequence = fact.sequence if isinstance(fact, CheckedIn) else 0
        denial = fact.reason if isinstance(fact, Denied) else None
        return Outcome(_close(before, reason, sequence=sequence, denial=denial), changed=True, closed=True)
    after = before
    match fact:
        case CheckedOut():
            if not after.checked_out:
                after = replace(
                    after,
                    user_id=after.user_id or fact.user_id,
                    device_id=after.device_id or fact.device_id,
                    device_jkt=fact.device_jkt,
                    amr=fact.amr,
                    auth_time=fact.auth_time,
                )
            after = _advance(after, fact.sequence, "ACTIVE")
        case Locked():
            after = _advance(after, fact.sequence, "LOCKED")
        case FaceVerified():
            if after.face_verified_at is None or fact.verified_at > after.face_verified_at:
                after = replace(after, face_verified_at=fact.verified_at)
            after = _advance(after, fact.sequence, "ACTIVE")
        case Granted():
            if fact.version > after.ent_version:
                after = replace(
                    after,
                    ent_version=fact.version,
                    apps=fact.apps,
                    auth_mode=fact.auth_mode,
                    face_recency_s=fact.face_recency_s,
                    user_id=after.user_id or fact.user_id,
                    device_id=after.device_id or fact.device_id,
                )
    return Outcome(after, changed=after != before, closed=False)


def apply_in_order(view: SessionView | None, facts: Sequence[Fact]) -> Outcome:
    """`apply` over one session's facts in order (a consumer's batch): the last view, `changed`
    or `closed` if any of the steps was."""
    outcome = Outcome(view or SessionView(), changed=False, closed=False)
    changed = closed = False
    for fact in facts:
        outcome = apply(view, fact)
        view = outcome.view
        changed, closed = changed or outcome.changed, closed or outcome.closed
    return Outcome(outcome.view, changed=changed, closed=closed)


def apply_all(view: SessionView | None, facts: list[Fact]) -> SessionView | None:
    """Fold `apply` over `facts` (for tests and rebuilds)."""
    return apply_in_order(view, facts).view if facts else view


# ------------------------------------------------------------------------ storage form


def to_fields(view: SessionView) -> dict[str, str]:
    """The view as a flat string mapping (a Redis hash); empty values are left out."""
    out: dict[str, str] = {"state": view.state, "sequence": str(view.sequence), "ent_version": str(view.ent_version)}
    for name in ("user_id", "device_id", "device_jkt", "auth_mode", "closed_reason", "denial"):
        value = getattr(view, name)
        if value is not None:
            out[name] = value
    if view.auth_time is not None:
        out["auth_time"] = str(view.auth_time)
    if view.face_verified_at is not None:
        out["face_verified_at"] = repr(view.face_verified_at)
    if view.face_recency_s is not None:
        out["face_recency_s"] = str(view.face_recency_s)
    out["amr"] = json.dumps(list(view.amr))
    out["apps"] = json.dumps(list(view.apps))
    out["revocation_done"] = "1" if view.revocation_done else "0"
    return out


ACTIVITY_FIELDS = ("state", "device_jkt")
"""The stored fields `is_active` decides on (`state`, and `device_jkt` present = checked out):
the small read of the introspection and UserInfo paths."""


def activity(fields: dict[str, str | None]) -> tuple[str | None, bool]:
    """(state, checked out) from the `ACTIVITY_FIELDS` of a stored view (missing = None)."""
    return fields.get("state"), fields.get("device_jkt") is not None


def from_fields(fields: dict[str, str]) -> SessionView | None:
    """The inverse of `to_fields`; None for an empty mapping (an unknown session)."""
    if not fields:
        return None
    state = fields.get("state", "PENDING")
    if state not in ("PENDING", "ACTIVE", "LOCKED", "CLOSED"):
        state = "CLOSED"  # an unreadable state must never grant anything
    return SessionView(
        state=state,  # type: ignore[arg-type]
        sequence=int(fields.get("sequence", "0")),
        user_id=fields.get("user_id"),
        device_id=fields.get("device_id"),
        device_jkt=fields.get("device_jkt"),
        amr=tuple(json.loads(fields.get("amr", "[]"))),
        auth_time=int(fields["auth_time"]) if "auth_time" in fields else None,
        face_verified_at=float(fields["face_verified_at"]) if "face_verified_at" in fields else None,
        ent_version=int(fields.get("ent_version", "0")),
        apps=tuple(json.loads(fields.get("apps", "[]"))),
        auth_mode=fields.get("auth_mode"),
        face_recency_s=int(fields["face_recency_s"]) if "face_recency_s" in fields else None,
        closed_reason=fields.get("closed_reason"),
        denial=fields.get("denial"),
        revocation_done=fields.get("revocation_done") == "1",
    )


# ----------------------------------------------------------------------- the SSO decision


@dataclass(frozen=True)
class Allow:
    pass


@dataclass(frozen=True)
class Wait:
    """Not decidable yet: the checkout or the grant may still be in flight."""

    why: str


@dataclass(frozen=True)
class Refuse:
    error: str
    description: str
    action: str | None = None


Decision = Allow | Wait | Refuse


def decide(view: SessionView | None, client_id: str, now: float) -> Decision:
    """May the SSO extension sign the user into `client_id` on this device session now?

    The device proof and the org setting are checked by the caller (they need I/O); this is the
    rest of DESIGN §2's checks, in an order that gives the extension the most useful answer."""
    if view is None or not view.checked_out:
        if view is not None and view.state == "CLOSED":
            return _refuse_closed(view)
        return Wait("device session not known yet")
    if view.state == "CLOSED":
        return _refuse_closed(view)
    if view.state == "LOCKED":
        return Refuse("interaction_required", "device session is locked", "face_verification")
    if not view.granted:
        return Wait("entitlement not known yet")
    if client_id not in view.apps:
        return Refuse("access_denied", "this app is not deployed to the user")
    if view.auth_mode == "face":
        recency = view.face_recency_s or 0
        if view.face_verified_at is None or now - view.face_verified_at > recency:
            return Refuse("interaction_required", "a recent face verification is required", "face_verification")
    return Allow()


def _refuse_closed(view: SessionView) -> Refuse:
    if view.denial is not None:
        return Refuse("access_denied", "single sign-on is not entitled on this device session")
    return Refuse("login_required", "device session has ended", "checkout")


def after_wait(decision: Decision, caught_up: bool) -> Refuse | Allow:
    """The answer when the wait bound has passed and the decision is still `Wait`.

    `caught_up`: the device consumer was shown caught up at a moment after the SSO request
    arrived (and before the view was read). The extension holds a handle only once the session
    service's checkout was acknowledged by the broker, so that checkout was on the broker before
    the request: a view read after such a moment has it. A session not seen then was never
    checked out: `login_required`, check out again. Not caught up (the consumer down, restarting
    or lagging), the IdP cannot tell an unknown handle from a checkout it has not applied yet:
    it mints nothing and answers `temporarily_unavailable`, which the extension retries —
    sending the clinician to check out again would be wrong (docs/reliability.md, finding 9)."""
    if isinstance(decision, Wait):
        if decision.why.startswith("entitlement"):
            return Refuse("temporarily_unavailable", "entitlement not known yet; retry")
        if not caught_up:
            return Refuse("temporarily_unavailable", "device session not known yet; retry")
        return Refuse("login_required", "unknown device session", "checkout")
    return decision


def may_refresh(view: SessionView | None, client_id: str) -> bool:
    """Refresh needs an ACTIVE session (not LOCKED, not CLOSED) whose grant includes the client."""
    return view is not None and view.state == "ACTIVE" and view.granted and client_id in view.apps


def locked_until_face(view: SessionView | None, client_id: str) -> bool:
    """Refresh would be allowed but for an inactivity (or admin) lock: a face verification on the
    device makes the same refresh token work again."""
    return view is not None and view.state == "LOCKED" and view.granted and client_id in view.apps


def is_active(view: SessionView | None) -> bool:
    """Issued tokens stay valid while the session is ACTIVE or LOCKED."""
    return view is not None and view.state in ("ACTIVE", "LOCKED") and view.checked_out


# ------------------------------------------------- what the device part gives and takes


@dataclass(frozen=True)
class DeviceLogin:
    """A successful SSO-extension authentication: who, on which device session, since when."""

    enterprise_id: str
    device_session_id: str
    device_id: str
    user_id: str
    auth_time: int
    amr: tuple[str, ...]
    sid: str


class DeviceSsoError(Exception):
    """The SSO-extension path refused. `error` is the OAuth error code the redirect carries
    (`login_required`, `access_denied`, `interaction_required`, `temporarily_unavailable`,
    `invalid_request`); `action` tells the extension what to do (`face_verification`, `checkout`)."""

    def __init__(self, error: str, description: str, action: str | None = None) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.action = action


class SessionLocked(Exception):
    """Refresh refused for now: the device session is LOCKED (`locked_until_face`)."""


class TemporarilyUnavailable(Exception):
    """The IdP cannot vouch that its view of device sessions is fresh: fail closed (DESIGN §4)."""


@dataclass(frozen=True)
class RevokedSession:
    """What revoking one OIDC session ended: for events and back-channel logout."""

    sid: str
    user_id: str
    client_ids: tuple[str, ...]
