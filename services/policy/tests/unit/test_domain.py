"""The entitlement evaluation, policy precedence, re-evaluation and readiness: pure, table-driven."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from lanyard.policy import domain as d

NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)

ALICE = d.DirectoryUser("alice", "active", ("nurses",))
SSO = d.Licence("sso-1", "sso", NOW - DAY, NOW + DAY, seats=2)
APA = d.Licence("apa-1", "apa", NOW - DAY, NOW + DAY, seats=2)
POLICY = d.UserPolicy("p-nurses", "Nurses", True, "passcode", 120, 3600, 60, 100, groups=("nurses",))
ROVER = d.AppDeployment("rover", groups=("nurses",))
GOOD = d.Snapshot(
    policies=(POLICY,),
    deployments=(ROVER,),
    licences=(SSO,),
    org=d.OrgSettings(password_autofill_and_sso=True),
    cloud_state="established",
    app_profiles={"rover": d.AppProfile("rover", True)},
    known_groups=frozenset({"nurses"}),
)


MFA = ("pwd", "otp")
LATER = replace(SSO, valid_from=NOW + DAY, valid_until=NOW + 2 * DAY)


def with_(**changes):
    return replace(GOOD, **changes)


DENIALS = [
    ("unknown_user", None, GOOD, d.Seats(), MFA),
    ("user_disabled", replace(ALICE, status="disabled"), GOOD, d.Seats(), MFA),
    ("sso_disabled_for_org", ALICE, with_(org=d.OrgSettings(False)), d.Seats(), MFA),
    ("second_factor_required", ALICE, GOOD, d.Seats(), ("pwd",)),
    ("cloud_not_connected", ALICE, with_(cloud_state="code_issued"), d.Seats(), MFA),
    ("no_sso_licence", ALICE, with_(licences=(APA,)), d.Seats(), MFA),
    ("no_sso_licence", ALICE, with_(licences=(LATER,)), d.Seats(), MFA),
    ("sso_licence_expired", ALICE, with_(licences=(replace(SSO, valid_until=NOW),)), d.Seats(), MFA),
    ("sso_seats_exceeded", ALICE, GOOD, d.Seats(in_use=2, held_by_user=False), MFA),
    ("no_policy", ALICE, with_(policies=()), d.Seats(), MFA),
    ("no_policy", ALICE, with_(known_groups=frozenset()), d.Seats(), MFA),
    ("policy_sso_disabled", ALICE, with_(policies=(replace(POLICY, sso_enabled=False),)), d.Seats(), MFA),
    ("face_requires_apa", ALICE, with_(policies=(replace(POLICY, auth_mode="face"),)), d.Seats(), MFA),
    ("apa_seats_exceeded", ALICE, with_(policies=(replace(POLICY, auth_mode="face"),), licences=(SSO, APA)),
     d.Seats(apa_in_use=2), MFA),
    ("no_apps_deployed", ALICE, with_(deployments=()), d.Seats(), MFA),
    ("no_apps_deployed", ALICE, with_(app_profiles={"rover": d.AppProfile("rover", False)}), d.Seats(), MFA),
    ("no_apps_deployed", ALICE, with_(app_profiles={}), d.Seats(), MFA),
]  # fmt: skip


@pytest.mark.parametrize(("reason", "user", "snapshot", "seats", "amr"), DENIALS)
def test_each_denial_reason(reason, user, snapshot, seats, amr):
    outcome = d.evaluate(user, snapshot, seats, NOW, amr)
    assert isinstance(outcome, d.Denial)
    assert outcome.reason == reason
    assert outcome.detail


def test_every_contract_denial_reason_is_covered_by_the_table():
    from typing import get_args

    from lanyard.contracts.events import DenialReason

    assert {row[0] for row in DENIALS} == set(get_args(DenialReason))


GRANTS = [
    ("group policy, passcode", ALICE, GOOD, d.Seats(), ("rover",), "passcode", False, "p-nurses"),
    ("locked user keeps SSO", replace(ALICE, status="locked"), GOOD, d.Seats(), ("rover",), "passcode", False,
     "p-nurses"),
    ("seat already held", ALICE, GOOD, d.Seats(in_use=2, held_by_user=True), ("rover",), "passcode", False, "p-nurses"),
    ("one seat left", ALICE, GOOD, d.Seats(in_use=1), ("rover",), "passcode", False, "p-nurses"),
    ("second factor not required", ALICE, with_(org=d.OrgSettings(True, require_second_factor=False)), d.Seats(),
     ("rover",), "passcode", False, "p-nurses"),
    ("face with APA", ALICE, with_(policies=(replace(POLICY, auth_mode="face"),), licences=(SSO, APA)), d.Seats(),
     ("rover",), "face", True, "p-nurses"),
    ("passcode with APA allows face", ALICE, with_(licences=(SSO, APA)), d.Seats(), ("rover",), "passcode", True,
     "p-nurses"),
    ("APA seat already held", ALICE, with_(policies=(replace(POLICY, auth_mode="face"),), licences=(SSO, APA)),
     d.Seats(apa_in_use=2, apa_held_by_user=True), ("rover",), "face", True, "p-nurses"),
    ("passcode, every APA seat taken: no face", ALICE, with_(licences=(SSO, APA)), d.Seats(apa_in_use=2), ("rover",),
     "passcode", False, "p-nurses"),
    ("direct deployment", replace(ALICE, groups=()), with_(
        deployments=(d.AppDeployment("rover", users=("alice",)), d.AppDeployment("epic", groups=("nurses",))),
        policies=(replace(POLICY, users=("alice",), groups=()),),
        app_profiles={"rover": d.AppProfile("rover"), "epic": d.AppProfile("epic")}),
     d.Seats(), ("rover",), "passcode", False, "p-nurses"),
    ("several apps sorted", ALICE, with_(
        deployments=(ROVER, d.AppDeployment("epic", groups=("nurses",))),
        app_profiles={"rover": d.AppProfile("rover"), "epic": d.AppProfile("epic")}),
     d.Seats(), ("epic", "rover"), "passcode", False, "p-nurses"),
    ("expired licence beside a valid one", ALICE,
     with_(licences=(replace(SSO, licence_id="old", valid_until=NOW), SSO)),
     d.Seats(), ("rover",), "passcode", False, "p-nurses"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "user", "snapshot", "seats", "apps", "mode", "face", "policy_id"), GRANTS)
def test_grants(name, user, snapshot, seats, apps, mode, face, policy_id):
    outcome = d.evaluate(user, snapshot, seats, NOW)
    assert isinstance(outcome, d.Grant), name
    assert (outcome.apps, outcome.auth_mode, outcome.face_allowed, outcome.policy_id) == (apps, mode, face, policy_id)


def test_grant_carries_the_policy_timeouts():
    grant = d.evaluate(ALICE, GOOD, d.Seats(), NOW)
    assert (grant.inactivity_timeout_s, grant.max_session_s, grant.face_recency_s) == (120, 3600, 60)


def test_licence_is_valid_from_start_until_just_before_end():
    assert SSO.valid_at(SSO.valid_from)
    assert not SSO.valid_at(SSO.valid_until)


# ------------------------------------------------------------------------------- precedence

P_GROUP_HI = d.UserPolicy("a-group", "g", True, priority=1, groups=("nurses",))
P_GROUP_LO = d.UserPolicy("b-group", "g", True, priority=50, groups=("nurses",))
P_DIRECT = d.UserPolicy("z-direct", "u", False, priority=999, users=("alice",))


@pytest.mark.parametrize(
    ("policies", "expected"),
    [
        ((P_GROUP_HI, P_GROUP_LO), "a-group"),  # lower priority number wins
        ((P_GROUP_HI, P_GROUP_LO, P_DIRECT), "z-direct"),  # direct beats any group policy
        ((replace(P_GROUP_LO, priority=1), P_GROUP_HI), "a-group"),  # tie: lower policy_id
        ((replace(P_DIRECT, policy_id="y"), P_DIRECT), "y"),
        ((d.UserPolicy("other", "o", True, users=("bob",)),), None),
    ],
)
def test_policy_precedence(policies, expected):
    found = d.effective_policy(ALICE, policies, frozenset({"nurses"}))
    assert (found.policy_id if found else None) == expected


def test_direct_policy_with_sso_off_wins_over_group_policy_with_sso_on():
    outcome = d.evaluate(ALICE, with_(policies=(POLICY, P_DIRECT)), d.Seats(), NOW)
    assert outcome == d.Denial("policy_sso_disabled", "policy z-direct has SSO disabled")


# ---------------------------------------------------------------------------- decisions


def session(**kw):
    base = d.LiveSession("ds-1", "dev-1", "alice", ("pwd", "otp"), NOW - timedelta(minutes=5))
    return replace(base, **kw)


GRANT = d.evaluate(ALICE, GOOD, d.Seats(), NOW)


def test_decide_first_grant_is_version_one_and_first_denial_denies():
    assert d.decide(session(), GRANT) == d.Decision("grant", 1, GRANT)
    assert d.decide(session(), d.Denial("no_policy")).action == "deny"


def test_decide_on_a_live_grant():
    live = session(state="granted", version=3, grant=GRANT)
    assert d.decide(live, GRANT).action == "none"
    changed = replace(GRANT, apps=("epic", "rover"))
    assert d.decide(live, changed) == d.Decision("grant", 4, changed)
    assert d.decide(live, d.Denial("no_policy")).action == "revoke"


def test_ended_session_never_gets_a_grant_again():
    assert d.decide(session(state="ended", version=2), GRANT).action == "none"
    assert d.after(session(state="granted", version=2, grant=GRANT), d.Decision("revoke", 2)).state == "ended"


def test_reevaluate_keeps_seats_for_earliest_sessions_when_licence_shrinks():
    one_seat = with_(licences=(replace(SSO, seats=1),))
    users = {"alice": ALICE, "bob": replace(ALICE, user_id="bob")}
    early = session(state="granted", version=1, grant=GRANT)
    late = replace(session(state="granted", version=1, grant=GRANT), device_session_id="ds-2", user_id="bob",
                   checked_out_at=NOW - timedelta(minutes=1))  # fmt: skip
    result = {
        s.device_session_id: dec.action
        for s, dec in d.reevaluate([late, early], users, one_seat, {"alice": 1, "bob": 1}, NOW)
    }
    assert result == {"ds-1": "none", "ds-2": "revoke"}


def test_reevaluate_counts_seats_of_users_outside_the_pass():
    one_seat = with_(licences=(replace(SSO, seats=1),))
    live = session(state="granted", version=1, grant=GRANT)
    [(_, decision)] = d.reevaluate([live], {"alice": ALICE}, one_seat, {"carol": 1, "alice": 1}, NOW)
    assert decision.action == "revoke"
    assert decision.outcome.reason == "sso_seats_exceeded"


def test_reevaluate_when_apa_seats_shrink_face_mode_loses_access_and_passcode_loses_face():
    face = with_(policies=(replace(POLICY, auth_mode="face"),), licences=(SSO, replace(APA, seats=1)))
    users = {"alice": ALICE, "bob": replace(ALICE, user_id="bob")}
    face_grant = d.evaluate(ALICE, face, d.Seats(), NOW)
    early = session(state="granted", version=1, grant=face_grant)
    late = replace(early, device_session_id="ds-2", user_id="bob", checked_out_at=NOW - timedelta(minutes=1))
    holders = {"alice": 1, "bob": 1}
    decisions = {s.device_session_id: dec for s, dec in d.reevaluate([late, early], users, face, holders, NOW, holders)}
    assert decisions["ds-1"].action == "none"
    assert decisions["ds-2"].action == "revoke" and decisions["ds-2"].outcome.reason == "apa_seats_exceeded"

    passcode = with_(licences=(SSO, replace(APA, seats=1)))
    [(_, changed)] = d.reevaluate([late], users, passcode, holders, NOW, {"alice": 1, "bob": 1})
    assert changed.action == "grant" and changed.version == 2 and changed.outcome.face_allowed is False


def test_evaluate_checkouts_counts_apa_seats_within_a_run():
    face = with_(policies=(replace(POLICY, auth_mode="face"),), licences=(SSO, replace(APA, seats=1)))
    users = {"alice": ALICE, "bob": replace(ALICE, user_id="bob")}
    run = [session(), replace(session(), device_session_id="ds-2", user_id="bob"),
           replace(session(), device_session_id="ds-3")]  # fmt: skip
    decisions = d.evaluate_checkouts(run, users, face, d.SeatCount(), NOW)
    assert [x.action for x in decisions] == ["grant", "deny", "grant"]
    assert decisions[1].outcome.reason == "apa_seats_exceeded"
    held = d.evaluate_checkouts(run[1:2], users, face, d.SeatCount(1, frozenset(), 1, frozenset({"bob"})), NOW)
    assert held[0].action == "grant"  # bob already holds the APA seat (another device)


# ------------------------------------------------------------------------ second factor lock

CUTOFF = datetime(2025, 6, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("created", "already", "locked"),
    [
        (datetime(2025, 5, 31, tzinfo=UTC), False, False),
        (CUTOFF, False, True),
        (datetime(2026, 1, 1, tzinfo=UTC), False, True),
        (datetime(2024, 1, 1, tzinfo=UTC), True, True),
        (None, False, False),
    ],
)
def test_second_factor_lock(created, already, locked):
    assert d.second_factor_locked(created, CUTOFF, already) is locked


def test_locked_second_factor_cannot_be_switched_off():
    with pytest.raises(d.SettingRefused):
        d.apply_org_settings(d.OrgSettings(), d.OrgSettings(require_second_factor=False), locked=True)
    applied = d.apply_org_settings(d.OrgSettings(), d.OrgSettings(require_second_factor=False), locked=False)
    assert applied.require_second_factor is False
    assert d.apply_org_settings(d.OrgSettings(), d.OrgSettings(), locked=True).require_second_factor_locked


# ---------------------------------------------------------------------------------- readiness


SUPPORTED = (d.SupportedRelease("1.2", NOW + 90 * DAY),)
SEED_ROWS = [
    "maintained release",
    "Single Sign On licensed",
    "cloud connection established",
    "OpenID Connect apps added and enabled",
    "apps deployed to users",
    "users assigned to a policy enabled for SSO",
]


def table(snapshot=GOOD, release="1.2.3", supported=SUPPORTED, users=None, devices=(), now=NOW):
    return d.readiness(snapshot, now, release, supported, users, devices)


def status(rows):
    return {r.check: r.status for r in rows}


def test_readiness_of_a_complete_enterprise_passes_every_row_in_the_seed_order():
    rows = table(devices=(d.DeviceReport("dev-1", "4.3.1", True, NOW - DAY),))
    assert [r.check for r in rows][:6] == SEED_ROWS
    assert [r.status for r in rows] == ["pass"] * 11
    assert d.is_ready(rows)
    assert rows[0].detail == "running Lanyard 1.2.3 (series 1.2, supported until 2026-04-15)"
    assert [r.where_to_fix for r in rows][:6] == [
        "Help menu",
        "Gear menu > License",
        "Gear menu > Cloud connection",
        "Applications > Single sign-on application profiles",
        "Applications > Single sign-on application profiles",
        "Users > User policies",
    ]
    assert [r.requirement for r in rows] == ["Required"] * 10 + ["Optional"]


def test_readiness_of_an_empty_enterprise_fails_every_configuration_row():
    rows = table(d.Snapshot())
    failing = {c for c, s in status(rows).items() if s == "fail"}
    assert failing == set(SEED_ROWS[1:]) | {"Password Autofill and SSO is ON"}
    assert not d.is_ready(rows)


def test_password_autofill_and_sso_off_is_not_ready():
    """The seed's MAM prerequisite: with it OFF nobody gets SSO, so the table must not say ready."""
    rows = table(with_(org=d.OrgSettings(password_autofill_and_sso=False)))
    row = next(r for r in rows if r.check == "Password Autofill and SSO is ON")
    assert (row.status, row.where_to_fix) == ("fail", "MAM console > Admin > Check Out > Password Autofill and SSO")
    assert not d.is_ready(rows)
    rows = table(with_(org=d.OrgSettings(password_autofill_and_sso=True, require_second_factor=False)))
    assert status(rows)["Require a second factor to unlock the device is ON"] == "fail"
    assert not d.is_ready(rows)


@pytest.mark.parametrize(
    ("release", "supported", "now", "ok", "words"),
    [
        ("1.2.3", SUPPORTED, NOW, True, "supported until"),
        ("1.3.0", SUPPORTED, NOW, False, "not a supported release"),
        ("unknown", SUPPORTED, NOW, False, "not a supported release"),
        ("1.2.3", SUPPORTED, NOW + 90 * DAY, False, "ended on"),
        ("1.2.3", (), NOW, False, "supported: none"),
        ("0.1.0", (d.SupportedRelease("0.1", NOW + DAY), d.SupportedRelease("0.2", NOW + 9 * DAY)), NOW, True, "0.1"),
    ],
)
def test_the_help_menu_row_checks_the_running_release_against_the_supported_list(release, supported, now, ok, words):
    row = table(release=release, supported=supported, now=now)[0]
    assert (row.check, row.status == "pass") == ("maintained release", ok)
    assert words in row.detail
    assert d.is_ready(table(release=release, supported=supported, now=now)) is ok


def test_devices_below_the_minimum_locker_or_without_the_sso_extension_fail_their_rows():
    devices = (
        d.DeviceReport("dev-new", "4.3.0", True, NOW - DAY),
        d.DeviceReport("dev-old", "4.2.9", True, NOW - DAY, refused=True),
        d.DeviceReport("dev-silent", None, None, NOW - 2 * DAY),
        d.DeviceReport("dev-noext", "4.4", False, NOW - 3 * DAY),
        d.DeviceReport("dev-gone", "3.0", False, NOW - 30 * DAY),  # not recently active: not counted
    )
    rows = {r.check: r for r in table(devices=devices)}
    locker = rows["Locker for iOS 4.3 or later on the devices"]
    assert locker.status == "fail"
    assert locker.detail.startswith("2 of 4 devices active in the last 7 days run Locker below 4.3")
    assert "dev-old" in locker.detail and "dev-silent" in locker.detail and "dev-gone" not in locker.detail
    extension = rows["SSO Extension profile deployed from the MDM"]
    assert extension.status == "fail"
    assert extension.detail.startswith("1 of 4 devices active in the last 7 days lack the SSO extension: dev-noext")
    assert "(1 did not report it)" in extension.detail
    higher = with_(org=d.OrgSettings(password_autofill_and_sso=True, minimum_locker_version="4.4"))
    rows = {r.check: r for r in table(higher, devices=devices[:1])}
    assert rows["Locker for iOS 4.4 or later on the devices"].status == "fail"
    assert "no device checked out" in table(devices=devices[4:])[8].detail


def test_users_who_cannot_check_out_are_an_optional_row_that_does_not_block_readiness():
    users = {
        "alice": replace(ALICE, totp_enrolled=True),
        "bob": d.DirectoryUser("bob", "active", ("nurses",), totp_enrolled=False),
        "carol": d.DirectoryUser("carol", "active", ("porters",), totp_enrolled=False),  # no SSO policy
        "dave": d.DirectoryUser("dave", "disabled", ("nurses",), totp_enrolled=False),
        "erin": d.DirectoryUser("erin", "active", ("nurses",), totp_enrolled=None),  # unknown: not counted
    }
    rows = table(users=users)
    blockers = rows[-1]
    assert (blockers.status, blockers.requirement) == ("fail", "Optional")
    assert blockers.detail == "1 users with an SSO-enabled policy have no second factor enrolled: bob"
    assert d.is_ready(rows)
    assert d.checkout_blockers(users["bob"], GOOD.org) == ["second_factor_not_enrolled"]
    assert d.checkout_blockers(users["bob"], d.OrgSettings(require_second_factor=False)) == []


def test_the_minimum_locker_version_cannot_go_below_what_locker_sso_needs():
    with pytest.raises(d.SettingRefused, match=r"cannot be below 4\.3"):
        d.apply_org_settings(d.OrgSettings(), d.OrgSettings(minimum_locker_version="4.2"), locked=False)
    assert (
        d.apply_org_settings(d.OrgSettings(), d.OrgSettings(minimum_locker_version="5"), False).minimum_locker_version
        == "5"
    )


def test_readiness_ignores_deployments_of_missing_apps_and_disabled_apps():
    rows = table(with_(app_profiles={"epic": d.AppProfile("epic", False)}))
    statuses = status(rows)
    assert statuses["OpenID Connect apps added and enabled"] == "fail"
    assert statuses["apps deployed to users"] == "fail"


def test_next_licence_boundary():
    assert d.next_licence_boundary((SSO, APA), NOW) == NOW + DAY
    assert d.next_licence_boundary((replace(SSO, valid_until=NOW),), NOW) is None


@pytest.mark.parametrize("amr", [("hwk",), ("pwd",)])
def test_a_badge_alone_never_satisfies_require_a_second_factor(amr):
    """The IdP names a badge tap `hwk`, its primary factor: with the org's "Require a second
    factor" on, only a badge or password followed by a code is entitled."""
    denied = d.evaluate(ALICE, GOOD, d.Seats(), NOW, amr)
    assert isinstance(denied, d.Denial) and denied.reason == "second_factor_required"
    assert not isinstance(d.evaluate(ALICE, GOOD, d.Seats(), NOW, (*amr, "otp")), d.Denial)
