"""Examples for the IdP's OpenAPI document (`lanyard.runtime.openapi`): the admin API (sign-in,
users, groups, app profiles) and the Locker's sign-in, as the demo enterprise's stack answered
them (the admin API's routes are in `directory.api`). The OIDC endpoints are in the discovery document, not here."""

from __future__ import annotations

from typing import Any

from lanyard.runtime.openapi import ADMIN_REFUSALS, INVALID_TOKEN, Example, invalid

BASE = "/e/{enterprise_id}"
WRITER = ADMIN_REFUSALS
SUPER = (INVALID_TOKEN, (403, "insufficient_role", "needs one of ('superadmin',)"))
USER: dict[str, Any] = {
    "user_id": "usr_qoyUat3ykEEo_8Zd",
    "username": "nurse.jane",
    "display_name": "Jane Doe, RN",
    "email": "nurse.jane@st-mungos.example",
    "employee_id": None,
    "groups": ["grp_jBEpDF2Bm0syNRkM"],
    "roles": ["user"],
    "status": "active",
    "totp_enrolled": True,
    "attributes": {},
    "badge_id": "badge-1001",
}
GROUP = {
    "enterprise_id": "st-mungos",
    "group_id": "grp_jBEpDF2Bm0syNRkM",
    "name": "Ward 4B",
    "description": "Inpatient ward, 4th floor",
}
PROFILE: dict[str, Any] = {
    "client_id": "cli_T4FjacJ88-kJMXvd",
    "profile_name": "Epic Rover",
    "display_name": "Rover",
    "client_type": "confidential",
    "redirect_uris": ["com.epic.rover.oidc://callback", "https://mobile.epic.com/rover/OIDC/redirect/"],
    "post_logout_redirect_uris": [],
    "backchannel_logout_uri": None,
    "id_token_signed_response_alg": None,
    "claims": ["sub", "name", "preferred_username", "email"],
    "custom_claims": [],
    "scopes": ["openid", "profile", "email", "offline_access"],
    "enabled": True,
    "template": "epic-rover",
    "has_secret": True,
    "require_pkce": True,
    "credentials_source": "generated",
}
ISSUER = "https://lanyard.example/e/st-mungos"
OTPAUTH = "otpauth://totp/Lanyard%3Anurse.jane?secret=B6Q4AICIEE5SGUCDJB4EC2AIYO2USOEC&issuer=Lanyard"

EXAMPLES: dict[str, Example] = {
    f"POST {BASE}/admin/token": Example(
        request={"username": "admin", "password": "a-long-passphrase", "totp": "492039"},
        response={
            "access_token": "eyJhbGciOiJSUzI1NiIsInR5cCI6ImF0K2p3dCJ9.…",
            "token_type": "Bearer",
            "expires_in": 900,
        },
        refusals=(
            (401, "invalid_grant", "the credentials are not valid"),
            (401, "second_factor_required", "this admin has TOTP enrolled: send totp"),
            (403, "access_denied", "this user holds no admin role"),
        ),
    ),
    f"GET {BASE}/admin/users": Example(response={"users": [USER]}, refusals=WRITER),
    f"POST {BASE}/admin/users": Example(
        request={
            "username": "nurse.jane",
            "display_name": "Jane Doe, RN",
            "email": "nurse.jane@st-mungos.example",
            "badge_id": "badge-1001",
            "groups": ["grp_jBEpDF2Bm0syNRkM"],
            "password": "a-long-passphrase",
        },
        response={**USER, "totp_enrolled": False},
        status=201,
        refusals=(invalid("body.username: Field required"), *WRITER),
    ),
    f"GET {BASE}/admin/users/{{user_id}}": Example(response=USER, refusals=WRITER),
    f"PATCH {BASE}/admin/users/{{user_id}}": Example(
        request={"groups": ["grp_jBEpDF2Bm0syNRkM"], "status": "active"}, response=USER, refusals=WRITER
    ),
    f"POST {BASE}/admin/users/{{user_id}}/totp": Example(
        response={"secret": "B6Q4AICIEE5SGUCDJB4EC2AIYO2USOEC", "otpauth_uri": OTPAUTH}, status=201, refusals=WRITER
    ),
    f"GET {BASE}/admin/groups": Example(response={"groups": [GROUP]}, refusals=WRITER),
    f"POST {BASE}/admin/groups": Example(
        request={"name": "Ward 4B", "description": "Inpatient ward, 4th floor"},
        response=GROUP,
        status=201,
        refusals=(invalid("body.name: Field required"), *WRITER),
    ),
    f"GET {BASE}/admin/app-profiles": Example(response={"app_profiles": [PROFILE]}, refusals=SUPER),
    f"POST {BASE}/admin/app-profiles": Example(
        request={
            "profile_name": "Epic Rover",
            "display_name": "Rover",
            "redirect_uris": ["com.epic.rover.oidc://callback"],
            "client_type": "public",
        },
        response={**PROFILE, "has_secret": False},
        status=201,
        refusals=(
            (
                400,
                "invalid_redirect_uri",
                "redirect_uris[0]: http is allowed only on the loopback IP literals 127.0.0.1 and [::1]",
            ),
            (
                400,
                "invalid_client_metadata",
                "id_token_signed_response_alg: must be one of RS256, ES256, or absent for the IdP's default (RS256)",
            ),
            *SUPER,
        ),
    ),
    f"GET {BASE}/admin/app-profiles/{{client_id}}": Example(response=PROFILE, refusals=SUPER),
    f"POST {BASE}/admin/app-profiles/{{client_id}}/credentials": Example(
        response={
            "client_id": "cli_T4FjacJ88-kJMXvd",
            "client_type": "confidential",
            "pkce_required": True,
            "reason": "the seed: Generate Client credentials creates a Client ID and Client secret …",
            "client_secret": "Mrd3P74WeJwINlF-T8UNX0lwhihozoe_ajsplFCkmIw",
        },
        status=201,
        refusals=((409, "credentials_already_issued", "the secret was shown once already; rotate it instead"), *SUPER),
    ),
    f"POST {BASE}/admin/app-profiles/{{client_id}}/credentials/rotate": Example(
        request={"grace_period_s": 3600},
        response={
            "client_id": "cli_T4FjacJ88-kJMXvd",
            "client_secret": "_dpfNJZjzMrlzOhOv-pIaQLv3TdH8mcrhS6y9PE2Yo0",
            "previous_secret_valid_until": 1796193245,
        },
        refusals=SUPER,
    ),
    f"GET {BASE}/admin/app-profiles/{{client_id}}/metadata": Example(
        response={
            "client_id": "cli_T4FjacJ88-kJMXvd",
            "issuer": ISSUER,
            "discovery_url": f"{ISSUER}/.well-known/openid-configuration",
            "authorization_endpoint": f"{ISSUER}/authorize",
            "token_endpoint": f"{ISSUER}/token",
            "userinfo_endpoint": f"{ISSUER}/userinfo",
            "jwks_uri": f"{ISSUER}/jwks",
            "revocation_endpoint": f"{ISSUER}/revoke",
            "introspection_endpoint": f"{ISSUER}/introspect",
            "end_session_endpoint": f"{ISSUER}/logout",
        },
        refusals=SUPER,
    ),
    f"POST {BASE}/locker/authn": Example(
        request={
            "device_id": "iphone-132a679ffd",
            "badge_id": "badge-1001",
            "totp": "492039",
            "locker_version": "4.3.0",
        },
        response={"assertion": "eyJhbGciOiJFUzI1NiJ9.…", "expires_in": 60},
        refusals=(
            (400, "invalid_request", "send username and password, or badge_id"),
            (401, "second_factor_required", "a second factor (totp) is required"),
        ),
    ),
}
