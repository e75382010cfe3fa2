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


def test_readiness_of_a_complete_enterprise_passes_every_row():
    rows = d.readiness(GOOD, "1.2.3", NOW)
    assert [r.status for r in rows] == ["pass"] * 6
    assert rows[0].detail == "running Lanyard policy 1.2.3"
    assert [r.where_to_fix for r in rows] == [
        "Help menu",
        "Gear menu > License",
        "Gear menu > Cloud connection",
        "Applications > Single sign-on application profiles",
        "Applications > Single sign-on application profiles",
        "Users > User policies",
    ]


def test_readiness_of_an_empty_enterprise_fails_all_but_release():
    rows = d.readiness(d.Snapshot(), "1.2.3", NOW)
    assert [r.status for r in rows] == ["pass"] + ["fail"] * 5


def test_readiness_ignores_deployments_of_missing_apps_and_disabled_apps():
    rows = d.readiness(with_(app_profiles={"epic": d.AppProfile("epic", False)}), "1", NOW)
    statuses = {r.check: r.status for r in rows}
    assert statuses["OpenID Connect apps added and enabled"] == "fail"
    assert statuses["apps deployed to users"] == "fail"


def test_next_licence_boundary():
    assert d.next_licence_boundary((SSO, APA), NOW) == NOW + DAY
    assert d.next_licence_boundary((replace(SSO, valid_until=NOW),), NOW) is None
