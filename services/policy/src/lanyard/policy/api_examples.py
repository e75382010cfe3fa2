"""Examples for the policy service's OpenAPI document (`lanyard.runtime.openapi`): the admin API's
configuration items, readiness and the per-user "why not", as the demo enterprise's stack
answered them."""

from __future__ import annotations

from typing import Any

from lanyard.runtime.openapi import ADMIN_REFUSALS, UNAVAILABLE, Example, invalid

BASE = "/policy/e/{enterprise_id}"
NOT_FOUND = (404, "not_found", "no such user policy")
WRITE_REFUSALS = (*ADMIN_REFUSALS, UNAVAILABLE)
EVENT = {"event_id": "01a23539-da2d-7f37-bdf1-bf3c7259c683", "applied": True}
"""What every change answers besides the item: its event (acknowledged) and whether this
service's own read model applied it before answering (bounded wait)."""

POLICY_BODY = {
    "name": "Ward 4B: face authentication",
    "sso_enabled": True,
    "auth_mode": "face",
    "inactivity_timeout_s": 300,
    "max_session_s": 43200,
    "face_recency_s": 300,
    "priority": 100,
    "users": ["usr_qoyUat3ykEEo_8Zd"],
    "groups": ["grp_jBEpDF2Bm0syNRkM"],
}
POLICY = {"policy_id": "ward-4b-face", **POLICY_BODY}
DEPLOYMENT_BODY = {"users": ["usr_qoyUat3ykEEo_8Zd"], "groups": ["grp_jBEpDF2Bm0syNRkM"]}
DEPLOYMENT = {"client_id": "cli_T4FjacJ88-kJMXvd", **DEPLOYMENT_BODY}
LICENCE_BODY = {
    "kind": "sso",
    "valid_from": "2026-12-01T00:00:00Z",
    "valid_until": "2027-12-01T00:00:00Z",
    "seats": 50,
}
LICENCE = {"licence_id": "sso", **LICENCE_BODY}
ORG = {
    "password_autofill_and_sso": True,
    "require_second_factor": True,
    "checkin_previous_on_checkout": False,
    "face_match_threshold": 0.9,
    "face_liveness_threshold": 0.9,
    "face_max_failures": 5,
    "minimum_locker_version": "4.3",
}
READINESS: dict[str, Any] = {
    "enterprise_id": "st-mungos",
    "ready": False,
    "release": "0.1.0",
    "checks": [
        {"check": "maintained release", "requirement": "Required", "status": "pass", "where_to_fix": "Help menu",
         "detail": "running Lanyard 0.1.0 (series 0.1, supported until 2028-01-01)"},
        {"check": "Single Sign On licensed", "requirement": "Required", "status": "pass",
         "where_to_fix": "Gear menu > License", "detail": "50 seats valid now"},
        {"check": "cloud connection established", "requirement": "Required", "status": "fail",
         "where_to_fix": "Gear menu > Cloud connection", "detail": "trust state: not_started"},
    ],
}  # fmt: skip
LOCKER_OPTIONS = {"version": 0, "hide_password_autofill_prompt": False, "show_sso_status_at_checkout": True}
GRANT = {
    "apps": ["cli_T4FjacJ88-kJMXvd", "cli_rm9uhItWxwpBbhkF"],
    "auth_mode": "face",
    "inactivity_timeout_s": 10,
    "max_session_s": 43200,
    "face_allowed": True,
    "face_recency_s": 300,
    "policy_id": "ward-4b-face",
}


def collection(
    path: str, item_id: str, body: dict[str, Any], item: dict[str, Any], label: str, bad: str
) -> dict[str, Example]:
    """The four operations of one configuration collection (`api.collection` makes the routes)."""
    missing = (404, "not_found", f"no such {label}")
    one = f"{BASE}{path}/{{item_id}}"
    return {
        f"GET {BASE}{path}": Example(response={"items": [item]}, refusals=ADMIN_REFUSALS),
        f"GET {one}": Example(response=item, refusals=(*ADMIN_REFUSALS, missing)),
        f"PUT {one}": Example(request=body, response={**item, **EVENT}, refusals=(invalid(bad), *WRITE_REFUSALS)),
        f"DELETE {one}": Example(response={item_id: item[item_id], **EVENT}, refusals=(*ADMIN_REFUSALS, missing)),
    }


EXAMPLES: dict[str, Example] = {
    **collection("/user-policies", "policy_id", POLICY_BODY, POLICY, "user policy", "body.sso_enabled: Field required"),
    **collection(
        "/app-deployments",
        "client_id",
        DEPLOYMENT_BODY,
        DEPLOYMENT,
        "app deployment",
        "body.users.0: String should match pattern '^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$'",
    ),
    **collection(
        "/licences",
        "licence_id",
        LICENCE_BODY,
        LICENCE,
        "licence",
        "body: Value error, valid_until must be after valid_from",
    ),
    f"GET {BASE}/org-settings": Example(
        response={**ORG, "require_second_factor_locked": True}, refusals=ADMIN_REFUSALS
    ),
    f"PUT {BASE}/org-settings": Example(
        request=ORG,
        response={**ORG, "require_second_factor_locked": True, **EVENT},
        refusals=(
            invalid("body.face_match_threshold: Input should be less than or equal to 1"),
            *WRITE_REFUSALS,
            (409, "setting_locked", "a second factor is required for this enterprise and cannot be switched off"),
        ),
    ),
    f"GET {BASE}/cloud-connection": Example(
        response={
            "enterprise_id": "st-mungos",
            "state": "established",
            "failed_attempts": 0,
            "code_expires_at": None,
            "established_by": "services:svc_1KPxAYph_nTPLYTw",
            "established_at": "2026-12-02T05:26:43.094486+00:00",
            "last_attempt": {
                "at": "2026-12-02T05:26:43.094486Z",
                "by": "services:svc_1KPxAYph_nTPLYTw",
                "principal": "services",
                "outcome": "established",
                "reason": None,
            },
        },
        refusals=ADMIN_REFUSALS,
    ),
    f"POST {BASE}/cloud-connection/provisioning-code": Example(
        response={
            "enterprise_id": "st-mungos",
            "code": "K7Q2M9XDR4TB",
            "expires_at": "2026-12-02T05:31:40.985745+00:00",
        },
        status=201,
        refusals=(*ADMIN_REFUSALS, UNAVAILABLE),
    ),
    f"POST {BASE}/cloud-connection/establish-trust": Example(
        request={"enterprise_id": "st-mungos", "code": "K7Q2M9XDR4TB"},
        response={
            "enterprise_id": "st-mungos",
            "client_id": "ent-0f9a4b1e-7c2d-4e8a-9b3f-5d6c7e8f9a0b",
            "client_secret": "p1Hq…(shown once)",
            "state": "established",
        },
        refusals=(
            invalid("body.code: Field required"),
            (400, "invalid_provisioning_code", "the provisioning code expired; generate a new one"),
            (403, "services_only", "only Imprivata-style Services (a services principal) may establish trust"),
        ),
    ),
    f"GET {BASE}/readiness": Example(response=READINESS, refusals=ADMIN_REFUSALS),
    f"GET {BASE}/seats": Example(
        response={"sso": {"in_use": 1, "valid": 50}, "apa": {"in_use": 1, "valid": 5}}, refusals=ADMIN_REFUSALS
    ),
    f"GET {BASE}/readiness/users/{{user_id}}": Example(
        response={
            "enterprise_id": "st-mungos",
            "user_id": "usr_qoyUat3ykEEo_8Zd",
            "client_id": "cli_T4FjacJ88-kJMXvd",
            "checkout_blockers": [],
            "allowed": True,
            "reason": None,
            "detail": "the user would be granted SSO",
            "grant": GRANT,
        },
        refusals=ADMIN_REFUSALS,
    ),
    f"GET {BASE}/locker-options": Example(response=LOCKER_OPTIONS, refusals=ADMIN_REFUSALS),
    f"PUT {BASE}/locker-options": Example(
        request={"hide_password_autofill_prompt": True, "show_sso_status_at_checkout": True, "expected_version": 0},
        response={**LOCKER_OPTIONS, "version": 1, "hide_password_autofill_prompt": True, **EVENT},
        refusals=(
            *WRITE_REFUSALS,
            (409, "version_conflict", "the Locker options are at version 1, not 0: reload them"),
        ),
    ),
}
