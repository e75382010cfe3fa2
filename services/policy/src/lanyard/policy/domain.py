"""The policy service's domain: pure rules, no I/O.

Everything that decides who may use which app lives here, as plain values and functions:

**Entitlement evaluation** — `evaluate(...)` is the one function that turns a user, the
enterprise's configuration and the current time into a `Grant` or a `Denial`. The checkout
handler, the re-evaluation after configuration changes, and the per-user readiness explanation
all call it, so they can never disagree. Checks run in this order and the first failure wins:

 1. ``unknown_user``         the directory does not know the user
 2. ``user_disabled``        the directory says the user is disabled (a password *lockout*
                             does not revoke a session that is already checked out)
 3. ``sso_disabled_for_org`` org setting "Password Autofill and SSO" is off
 4. ``second_factor_required`` the org requires a second factor and the checkout's ``amr``
                             shows only one method (defence in depth: the IdP enforces it too)
 5. ``cloud_not_connected``  trust with the cloud is not established
 6. ``no_sso_licence``       no SSO licence, or none valid yet
 7. ``sso_licence_expired``  SSO licences exist but every one has expired
 8. ``sso_seats_exceeded``   every seat of the valid SSO licences is taken by other users
 9. ``no_policy``            no user policy applies to the user
10. ``policy_sso_disabled``  the user's effective policy has SSO switched off
11. ``face_requires_apa``    the effective policy is in face mode without a valid APA licence
12. ``apa_seats_exceeded``   face mode, but every seat of the valid APA licences is taken
13. ``no_apps_deployed``     no enabled, existing app profile is deployed to the user

**Policy precedence** (which user policy applies when several do): a policy that names the
user directly beats any policy that applies only through one of the user's groups; among
policies of the same kind the lower ``priority`` number wins; a tie is broken by the lower
``policy_id`` (string order), so the choice is deterministic everywhere. Only the single
effective policy counts: if it has SSO switched off, the user has no SSO even if a weaker
policy would allow it.

**Groups** count only when the directory knows them (a deleted group grants nothing, even if a
user record still lists it).

**Seats** — a seat is a distinct user with at least one live, granted device session. A user
who already holds a seat may open another session without taking a second one. Seats are
summed over the SSO licences valid now. APA seats are counted the same way, apart: a user holds
one while at least one of their live grants has ``face_allowed``.

**Licence validity** is the half-open interval ``[valid_from, valid_until)``.

**Second factor lock** — "Require a second factor" cannot be switched off for enterprises
created on or after ``second_factor_enforced_after`` (MAM 7.0, June 2025). An enterprise's
creation date is the earliest configuration event the service has seen for it (its first
provisioning code or first configuration change). Once an org-settings event says the
setting is locked it stays locked, so the rule survives topic compaction.

**Faces** — ``face_allowed`` in a grant means face verification may be used on that session
(an APA licence is valid now and the user holds, or can take, one of its seats); in face mode
it is always true, because face mode without an APA seat is denied. A passcode-mode user for
whom no APA seat is left is granted without ``face_allowed`` rather than denied.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Literal

from lanyard.contracts.events import (
    AuthMode,
    DenialReason,
    LicenceKind,
    RevocationReason,
)
from lanyard.contracts.factors import has_second_factor
from lanyard.contracts.versions import DEFAULT_MINIMUM_LOCKER_VERSION, at_least, release_key

ACTIVE = "active"

# --------------------------------------------------------------------------- configuration records


@dataclass(frozen=True)
class DirectoryUser:
    """A directory user as the policy service needs it: status and group memberships."""

    user_id: str
    status: str = ACTIVE
    groups: tuple[str, ...] = ()
    totp_enrolled: bool | None = None
    """None when the record predates the projection keeping it (unknown, never counted)."""


@dataclass(frozen=True)
class UserPolicy:
    """A user policy and its assignments."""

    policy_id: str
    name: str
    sso_enabled: bool
    auth_mode: AuthMode = "passcode"
    inactivity_timeout_s: int = 300
    max_session_s: int = 12 * 3600
    face_recency_s: int = 300
    priority: int = 100
    users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class AppDeployment:
    """An app profile (by client id) deployed to users and groups."""

    client_id: str
    users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class AppProfile:
    """What the policy service knows of an IdP app profile: that it exists, and whether enabled."""

    client_id: str
    enabled: bool = True


@dataclass(frozen=True)
class Licence:
    """An SSO or APA licence, valid in ``[valid_from, valid_until)``, with a seat count."""

    licence_id: str
    kind: LicenceKind
    valid_from: datetime
    valid_until: datetime
    seats: int

    def valid_at(self, now: datetime) -> bool:
        """True while the licence is in force."""
        return self.valid_from <= now < self.valid_until


@dataclass(frozen=True)
class OrgSettings:
    """MAM console > Admin > Check Out. Defaults are those of a new, unconfigured enterprise."""

    password_autofill_and_sso: bool = False
    require_second_factor: bool = True
    require_second_factor_locked: bool = False
    checkin_previous_on_checkout: bool = False
    face_match_threshold: float = 0.9
    face_liveness_threshold: float = 0.9
    face_max_failures: int = 5
    minimum_locker_version: str = DEFAULT_MINIMUM_LOCKER_VERSION


CloudState = Literal["not_connected", "code_issued", "established"]


@dataclass(frozen=True)
class Seats:
    """Seat use of one enterprise as seen by one evaluation: how many seats *other* users hold,
    and whether this user already holds one; SSO and APA seats are counted apart."""

    in_use: int = 0
    held_by_user: bool = False
    apa_in_use: int = 0
    apa_held_by_user: bool = False


@dataclass(frozen=True)
class Snapshot:
    """One enterprise's configuration at one moment: everything `evaluate` reads besides the user."""

    policies: tuple[UserPolicy, ...] = ()
    deployments: tuple[AppDeployment, ...] = ()
    licences: tuple[Licence, ...] = ()
    org: OrgSettings = field(default_factory=OrgSettings)
    cloud_state: CloudState = "not_connected"
    app_profiles: Mapping[str, AppProfile] = field(default_factory=dict)
    known_groups: frozenset[str] = frozenset()


# --------------------------------------------------------------------------------- outcomes


@dataclass(frozen=True)
class Grant:
    """What the user may do on the device session (the body of `entitlement.granted`)."""

    apps: tuple[str, ...]
    auth_mode: AuthMode
    inactivity_timeout_s: int
    max_session_s: int
    face_allowed: bool
    face_recency_s: int
    policy_id: str


@dataclass(frozen=True)
class Denial:
    """Why the user may not use SSO on the device session."""

    reason: DenialReason
    detail: str = ""


Outcome = Grant | Denial


# ------------------------------------------------------------------------------- the rules


def effective_policy(
    user: DirectoryUser, policies: Iterable[UserPolicy], known_groups: frozenset[str]
) -> UserPolicy | None:
    """The one policy that applies to `user` (see the module docstring for the precedence)."""
    groups = set(user.groups) & known_groups
    ranked: list[tuple[int, int, str, UserPolicy]] = []
    for p in policies:
        if user.user_id in p.users:
            ranked.append((0, p.priority, p.policy_id, p))
        elif groups & set(p.groups):
            ranked.append((1, p.priority, p.policy_id, p))
    return min(ranked, key=lambda r: r[:3])[3] if ranked else None


def deployed_apps(
    user: DirectoryUser,
    deployments: Iterable[AppDeployment],
    app_profiles: Mapping[str, AppProfile],
    known_groups: frozenset[str],
) -> tuple[str, ...]:
    """Client ids deployed to the user (directly or via a known group) whose profile exists and is enabled."""
    groups = set(user.groups) & known_groups
    apps = {
        d.client_id
        for d in deployments
        if (user.user_id in d.users or groups & set(d.groups))
        and d.client_id in app_profiles
        and app_profiles[d.client_id].enabled
    }
    return tuple(sorted(apps))


def licences_of(kind: LicenceKind, licences: Iterable[Licence]) -> list[Licence]:
    """Licences of one kind."""
    return [lic for lic in licences if lic.kind == kind]


def valid_seats(kind: LicenceKind, licences: Iterable[Licence], now: datetime) -> int:
    """Seats of the licences of `kind` valid at `now` (0 when none is)."""
    return sum(lic.seats for lic in licences_of(kind, licences) if lic.valid_at(now))


def evaluate(
    user: DirectoryUser | None,
    snapshot: Snapshot,
    seats: Seats,
    now: datetime,
    amr: Sequence[str] = ("pwd", "otp"),
) -> Outcome:
    """Grant or deny SSO for one user on one device session (order of checks: module docstring)."""
    if user is None:
        return Denial("unknown_user", "the directory does not know this user")
    if user.status == "disabled":
        return Denial("user_disabled", "the user is disabled in the directory")
    org = snapshot.org
    if not org.password_autofill_and_sso:
        return Denial("sso_disabled_for_org", "Password Autofill and SSO is off")
    if org.require_second_factor and not has_second_factor(amr):
        return Denial("second_factor_required", "the checkout did not use a second factor")
    if snapshot.cloud_state != "established":
        return Denial("cloud_not_connected", "trust with the cloud is not established")
    sso = licences_of("sso", snapshot.licences)
    if not sso:
        return Denial("no_sso_licence", "no Single Sign On licence is loaded")
    capacity = valid_seats("sso", sso, now)
    if capacity == 0:
        if all(lic.valid_until <= now for lic in sso):
            return Denial("sso_licence_expired", "every Single Sign On licence has expired")
        return Denial("no_sso_licence", "no Single Sign On licence is valid yet")
    if not seats.held_by_user and seats.in_use >= capacity:
        return Denial("sso_seats_exceeded", f"all {capacity} seats are in use")
    policy = effective_policy(user, snapshot.policies, snapshot.known_groups)
    if policy is None:
        return Denial("no_policy", "no user policy applies to the user")
    if not policy.sso_enabled:
        return Denial("policy_sso_disabled", f"policy {policy.policy_id} has SSO disabled")
    apa_capacity = valid_seats("apa", snapshot.licences, now)
    apa = apa_capacity > 0 and (seats.apa_held_by_user or seats.apa_in_use < apa_capacity)
    if policy.auth_mode == "face" and apa_capacity == 0:
        return Denial("face_requires_apa", f"policy {policy.policy_id} uses face mode without a valid APA licence")
    if policy.auth_mode == "face" and not apa:
        return Denial("apa_seats_exceeded", f"all {apa_capacity} Advanced Passwordless Access seats are in use")
    apps = deployed_apps(user, snapshot.deployments, snapshot.app_profiles, snapshot.known_groups)
    if not apps:
        return Denial("no_apps_deployed", "no enabled app is deployed to the user")
    return Grant(
        apps=apps,
        auth_mode=policy.auth_mode,
        inactivity_timeout_s=policy.inactivity_timeout_s,
        max_session_s=policy.max_session_s,
        face_allowed=apa,
        face_recency_s=policy.face_recency_s,
        policy_id=policy.policy_id,
    )


# ------------------------------------------------------------------------- live sessions


@dataclass(frozen=True)
class LiveSession:
    """A device session the service tracks: who, on which device, and what it last published.

    `state`: ``new`` before the first evaluation, ``granted`` while a grant stands, ``ended`` once
    it was denied or revoked (it never gets a grant again). `version` is the version of the last
    grant published (0 when none was).
    """

    device_session_id: str
    device_id: str
    user_id: str
    amr: tuple[str, ...]
    checked_out_at: datetime
    state: Literal["new", "granted", "ended"] = "new"
    version: int = 0
    grant: Grant | None = None

    @property
    def granted(self) -> bool:
        """True while a grant stands."""
        return self.state == "granted"

    @property
    def holds_apa_seat(self) -> bool:
        """True while a grant with face verification stands (it takes an APA seat)."""
        return self.granted and self.grant is not None and self.grant.face_allowed


Action = Literal["grant", "deny", "revoke", "none"]


@dataclass(frozen=True)
class Decision:
    """What to publish for one session after an evaluation."""

    action: Action
    version: int = 0
    outcome: Outcome | None = None


def decide(session: LiveSession, outcome: Outcome) -> Decision:
    """Compare a fresh outcome with what was last published for the session.

    - never evaluated: `grant` (version 1) or `deny`;
    - granted, and the grant changed: `grant` with version + 1; unchanged: `none`;
    - granted, now denied: `revoke`;
    - denied or revoked before: `none` — a session that lost its entitlement does not get it back
      (the session service checks it in); the user checks out again.
    """
    if session.state == "new":
        if isinstance(outcome, Grant):
            return Decision("grant", 1, outcome)
        return Decision("deny", 0, outcome)
    if not session.granted:
        return Decision("none")
    if isinstance(outcome, Denial):
        return Decision("revoke", session.version, outcome)
    if outcome == session.grant:
        return Decision("none")
    return Decision("grant", session.version + 1, outcome)


@dataclass(frozen=True)
class SeatCount:
    """Seats in use in an enterprise now, and which of the users about to be evaluated hold
    one — SSO and APA apart (what one round trip can read without listing every holder)."""

    in_use: int = 0
    holders: frozenset[str] = frozenset()
    apa_in_use: int = 0
    apa_holders: frozenset[str] = frozenset()

    def seen_by(self, user_id: str) -> Seats:
        """Seat use as one evaluation of `user_id` sees it (the seats other users hold)."""
        held, apa_held = user_id in self.holders, user_id in self.apa_holders
        return Seats(self.in_use - int(held), held, self.apa_in_use - int(apa_held), apa_held)

    def granted(self, user_id: str, grant: Grant) -> SeatCount:
        """After `grant` to `user_id`: their SSO seat, and their APA seat when face is allowed."""
        takes_apa = grant.face_allowed and user_id not in self.apa_holders
        return SeatCount(
            self.in_use + int(user_id not in self.holders), self.holders | {user_id},
            self.apa_in_use + int(takes_apa), self.apa_holders | ({user_id} if takes_apa else frozenset()),
        )  # fmt: skip


def evaluate_checkouts(
    sessions: Sequence[LiveSession],
    users: Mapping[str, DirectoryUser | None],
    snapshot: Snapshot,
    seats: SeatCount,
    now: datetime,
) -> list[Decision]:
    """Decide new device sessions in arrival order. Each grant takes its user's seats (SSO, and
    APA when face is allowed) before the next session is evaluated, so a run of checkouts is
    decided exactly as the same checkouts one at a time; a single checkout is a run of one."""
    decisions: list[Decision] = []
    for session in sessions:
        outcome = evaluate(users.get(session.user_id), snapshot, seats.seen_by(session.user_id), now, session.amr)
        if isinstance(outcome, Grant):
            seats = seats.granted(session.user_id, outcome)
        decisions.append(decide(session, outcome))
    return decisions


def reevaluate(
    sessions: Sequence[LiveSession],
    users: Mapping[str, DirectoryUser | None],
    snapshot: Snapshot,
    seat_holders: Mapping[str, int],
    now: datetime,
    apa_seat_holders: Mapping[str, int] | None = None,
) -> list[tuple[LiveSession, Decision]]:
    """Re-evaluate live sessions after a change, oldest checkout first.

    Seats are re-counted as the pass goes: users whose sessions are not among `sessions` keep
    theirs (`seat_holders` and `apa_seat_holders`, user → live sessions holding one), and the
    earliest sessions keep their seats when a licence shrinks, so the newest ones lose access.
    """
    considered = {s.user_id for s in sessions}
    holders = {u for u, n in seat_holders.items() if n > 0 and u not in considered}
    apa_holders = {u for u, n in (apa_seat_holders or {}).items() if n > 0 and u not in considered}
    decisions: list[tuple[LiveSession, Decision]] = []
    for session in sorted(sessions, key=lambda s: (s.checked_out_at, s.device_session_id)):
        if session.state == "ended":
            decisions.append((session, Decision("none")))
            continue
        user = session.user_id
        seats = Seats(
            len(holders - {user}), user in holders, len(apa_holders - {user}), user in apa_holders
        )  # fmt: skip
        outcome = evaluate(users.get(user), snapshot, seats, now, session.amr)
        decision = decide(session, outcome)
        if isinstance(outcome, Grant):
            holders.add(user)
            if outcome.face_allowed:
                apa_holders.add(user)
        decisions.append((session, decision))
    return decisions


def after(session: LiveSession, decision: Decision) -> LiveSession:
    """The session's record once `decision` has been published."""
    if decision.action == "grant":
        assert isinstance(decision.outcome, Grant)
        return replace(session, state="granted", version=decision.version, grant=decision.outcome)
    if decision.action in ("revoke", "deny"):
        return replace(session, state="ended")
    return session


# ------------------------------------------------------------------------------ org settings


def second_factor_locked(created_at: datetime | None, enforced_after: datetime, already_locked: bool = False) -> bool:
    """True when "Require a second factor" must stay on for the enterprise (module docstring)."""
    if already_locked:
        return True
    return created_at is not None and created_at >= enforced_after


class SettingRefused(ValueError):
    """An org-settings change the rules do not allow; the message is safe to show the admin.
    `code`: `setting_locked` (a lock forbids it) or `invalid_setting` (the value is not allowed)."""

    def __init__(self, message: str, code: str = "setting_locked") -> None:
        super().__init__(message)
        self.code = code


def apply_org_settings(current: OrgSettings, wanted: OrgSettings, locked: bool) -> OrgSettings:
    """The org settings to publish: `wanted`, with the second-factor lock enforced and a minimum
    Locker release no lower than the one Locker SSO needs."""
    if locked and not wanted.require_second_factor:
        raise SettingRefused("Require a second factor cannot be switched off for this enterprise")
    if release_key(wanted.minimum_locker_version) < release_key(DEFAULT_MINIMUM_LOCKER_VERSION):
        raise SettingRefused(
            f"the minimum Locker version cannot be below {DEFAULT_MINIMUM_LOCKER_VERSION}: Locker SSO needs it",
            "invalid_setting",
        )
    return replace(
        wanted, require_second_factor=wanted.require_second_factor or locked, require_second_factor_locked=locked
    )


# --------------------------------------------------------------------------- Locker options


@dataclass(frozen=True)
class LockerOptions:
    """Locker custom options of an enterprise (version 0: never set, the defaults)."""

    version: int = 0
    hide_password_autofill_prompt: bool = False
    show_sso_status_at_checkout: bool = True


# --------------------------------------------------------------------------- readiness report

CheckStatus = Literal["pass", "fail"]
Requirement = Literal["Required", "Optional"]


@dataclass(frozen=True)
class ReadinessCheck:
    """One row of the seed's "validate OpenID Connect integration settings" table, with the
    seed's Required/Optional column. `ready` means every Required row passes."""

    check: str
    status: CheckStatus
    where_to_fix: str
    detail: str
    requirement: Requirement = "Required"


@dataclass(frozen=True)
class SupportedRelease:
    """A release series Lanyard supports (`0.1` covers 0.1.x) and the day support ends."""

    series: str
    end_of_support: datetime


@dataclass(frozen=True)
class DeviceReport:
    """What a device's Locker app last reported at checkout (or at a refused checkout)."""

    device_id: str
    locker_version: str | None
    sso_extension_installed: bool | None
    at: datetime
    refused: bool = False


DEVICE_WINDOW = timedelta(days=7)
"""Devices count as recently active when they checked out (or tried to) within this window."""


def _in_series(release: str, series: str) -> bool:
    try:
        have, want = release_key(release), release_key(series)
    except ValueError:
        return False
    parts = len(series.split("."))
    return have[:parts] == want[:parts]


def release_check(release: str, supported: Sequence[SupportedRelease], now: datetime) -> tuple[bool, str]:
    """Whether the running release is on the supported list, and why (the "Help menu" row)."""
    match = next((s for s in supported if _in_series(release, s.series)), None)
    listed = ", ".join(f"{s.series} until {s.end_of_support.date().isoformat()}" for s in supported) or "none"
    if match is None:
        return False, f"running Lanyard {release}, which is not a supported release (supported: {listed})"
    until = match.end_of_support.date().isoformat()
    if now >= match.end_of_support:
        return False, f"running Lanyard {release}: support for {match.series} ended on {until}; upgrade"
    return True, f"running Lanyard {release} (series {match.series}, supported until {until})"


def _few(ids: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(sorted(ids)[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


def is_ready(checks: Iterable[ReadinessCheck]) -> bool:
    """Ready when every Required row passes (Optional rows inform, they do not block)."""
    return all(c.status == "pass" for c in checks if c.requirement == "Required")


def checkout_blockers(user: DirectoryUser, org: OrgSettings) -> list[str]:
    """What keeps a user from checking a device out at all (before any entitlement)."""
    if org.require_second_factor and user.totp_enrolled is False:
        return ["second_factor_not_enrolled"]
    return []


def readiness(
    snapshot: Snapshot,
    now: datetime,
    release: str,
    supported: Sequence[SupportedRelease],
    users: Mapping[str, DirectoryUser | None] | None = None,
    devices: Sequence[DeviceReport] = (),
    device_window: timedelta = DEVICE_WINDOW,
) -> list[ReadinessCheck]:
    """The integration-readiness table of an enterprise: the seed's table in its order, then the
    MAM settings and the prerequisites the seed lists, then the users who cannot check out."""

    def row(check: str, ok: bool, where: str, detail: str, requirement: Requirement = "Required") -> ReadinessCheck:
        return ReadinessCheck(check, "pass" if ok else "fail", where, detail, requirement)

    org = snapshot.org
    sso_seats = valid_seats("sso", snapshot.licences, now)
    enabled_apps = sorted(c for c, p in snapshot.app_profiles.items() if p.enabled)
    deployed = [d for d in snapshot.deployments if d.client_id in snapshot.app_profiles and (d.users or d.groups)]
    sso_policies = [p for p in snapshot.policies if p.sso_enabled and (p.users or p.groups)]
    release_ok, release_detail = release_check(release, supported, now)
    recent = [d for d in devices if d.at >= now - device_window]
    days = device_window.days or 1
    minimum = org.minimum_locker_version
    outdated = [d.device_id for d in recent if not at_least(d.locker_version, minimum)]
    lacking = [d.device_id for d in recent if d.sso_extension_installed is False]
    unreported = [d.device_id for d in recent if d.sso_extension_installed is None]
    if not recent:
        locker_detail = f"no device checked out in the last {days} days; minimum Locker {minimum}"
        extension_detail = f"no device checked out in the last {days} days"
    else:
        locker_detail = (
            f"{len(outdated)} of {len(recent)} devices active in the last {days} days run Locker below {minimum} "
            f"or did not report it: {_few(outdated)}"
            if outdated
            else f"all {len(recent)} devices active in the last {days} days run Locker {minimum} or later"
        )
        extension_detail = (
            f"{len(lacking)} of {len(recent)} devices active in the last {days} days lack the SSO extension: "
            f"{_few(lacking)}"
            if lacking
            else f"every device active in the last {days} days reported the SSO extension installed"
        )
        if unreported:
            extension_detail += f" ({len(unreported)} did not report it)"
    blocked = sorted(
        u.user_id
        for u in (users or {}).values()
        if u is not None
        and u.status == ACTIVE
        and checkout_blockers(u, org)
        and (p := effective_policy(u, snapshot.policies, snapshot.known_groups)) is not None
        and p.sso_enabled
    )
    return [
        row("maintained release", release_ok, "Help menu", release_detail),
        row(
            "Single Sign On licensed",
            sso_seats > 0,
            "Gear menu > License",
            f"{sso_seats} seats valid now" if sso_seats else "no valid Single Sign On licence",
        ),
        row(
            "cloud connection established",
            snapshot.cloud_state == "established",
            "Gear menu > Cloud connection",
            f"trust state: {snapshot.cloud_state}",
        ),
        row(
            "OpenID Connect apps added and enabled",
            bool(enabled_apps),
            "Applications > Single sign-on application profiles",
            f"{len(enabled_apps)} enabled app profiles" if enabled_apps else "no enabled app profile",
        ),
        row(
            "apps deployed to users",
            bool(deployed),
            "Applications > Single sign-on application profiles",
            f"{len(deployed)} apps deployed" if deployed else "no existing app is deployed to a user or group",
        ),
        row(
            "users assigned to a policy enabled for SSO",
            bool(sso_policies),
            "Users > User policies",
            f"{len(sso_policies)} SSO-enabled policies with assignees"
            if sso_policies
            else "no SSO-enabled user policy is assigned to users or groups",
        ),
        row(
            "Password Autofill and SSO is ON",
            org.password_autofill_and_sso,
            "MAM console > Admin > Check Out > Password Autofill and SSO",
            "ON" if org.password_autofill_and_sso else "OFF: no user gets SSO on a checked-out device",
        ),
        row(
            "Require a second factor to unlock the device is ON",
            org.require_second_factor,
            "MAM console > Admin > Check Out > Require a second factor to unlock the device",
            ("ON (cannot be switched off for this enterprise)" if org.require_second_factor_locked else "ON")
            if org.require_second_factor
            else "OFF: checkouts use one factor",
        ),
        row(
            f"Locker for iOS {minimum} or later on the devices",
            not outdated,
            "the devices (update Locker); the minimum: MAM console > Admin > Check Out",
            locker_detail,
        ),
        row(
            "SSO Extension profile deployed from the MDM",
            not lacking,
            "MDM console > SSO extension profile",
            extension_detail,
        ),
        row(
            "users with SSO can check out (second factor enrolled)",
            not blocked,
            "Users > (user) > Second factor",
            f"{len(blocked)} users with an SSO-enabled policy have no second factor enrolled: {_few(blocked)}"
            if blocked
            else "every user with an SSO-enabled policy can check out"
            if org.require_second_factor
            else "no second factor is required",
            "Optional",
        ),
    ]


def utcnow() -> datetime:
    """The wall clock, in UTC (the default clock; tests inject their own)."""
    return datetime.now(UTC)


def next_licence_boundary(licences: Iterable[Licence], now: datetime) -> datetime | None:
    """The next moment a licence starts or ends after `now`: when live sessions need re-evaluating."""
    moments = [m for lic in licences for m in (lic.valid_from, lic.valid_until) if m > now]
    return min(moments) if moments else None


REVOCATION_BY_TRIGGER: dict[str, RevocationReason] = {
    "user_policy": "policy_changed",
    "app_deployment": "app_undeployed",
    "app_profile": "app_undeployed",
    "licence": "licence_changed",
    "directory": "user_changed",
    "org_settings": "org_settings_changed",
    "cloud_connection": "org_settings_changed",
}
"""The revocation reason names the kind of change that took access away."""
