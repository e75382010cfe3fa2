"""Examples for the session service's OpenAPI document (`lanyard.runtime.openapi`): what the
admin and Locker routes take and answer, as the demo enterprise's stack answered them."""

from __future__ import annotations

from typing import Any

from lanyard.contracts.versions import RELEASE_PATTERN
from lanyard.runtime.openapi import ADMIN_REFUSALS, UNAVAILABLE, Example, invalid

BASE = "/session/e/{enterprise_id}"
HANDLE = "G4XBNDhj0xbZRHuooHxhA3eEbZVfoUzg"
PROOF_REFUSED = (401, "invalid_proof", "a Device-Proof header is required")
NOT_FOUND = (404, "session_not_found", "no such device session")

JWK = {
    "kty": "EC",
    "crv": "P-256",
    "x": "uPryTnKLH29TaAux9_-4w333DDkEsAUCSS2ds06Y0xw",
    "y": "fQR5ouGF2ZBdWQQVFGaiB_xi_Uh-h-ycLvthg35YOUA",
}
DEVICE = {
    "device_id": "iphone-132a679ffd",
    "model": "iPhone 15",
    "serial": "F2LXK9ABCD12",
    "mdm_id": "intune-6c0f7b52",
    "public_jwk": JWK,
    "jkt": "KmNQP06zzp8IQrSXeW0y0hqnAtyuOuacDXv-JZLRprQ",
    "enrolled_at": 1796189241.990725,
    "retired": False,
}
SSO_AVAILABLE = {"available": True, "status": "available", "reasons": [], "denied_because": None}
LOCKER_OPTIONS = {"version": 0, "hide_password_autofill_prompt": False, "show_sso_status_at_checkout": True}
SESSION: dict[str, Any] = {
    "device_session_id": HANDLE,
    "device_id": "iphone-132a679ffd",
    "user_id": "usr_UJw-GYk67J-aEPlX",
    "state": "ACTIVE",
    "sequence": 1,
    "amr": ["pwd", "otp"],
    "checked_out_at": "2026-12-02T05:35:09.952015+00:00",
    "last_activity_at": "2026-12-02T05:35:09.952015+00:00",
    "last_face_verification_at": None,
    "face_failures": 0,
    "auth_mode": "passcode",
    "face_allowed": True,
    "face_recency_s": 300,
    "inactivity_timeout_s": 900,
    "max_session_s": 43200,
    "entitlement_version": 1,
    "inactivity_deadline": "2026-12-02T05:50:09.952015+00:00",
    "max_session_deadline": "2026-12-02T17:35:09.952015+00:00",
    "closed_reason": None,
    "closed_at": None,
    "sso_enabled": True,
    "locker_version": "4.3.0",
    "sso_extension_installed": True,
    "sso": SSO_AVAILABLE,
    "locker_options": None,
}
CLOSED = {
    **SESSION,
    "state": "CLOSED",
    "sequence": 2,
    "inactivity_deadline": None,
    "max_session_deadline": None,
    "closed_reason": "admin",
    "closed_at": "2026-12-02T05:35:18.947472+00:00",
    "sso": {
        "available": False,
        "status": "unavailable",
        "reasons": [{"code": "checked_in", "message": "The device is checked in."}],
        "denied_because": None,
    },
}
LOCKER_VIEW = {**SESSION, "locker_options": LOCKER_OPTIONS}

EXAMPLES: dict[str, Example] = {
    f"POST {BASE}/devices": Example(
        request={
            "device_id": "iphone-132a679ffd",
            "model": "iPhone 15",
            "serial": "F2LXK9ABCD12",
            "mdm_id": "intune-6c0f7b52",
            "public_jwk": JWK,
        },
        response=DEVICE,
        status=201,
        refusals=(
            invalid("body.public_jwk: Field required"),
            *ADMIN_REFUSALS,
            (409, "device_exists", "the device is enrolled with another key; retire it first"),
        ),
    ),
    f"GET {BASE}/devices": Example(response={"devices": [DEVICE]}, refusals=ADMIN_REFUSALS),
    f"POST {BASE}/devices/{{device_id}}/retire": Example(
        response={**DEVICE, "retired": True},
        refusals=(*ADMIN_REFUSALS, (404, "device_not_found", "no such device")),
    ),
    f"GET {BASE}/device-sessions": Example(response={"device_sessions": [SESSION]}, refusals=ADMIN_REFUSALS),
    f"POST {BASE}/device-sessions/{{handle}}/force-checkin": Example(
        response=CLOSED, refusals=(*ADMIN_REFUSALS, NOT_FOUND, UNAVAILABLE)
    ),
    f"POST {BASE}/devices/{{device_id}}/checkout": Example(
        request={
            "assertion": "eyJhbGciOiJFUzI1NiIsInR5cCI6ImxhbnlhcmQtY2hlY2tvdXQrand0In0.…",
            "locker_version": "4.3.0",
            "sso_extension_installed": True,
        },
        response={
            "device_session_id": HANDLE,
            "handle": HANDLE,
            "state": "ACTIVE",
            "sequence": 1,
            "user_id": "usr_UJw-GYk67J-aEPlX",
            "sso": SSO_AVAILABLE,
            "locker_options": LOCKER_OPTIONS,
        },
        status=201,
        refusals=(
            invalid(f"body.locker_version: String should match pattern '{RELEASE_PATTERN}'"),
            PROOF_REFUSED,
            (401, "assertion_replayed", "the checkout assertion was already used"),
            (403, "second_factor_required", "the enterprise requires a second factor"),
            (403, "locker_update_required", "this device's Locker is older than 4.3: update it to check out"),
            UNAVAILABLE,
        ),
    ),
    f"GET {BASE}/device-sessions/{{handle}}": Example(response=LOCKER_VIEW, refusals=(PROOF_REFUSED, NOT_FOUND)),
    f"POST {BASE}/device-sessions/{{handle}}/activity": Example(
        response=LOCKER_VIEW, refusals=(PROOF_REFUSED, NOT_FOUND)
    ),
    f"POST {BASE}/device-sessions/{{handle}}/checkin": Example(
        response={**CLOSED, "closed_reason": "user", "locker_options": LOCKER_OPTIONS},
        refusals=(PROOF_REFUSED, NOT_FOUND, UNAVAILABLE),
    ),
    f"POST {BASE}/device-sessions/{{handle}}/face/challenge": Example(
        response={"challenge": "Jq3u1H2mXkUeV0c9oWb7sQz8Vn4Rt6Lp0aYdKfE2hC5", "expires_at": 1796189769.952},
        status=201,
        refusals=(PROOF_REFUSED, NOT_FOUND),
    ),
    f"POST {BASE}/device-sessions/{{handle}}/face/result": Example(
        request={"result": "eyJhbGciOiJFUzI1NiIsInR5cCI6ImxhbnlhcmQtZmFjZStqd3QifQ.…"},
        response={
            "verified": True,
            "unlocked": True,
            "reason": None,
            "failures": 0,
            "limit_reached": False,
            "state": "ACTIVE",
            "sequence": 4,
        },
        refusals=(invalid("body.result: Field required"), PROOF_REFUSED, NOT_FOUND),
    ),
}
