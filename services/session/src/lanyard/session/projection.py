"""The session service's state folded from its topics: the pure part of the rebuild. No I/O.

When Redis lost the service's state, `rebuild.Rebuild` reads the topics from their earliest
offsets and feeds every record to `Projection.apply`; `Projection.result` is then the state
to write back: devices (the enrolled key and its thumbprint, exactly as enrolment stores
them), device sessions (the domain's own transitions, replayed from the records by
`domain.replay`, with what the Locker reported at checkout), their grants and the SSO activity
the IdP reported, org settings and Locker options.

What the topics cannot give back:
- `lanyard.device-sessions.v1` keeps 7 days (delete policy), so a device enrolled more than
  7 days before the loss, and not retired or re-enrolled since, is not in it: it is not
  rebuilt and must be enrolled again. Sessions are not affected (a session is at most its
  `max_session_s` long, far below 7 days).
- Locker heartbeats are not events; the inactivity clock restarts from the latest recorded
  activity (checkout, face verification, SSO at the IdP), so an idle session may lock or
  end sooner than it would have.
- Events still in the outbox (saved, not yet published) when Redis was lost are gone with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from lanyard.contracts import Event
from lanyard.contracts import events as ev
from lanyard.session import domain
from lanyard.session.domain import Device, DeviceSession, Entitlement, LockerOptions, OrgSettings, Transition
from lanyard.session.service import (
    SessionError,
    entitlement_from,
    locker_options_from,
    org_settings_from,
    public_p256_jwk,
)

Key = tuple[str, str]
"""(enterprise id, device id or device-session id)."""


def recorded_transition(event: Event) -> Transition | None:
    """A device-session record as the domain transition it announced (None for other records)."""
    at = event.occurred_at.timestamp()
    if isinstance(event, ev.DeviceLocked):
        return Transition("locked", at, event.payload.sequence, reason=event.payload.reason)
    if isinstance(event, ev.FaceVerified):
        p = event.payload
        return Transition("face_verified", p.verified_at.timestamp(), p.sequence, unlocked=p.unlocked)
    if isinstance(event, ev.FaceVerificationFailed):
        p = event.payload
        return Transition("face_failed", at, None, reason=p.reason, failures=p.failures, limit_reached=p.limit_reached)
    if isinstance(event, ev.DeviceCheckedIn):
        return Transition("checked_in", at, event.payload.sequence, reason=event.payload.reason)
    return None


@dataclass
class Rebuilt:
    """What the fold produced, ready to be written."""

    devices: list[Device]
    sessions: list[DeviceSession]
    org_settings: dict[str, OrgSettings]
    locker_options: dict[str, LockerOptions]
    ended: list[Key]
    """Live sessions whose entitlement was revoked or denied: the live path checks them in."""
    events: int
    skipped: int


@dataclass
class Projection:
    """Folds records, in per-partition order, into the service's state; idempotent by event id."""

    default_max_session_s: int
    devices: dict[Key, Device] = field(default_factory=dict)
    sessions: dict[Key, DeviceSession] = field(default_factory=dict)
    grants: dict[Key, tuple[Entitlement, float]] = field(default_factory=dict)
    revoked: set[Key] = field(default_factory=set)
    activity: dict[Key, float] = field(default_factory=dict)
    org_settings: dict[str, OrgSettings] = field(default_factory=dict)
    locker_options: dict[str, LockerOptions] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)
    skipped: int = 0

    def apply(self, event: Event) -> None:
        """Fold one record. Records of other types, and redeliveries, change nothing."""
        if event.event_id in self.seen:
            return
        self.seen.add(event.event_id)
        eid = event.enterprise_id
        if isinstance(event, ev.DeviceEnrolled):
            self._enrolled(event)
        elif isinstance(event, ev.DeviceRetired):
            known = self.devices.get((eid, event.payload.device_id))
            if known is not None:
                self.devices[(eid, known.device_id)] = replace(known, retired=True)
        elif isinstance(event, ev.DeviceCheckedOut):
            self._checked_out(event)
        elif isinstance(event, ev.EntitlementGranted):
            key = (eid, event.payload.device_session_id)
            held = self.grants.get(key)
            if held is None or held[0].version < event.payload.version:
                self.grants[key] = (entitlement_from(event.payload), event.occurred_at.timestamp())
        elif isinstance(event, ev.EntitlementRevoked | ev.EntitlementDenied):
            self.revoked.add((eid, event.payload.device_session_id))
        elif isinstance(event, ev.AuthorizationGranted | ev.TokensRefreshed):
            dsid = event.payload.device_session_id
            if dsid:
                key = (eid, dsid)
                self.activity[key] = max(self.activity.get(key, 0.0), event.occurred_at.timestamp())
        elif isinstance(event, ev.OrgSettingsChanged):
            self.org_settings[eid] = org_settings_from(event.payload)  # per partition, the latest wins
        elif isinstance(event, ev.LockerOptionsChanged):
            held_options = self.locker_options.get(eid)
            if held_options is None or held_options.version < event.payload.version:
                self.locker_options[eid] = locker_options_from(event.payload)
        else:
            recorded = recorded_transition(event)
            if recorded is None:
                return
            key = (eid, event.payload.device_session_id)  # type: ignore[attr-defined]
            session = self.sessions.get(key)
            if session is None:  # its checkout is older than the topic keeps
                self.skipped += 1
                return
            nxt = domain.replay(session, recorded)
            if nxt is not None:
                self.sessions[key] = nxt

    def _enrolled(self, event: ev.DeviceEnrolled) -> None:
        p = event.payload
        try:
            public, jkt = public_p256_jwk(p.public_jwk)
        except SessionError:
            self.skipped += 1  # enrolment refuses such keys, so no such record was written by us
            return
        self.devices[(event.enterprise_id, p.device_id)] = Device(
            enterprise_id=event.enterprise_id,
            device_id=p.device_id,
            public_jwk=public,
            jkt=jkt,
            model=p.model,
            serial=p.serial,
            mdm_id=p.mdm_id,
            enrolled_at=event.occurred_at.timestamp(),
        )

    def _checked_out(self, event: ev.DeviceCheckedOut) -> None:
        p = event.payload
        key = (event.enterprise_id, p.device_session_id)
        if key in self.sessions:
            return
        step = domain.start(
            enterprise_id=event.enterprise_id,
            device_session_id=p.device_session_id,
            device_id=p.device_id,
            user_id=p.user_id,
            device_jkt=p.device_jkt,
            amr=tuple(p.amr),
            now=p.checked_out_at.timestamp(),
            default_max_session_s=self.default_max_session_s,
        )
        self.sessions[key] = replace(
            step.session,
            sequence=p.sequence,
            locker_version=p.locker_version,
            sso_extension_installed=p.sso_extension_installed,
        )

    def result(self, now: float) -> Rebuilt:
        """The folded state: grants and SSO activity applied to their sessions."""
        sessions: list[DeviceSession] = []
        for key, session in self.sessions.items():
            s = session
            held = self.grants.get(key)
            if held is not None:
                grant, granted_at = held
                if s.live:
                    s = domain.apply_entitlement(s, grant) or s
                elif s.closed_at is not None and granted_at <= s.closed_at:
                    s = replace(s, entitlement=grant)  # granted while it was live: part of its record
            at = self.activity.get(key)
            if at is not None:
                s = domain.touch(s, at, now) or s
            sessions.append(s)
        ended = [key for key in self.revoked if key in self.sessions and self.sessions[key].live]
        return Rebuilt(
            devices=list(self.devices.values()),
            sessions=sessions,
            org_settings=dict(self.org_settings),
            locker_options=dict(self.locker_options),
            ended=sorted(ended),
            events=len(self.seen),
            skipped=self.skipped,
        )
