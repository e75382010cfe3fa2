"""A realistic synthetic day of Lanyard events, for the audit service's tests, benchmark and demos.

One enterprise, a pool of shared devices and a ward of users: the admin set-up in the morning
(directory, app profiles, licences, policies, deployments, org settings, cloud connection, each
with its acting admin), then shift after shift of checkouts, Locker authentications, grants, SSO
code flows and refreshes, inactivity locks and face unlocks, checkins and revocations, and a few
admin changes during the day. Deterministic for a given seed. `truth` holds, per device session,
when each app was accessible, so a test can check the audit log's answers.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from lanyard.contracts import Event, Subject
from lanyard.contracts import events as ev

APPS = ("epic-rover", "epic-haiku", "vocera", "teams", "mobile-heartbeat")
DAY = datetime(2026, 11, 30, tzinfo=UTC)


@dataclass(frozen=True)
class SessionTruth:
    """One device session as generated: who, where, which apps, and the granted interval."""

    device_session_id: str
    device_id: str
    user_id: str
    apps: tuple[str, ...]
    checked_out_at: datetime
    granted_at: datetime
    checked_in_at: datetime


@dataclass
class SyntheticDay:
    """The events in publication order and the ground truth they encode."""

    enterprise_id: str
    events: list[Event] = field(default_factory=list)
    sessions: list[SessionTruth] = field(default_factory=list)
    admin_events: list[Event] = field(default_factory=list)


class _Builder:
    def __init__(self, enterprise_id: str) -> None:
        self.day = SyntheticDay(enterprise_id)
        self.eid = enterprise_id

    def add(self, event: Event) -> Event:
        self.day.events.append(event)
        if event.topic.name in ("lanyard.directory.v1", "lanyard.app-profiles.v1", "lanyard.policy-config.v1"):
            self.day.admin_events.append(event)
        return event

    def admin(self, cls: type[Event], payload: object, at: datetime, actor: str, producer: str, **subject: str) -> None:
        self.add(
            cls(
                enterprise_id=self.eid,
                producer=producer,
                occurred_at=at,
                actor=actor,
                subject=Subject(**subject),
                payload=payload,
            )
        )

    def session_event(self, cls: type[Event], payload: object, at: datetime, producer: str, **subject: str) -> None:
        self.add(
            cls(enterprise_id=self.eid, producer=producer, occurred_at=at, subject=Subject(**subject), payload=payload)
        )


def generate_day(
    enterprise_id: str, *, devices: int = 8, users: int = 24, shifts: int = 3, seed: int = 7, day: datetime = DAY
) -> SyntheticDay:
    """Generate the day. With the defaults, about 3,000 events."""
    rng = random.Random(seed)  # noqa: S311 (repeatable synthetic data, nothing secret)
    b = _Builder(enterprise_id)
    user_ids = [f"u-{i:03d}" for i in range(users)]
    device_ids = [f"dev-{i:02d}" for i in range(devices)]
    t = day + timedelta(hours=5)

    # Morning set-up by the superadmin and an admin.
    b.admin(
        ev.CloudConnectionChanged,
        ev.CloudConnectionChangedPayload(state="established"),
        t,
        "admin-super",
        "policy",
    )
    for uid in user_ids:
        t += timedelta(seconds=7)
        b.admin(
            ev.UserUpserted,
            ev.UserUpsertedPayload(user_id=uid, username=uid, display_name=f"Clinician {uid}", groups=("nurses",)),
            t,
            "admin-directory",
            "idp",
            user_id=uid,
        )
    b.admin(ev.GroupUpserted, ev.GroupUpsertedPayload(group_id="nurses", name="Nurses"), t, "admin-directory", "idp")
    for app in APPS:
        t += timedelta(seconds=30)
        b.admin(
            ev.AppProfileUpserted,
            ev.AppProfileUpsertedPayload(
                client_id=app,
                profile_name=app,
                display_name=app.replace("-", " ").title(),
                client_type="public",
                redirect_uris=(f"com.example.{app.replace('-', '')}://callback",),
            ),
            t,
            "admin-super",
            "idp",
            client_id=app,
        )
    now = t
    b.admin(
        ev.LicenceUpserted,
        ev.LicenceUpsertedPayload(
            licence_id="lic-sso",
            kind="sso",
            valid_from=now - timedelta(days=30),
            valid_until=now + timedelta(days=335),
            seats=500,
        ),
        now,
        "admin-super",
        "policy",
    )
    b.admin(
        ev.OrgSettingsChanged,
        ev.OrgSettingsChangedPayload(password_autofill_and_sso=True),
        now,
        "admin-super",
        "policy",
    )
    b.admin(
        ev.UserPolicyUpserted,
        ev.UserPolicyUpsertedPayload(policy_id="pol-ward", name="Ward", sso_enabled=True, groups=("nurses",)),
        now,
        "admin-policy",
        "policy",
    )
    for app in APPS:
        b.admin(
            ev.AppDeploymentUpserted,
            ev.AppDeploymentUpsertedPayload(client_id=app, groups=("nurses",)),
            now,
            "admin-policy",
            "policy",
            client_id=app,
        )
    for dev in device_ids:
        now += timedelta(seconds=3)
        b.session_event(
            ev.DeviceEnrolled,
            ev.DeviceEnrolledPayload(device_id=dev, model="iPhone 15", public_jwk={"kty": "EC", "crv": "P-256"}),
            now,
            "session",
            device_id=dev,
        )

    # Shifts: every device is checked out, used and checked in, several times a shift.
    shift_length = timedelta(hours=24 / shifts)
    for shift in range(shifts):
        shift_start = day + timedelta(hours=6) + shift * shift_length
        for d_index, dev in enumerate(device_ids):
            at = shift_start + timedelta(minutes=d_index * 2)
            shift_end = shift_start + shift_length - timedelta(minutes=20)
            counter = 0
            while at < shift_end - timedelta(minutes=40):
                counter += 1
                uid = rng.choice(user_ids)
                dsid = f"ds-{dev}-{shift}-{counter}"
                duration = timedelta(minutes=rng.randint(60, 200))
                end = min(at + duration, shift_end)
                apps = tuple(sorted(rng.sample(APPS, rng.randint(2, 4))))
                _session(b, rng, dev, uid, dsid, apps, at, end)
                at = end + timedelta(minutes=rng.randint(2, 15))
        # Midday admin changes, with their acting admins.
        mid = shift_start + shift_length / 2
        b.admin(
            ev.UserPolicyUpserted,
            ev.UserPolicyUpsertedPayload(
                policy_id="pol-ward",
                name="Ward",
                sso_enabled=True,
                groups=("nurses",),
                inactivity_timeout_s=240 + shift,
            ),
            mid,
            "admin-policy",
            "policy",
        )
        changed = user_ids[shift % users]
        b.admin(
            ev.UserUpserted,
            ev.UserUpsertedPayload(
                user_id=changed, username=changed, display_name=f"Clinician {changed}", groups=("nurses",)
            ),
            mid,
            "admin-directory",
            "idp",
            user_id=changed,
        )
    b.day.events.sort(key=lambda e: e.occurred_at)
    return b.day


def _session(
    b: _Builder,
    rng: random.Random,
    dev: str,
    uid: str,
    dsid: str,
    apps: tuple[str, ...],
    start: datetime,
    end: datetime,
) -> None:
    ids = {"device_id": dev, "user_id": uid, "device_session_id": dsid}
    sequence = 1
    b.session_event(
        ev.UserAuthenticated,
        ev.UserAuthenticatedPayload(user_id=uid, channel="locker", amr=("pwd", "otp"), device_id=dev),
        start - timedelta(seconds=2),
        "idp",
        user_id=uid,
        device_id=dev,
    )
    b.session_event(
        ev.DeviceCheckedOut,
        ev.DeviceCheckedOutPayload(
            **ids, sequence=sequence, amr=("pwd", "otp"), checked_out_at=start, device_jkt="jkt-" + dev
        ),
        start,
        "session",
        **ids,
    )
    granted_at = start + timedelta(milliseconds=40)
    b.session_event(
        ev.EntitlementGranted,
        ev.EntitlementGrantedPayload(
            **ids,
            version=1,
            apps=apps,
            auth_mode="passcode",
            inactivity_timeout_s=300,
            max_session_s=12 * 3600,
            face_allowed=True,
            policy_id="pol-ward",
        ),
        granted_at,
        "policy",
        **ids,
    )
    b.day.sessions.append(SessionTruth(dsid, dev, uid, apps, start, granted_at, end))
    at = granted_at + timedelta(seconds=5)
    grants = 0
    while at < end - timedelta(minutes=8):
        app = rng.choice(apps)
        grants += 1
        sid = f"sid-{dsid}-{grants}"
        flow = {"client_id": app, "user_id": uid, "sid": sid, "device_session_id": dsid}
        b.session_event(
            ev.AuthorizationGranted,
            ev.AuthorizationGrantedPayload(**flow, via="sso_extension"),
            at,
            "idp",
            **ids,
            client_id=app,
        )
        b.session_event(
            ev.TokensIssued,
            ev.TokensIssuedPayload(**flow, grant_id=f"g-{sid}", grant_type="authorization_code"),
            at + timedelta(milliseconds=120),
            "idp",
            **ids,
            client_id=app,
        )
        if rng.random() < 0.5:
            b.session_event(
                ev.TokensRefreshed,
                ev.TokensIssuedPayload(**flow, grant_id=f"g-{sid}", grant_type="refresh_token"),
                at + timedelta(minutes=4),
                "idp",
                **ids,
                client_id=app,
            )
        if rng.random() < 0.15:
            sequence += 1
            b.session_event(
                ev.DeviceLocked,
                ev.DeviceLockedPayload(**ids, sequence=sequence),
                at + timedelta(minutes=5),
                "session",
                **ids,
            )
            sequence += 1
            b.session_event(
                ev.FaceVerified,
                ev.FaceVerifiedPayload(**ids, sequence=sequence, verified_at=at + timedelta(minutes=6), unlocked=True),
                at + timedelta(minutes=6),
                "session",
                **ids,
            )
        at += timedelta(minutes=rng.randint(6, 14))
    sequence += 1
    b.session_event(
        ev.DeviceCheckedIn, ev.DeviceCheckedInPayload(**ids, sequence=sequence, reason="user"), end, "session", **ids
    )
    b.session_event(
        ev.EntitlementRevoked,
        ev.EntitlementRevokedPayload(**ids, reason="checked_in"),
        end + timedelta(milliseconds=30),
        "policy",
        **ids,
    )
    b.session_event(
        ev.SessionRevoked,
        ev.SessionRevokedPayload(
            sid=f"sid-{dsid}", user_id=uid, reason="checked_in", clients=apps, device_session_id=dsid
        ),
        end + timedelta(milliseconds=50),
        "idp",
        **ids,
    )
