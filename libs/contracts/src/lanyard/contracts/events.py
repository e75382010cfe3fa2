"""Every v1 event, grouped by topic. Names are past tense; `type` strings carry the version.

Adding an optional field is allowed; removing or retyping a field, or adding a required one,
is a breaking change that `tests/test_compat.py` refuses against the exported schemas.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, ClassVar, Literal, Union

from pydantic import Field, TypeAdapter, ValidationError

from lanyard.contracts import topics
from lanyard.contracts.envelope import Event, Model
from lanyard.contracts.versions import DEFAULT_MINIMUM_LOCKER_VERSION, MINIMUM_PATTERN, RELEASE_PATTERN

SERVICES_REALM = "_services"
"""The `enterprise_id` of events about the vendor's services principals, which belong to no
enterprise (enterprise ids never start with `_`)."""

# --------------------------------------------------------------------------- directory (idp)

UserStatus = Literal["active", "disabled", "locked"]


class UserUpsertedPayload(Model):
    """A directory user as other services may see it: never a password hash or TOTP secret."""

    user_id: str
    username: str
    display_name: str
    email: str | None = None
    employee_id: str | None = None
    groups: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    status: UserStatus = "active"
    totp_enrolled: bool = False


class UserUpserted(Event[UserUpsertedPayload]):
    topic: ClassVar = topics.DIRECTORY
    key_field: ClassVar[str] = "user_id"
    type: Literal["directory.user_upserted.v1"] = "directory.user_upserted.v1"


class UserDeletedPayload(Model):
    user_id: str


class UserDeleted(Event[UserDeletedPayload]):
    topic: ClassVar = topics.DIRECTORY
    key_field: ClassVar[str] = "user_id"
    type: Literal["directory.user_deleted.v1"] = "directory.user_deleted.v1"


class GroupUpsertedPayload(Model):
    group_id: str
    name: str
    description: str | None = None


class GroupUpserted(Event[GroupUpsertedPayload]):
    topic: ClassVar = topics.DIRECTORY
    key_field: ClassVar[str] = "group_id"
    type: Literal["directory.group_upserted.v1"] = "directory.group_upserted.v1"


class GroupDeletedPayload(Model):
    group_id: str


class GroupDeleted(Event[GroupDeletedPayload]):
    topic: ClassVar = topics.DIRECTORY
    key_field: ClassVar[str] = "group_id"
    type: Literal["directory.group_deleted.v1"] = "directory.group_deleted.v1"


# ------------------------------------------------------------------------- app profiles (idp)

ClientType = Literal["public", "confidential"]


class ClaimMapping(Model):
    """A custom claim: its name in tokens and the user attribute it is read from."""

    claim: str
    source: str


class AppProfileUpsertedPayload(Model):
    """An SSO application profile (an OIDC client); never its secret or the secret's hash."""

    client_id: str
    profile_name: str
    display_name: str
    client_type: ClientType
    redirect_uris: tuple[str, ...]
    post_logout_redirect_uris: tuple[str, ...] = ()
    backchannel_logout_uri: str | None = None
    scopes: tuple[str, ...] = ("openid", "profile", "email")
    custom_claims: tuple[ClaimMapping, ...] = ()
    enabled: bool = True
    template: str | None = None
    require_pkce: bool | None = Field(default=None, description="PKCE required even though the client is confidential")
    credentials_source: Literal["generated", "rp_supplied"] | None = Field(
        default=None, description="who chose the client id and secret: Lanyard, or the RP (Web App Login Configuration)"
    )
    id_token_signed_response_alg: str | None = Field(
        default=None,
        description="the JWS alg of this client's ID tokens (OIDC Dynamic Client Registration §2); "
        "None: the IdP's default (RS256)",
    )


class AppProfileUpserted(Event[AppProfileUpsertedPayload]):
    topic: ClassVar = topics.APP_PROFILES
    key_field: ClassVar[str] = "client_id"
    type: Literal["app_profile.upserted.v1"] = "app_profile.upserted.v1"


class AppProfileDeletedPayload(Model):
    client_id: str


class AppProfileDeleted(Event[AppProfileDeletedPayload]):
    topic: ClassVar = topics.APP_PROFILES
    key_field: ClassVar[str] = "client_id"
    type: Literal["app_profile.deleted.v1"] = "app_profile.deleted.v1"


class ClientSecretRotatedPayload(Model):
    """Only that it happened, and when the previous secret stops working."""

    client_id: str
    previous_secret_valid_until: datetime | None = None


class ClientSecretRotated(Event[ClientSecretRotatedPayload]):
    topic: ClassVar = topics.APP_PROFILES
    key_field: ClassVar[str] = "client_id"
    type: Literal["app_profile.secret_rotated.v1"] = "app_profile.secret_rotated.v1"


# ------------------------------------------------------------- services principals (idp)


class ServicesPrincipalChangedPayload(Model):
    """A vendor services principal (the seed's "Imprivata Services"): it belongs to no
    enterprise, may establish cloud trust and read configuration views. Never its secret."""

    principal_id: str
    name: str
    status: Literal["active", "revoked"]
    scopes: tuple[str, ...] = ()


class ServicesPrincipalChanged(Event[ServicesPrincipalChangedPayload]):
    """Published with `enterprise_id` = SERVICES_REALM."""

    topic: ClassVar = topics.DIRECTORY
    key_field: ClassVar[str] = "principal_id"
    type: Literal["directory.services_principal_changed.v1"] = "directory.services_principal_changed.v1"


# ------------------------------------------------------------------------ policy config (policy)

AuthMode = Literal["passcode", "face"]


class UserPolicyUpsertedPayload(Model):
    """A user policy and who it applies to. Lower `priority` wins when several apply."""

    policy_id: str
    name: str
    sso_enabled: bool
    auth_mode: AuthMode = "passcode"
    inactivity_timeout_s: int = Field(default=300, gt=0)
    max_session_s: int = Field(default=12 * 3600, gt=0)
    face_recency_s: int = Field(default=300, gt=0)
    priority: int = 100
    users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()


class UserPolicyUpserted(Event[UserPolicyUpsertedPayload]):
    topic: ClassVar = topics.POLICY_CONFIG
    key_field: ClassVar[str] = "policy_id"
    type: Literal["policy.user_policy_upserted.v1"] = "policy.user_policy_upserted.v1"


class UserPolicyDeletedPayload(Model):
    policy_id: str


class UserPolicyDeleted(Event[UserPolicyDeletedPayload]):
    topic: ClassVar = topics.POLICY_CONFIG
    key_field: ClassVar[str] = "policy_id"
    type: Literal["policy.user_policy_deleted.v1"] = "policy.user_policy_deleted.v1"


class AppDeploymentUpsertedPayload(Model):
    """An app profile deployed to users and groups."""

    client_id: str
    users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()


class AppDeploymentUpserted(Event[AppDeploymentUpsertedPayload]):
    topic: ClassVar = topics.POLICY_CONFIG
    key_field: ClassVar[str] = "client_id"
    type: Literal["policy.app_deployment_upserted.v1"] = "policy.app_deployment_upserted.v1"


class AppDeploymentDeletedPayload(Model):
    client_id: str


class AppDeploymentDeleted(Event[AppDeploymentDeletedPayload]):
    topic: ClassVar = topics.POLICY_CONFIG
    key_field: ClassVar[str] = "client_id"
    type: Literal["policy.app_deployment_deleted.v1"] = "policy.app_deployment_deleted.v1"


LicenceKind = Literal["sso", "apa"]


class LicenceUpsertedPayload(Model):
    """A licence: Single Sign On, or Advanced Passwordless Access (needed for face mode)."""

    licence_id: str
    kind: LicenceKind
    valid_from: datetime
    valid_until: datetime
    seats: int = Field(gt=0)


class LicenceUpserted(Event[LicenceUpsertedPayload]):
    topic: ClassVar = topics.POLICY_CONFIG
    key_field: ClassVar[str] = "licence_id"
    type: Literal["policy.licence_upserted.v1"] = "policy.licence_upserted.v1"


class LicenceDeletedPayload(Model):
    licence_id: str


class LicenceDeleted(Event[LicenceDeletedPayload]):
    topic: ClassVar = topics.POLICY_CONFIG
    key_field: ClassVar[str] = "licence_id"
    type: Literal["policy.licence_deleted.v1"] = "policy.licence_deleted.v1"


class OrgSettingsChangedPayload(Model):
    """MAM console > Admin > Check Out, plus the checkout behaviour for an occupied device."""

    settings_id: str = "org-settings"
    password_autofill_and_sso: bool = False
    require_second_factor: bool = True
    require_second_factor_locked: bool = False
    checkin_previous_on_checkout: bool = False
    face_match_threshold: float = Field(default=0.9, ge=0, le=1)
    face_liveness_threshold: float = Field(default=0.9, ge=0, le=1)
    face_max_failures: int = Field(default=5, gt=0)
    minimum_locker_version: str = Field(
        default=DEFAULT_MINIMUM_LOCKER_VERSION,
        pattern=MINIMUM_PATTERN,
        description="checkout is refused to a Locker app older than this (the seed: 4.3 or later)",
    )


class OrgSettingsChanged(Event[OrgSettingsChangedPayload]):
    topic: ClassVar = topics.POLICY_CONFIG
    key_field: ClassVar[str] = "settings_id"
    type: Literal["policy.org_settings_changed.v1"] = "policy.org_settings_changed.v1"


TrustRefusal = Literal["wrong", "used", "expired", "none", "services_only"]
"""Why an establish-trust attempt failed: wrong enterprise id or code, a used or void code, an
expired code, no code issued, or an enterprise admin trying what only Services may do."""


class TrustAttempt(Model):
    """One establish-trust attempt: who, as what kind of principal, and how it ended."""

    at: datetime
    by: str
    principal: Literal["services", "enterprise_admin"]
    outcome: Literal["established", "refused"]
    reason: TrustRefusal | None = None


class CloudConnectionChangedPayload(Model):
    """Trust between the enterprise and the cloud: established, or a failed attempt. Each record
    carries the whole state (the topic is compacted), including the last attempt."""

    connection_id: str = "cloud-connection"
    state: Literal["not_connected", "code_issued", "established"]
    failed_attempts: int = 0
    established_by: str | None = None
    established_at: datetime | None = None
    last_attempt: TrustAttempt | None = None


class CloudConnectionChanged(Event[CloudConnectionChangedPayload]):
    topic: ClassVar = topics.POLICY_CONFIG
    key_field: ClassVar[str] = "connection_id"
    type: Literal["policy.cloud_connection_changed.v1"] = "policy.cloud_connection_changed.v1"


class LockerOptionsChangedPayload(Model):
    """Locker custom options of an enterprise, delivered to the Locker app with every checkout
    and status read. `version` grows by one with every change; the highest wins."""

    options_id: str = "locker-options"
    version: int = Field(ge=1)
    hide_password_autofill_prompt: bool = Field(
        default=False, description="the seed: hide the Password Autofill prompt when apps use Locker SSO"
    )
    show_sso_status_at_checkout: bool = Field(
        default=True, description="tell the clinician at checkout whether SSO is available on the device"
    )


class LockerOptionsChanged(Event[LockerOptionsChangedPayload]):
    topic: ClassVar = topics.POLICY_CONFIG
    key_field: ClassVar[str] = "options_id"
    type: Literal["policy.locker_options_changed.v1"] = "policy.locker_options_changed.v1"


# ----------------------------------------------------------------------- device sessions (session)


class DeviceEnrolledPayload(Model):
    device_id: str
    model: str | None = None
    serial: str | None = None
    mdm_id: str | None = None
    public_jwk: dict[str, str]


class DeviceEnrolled(Event[DeviceEnrolledPayload]):
    topic: ClassVar = topics.DEVICE_SESSIONS
    key_field: ClassVar[str] = "device_id"
    type: Literal["session.device_enrolled.v1"] = "session.device_enrolled.v1"


class DeviceRetiredPayload(Model):
    device_id: str


class DeviceRetired(Event[DeviceRetiredPayload]):
    topic: ClassVar = topics.DEVICE_SESSIONS
    key_field: ClassVar[str] = "device_id"
    type: Literal["session.device_retired.v1"] = "session.device_retired.v1"


class DeviceSessionPayload(Model):
    """Common to every device-session transition. `sequence` grows by one per transition."""

    device_session_id: str
    device_id: str
    user_id: str
    sequence: int = Field(ge=1)


class DeviceCheckedOutPayload(DeviceSessionPayload):
    amr: tuple[str, ...]
    checked_out_at: datetime
    device_jkt: str = Field(description="RFC 7638 thumbprint of the device key the handle is bound to")
    locker_version: str | None = Field(default=None, description="the Locker app's release, as it reported it")
    sso_extension_installed: bool | None = Field(
        default=None, description="whether the Locker app found its SSO extension profile (from the MDM) installed"
    )


class DeviceCheckedOut(Event[DeviceCheckedOutPayload]):
    topic: ClassVar = topics.DEVICE_SESSIONS
    key_field: ClassVar[str] = "device_id"
    type: Literal["session.device_checked_out.v1"] = "session.device_checked_out.v1"


class CheckoutRefusedPayload(Model):
    """A checkout the session service refused before any session existed (audited, counted)."""

    device_id: str
    user_id: str
    reason: Literal["locker_update_required"]
    locker_version: str | None = Field(default=None, pattern=RELEASE_PATTERN)
    minimum_locker_version: str
    sso_extension_installed: bool | None = None


class CheckoutRefused(Event[CheckoutRefusedPayload]):
    topic: ClassVar = topics.DEVICE_SESSIONS
    key_field: ClassVar[str] = "device_id"
    type: Literal["session.checkout_refused.v1"] = "session.checkout_refused.v1"


class DeviceLockedPayload(DeviceSessionPayload):
    reason: Literal["inactivity", "admin"] = "inactivity"


class DeviceLocked(Event[DeviceLockedPayload]):
    topic: ClassVar = topics.DEVICE_SESSIONS
    key_field: ClassVar[str] = "device_id"
    type: Literal["session.device_locked.v1"] = "session.device_locked.v1"


class FaceVerifiedPayload(DeviceSessionPayload):
    """A successful face verification; `unlocked` when it moved the session LOCKED → ACTIVE."""

    verified_at: datetime
    unlocked: bool = False


class FaceVerified(Event[FaceVerifiedPayload]):
    topic: ClassVar = topics.DEVICE_SESSIONS
    key_field: ClassVar[str] = "device_id"
    type: Literal["session.face_verified.v1"] = "session.face_verified.v1"


class FaceVerificationFailedPayload(Model):
    device_session_id: str
    device_id: str
    user_id: str
    reason: Literal["no_match", "not_live", "bad_signature", "stale_challenge", "wrong_subject"]
    failures: int
    limit_reached: bool = False


class FaceVerificationFailed(Event[FaceVerificationFailedPayload]):
    topic: ClassVar = topics.DEVICE_SESSIONS
    key_field: ClassVar[str] = "device_id"
    type: Literal["session.face_verification_failed.v1"] = "session.face_verification_failed.v1"


CheckinReason = Literal[
    "user",
    "admin",
    "inactivity",
    "max_session",
    "entitlement_revoked",
    "replaced",
    "device_retired",
    "face_failures",
]


class DeviceCheckedInPayload(DeviceSessionPayload):
    reason: CheckinReason


class DeviceCheckedIn(Event[DeviceCheckedInPayload]):
    topic: ClassVar = topics.DEVICE_SESSIONS
    key_field: ClassVar[str] = "device_id"
    type: Literal["session.device_checked_in.v1"] = "session.device_checked_in.v1"


# ---------------------------------------------------------------------------- entitlements (policy)


class EntitlementGrantedPayload(Model):
    """What the user may do on this device session. `version` grows with every change."""

    device_session_id: str
    device_id: str
    user_id: str
    version: int = Field(ge=1)
    apps: tuple[str, ...]
    auth_mode: AuthMode
    inactivity_timeout_s: int
    max_session_s: int
    face_allowed: bool
    face_recency_s: int = 300
    policy_id: str


class EntitlementGranted(Event[EntitlementGrantedPayload]):
    topic: ClassVar = topics.ENTITLEMENTS
    type: Literal["entitlement.granted.v1"] = "entitlement.granted.v1"


DenialReason = Literal[
    "unknown_user",
    "user_disabled",
    "sso_disabled_for_org",
    "cloud_not_connected",
    "no_sso_licence",
    "sso_licence_expired",
    "sso_seats_exceeded",
    "no_policy",
    "policy_sso_disabled",
    "face_requires_apa",
    "apa_seats_exceeded",
    "no_apps_deployed",
    "second_factor_required",
]


class EntitlementDeniedPayload(Model):
    device_session_id: str
    device_id: str
    user_id: str
    reason: DenialReason
    detail: str = ""


class EntitlementDenied(Event[EntitlementDeniedPayload]):
    topic: ClassVar = topics.ENTITLEMENTS
    type: Literal["entitlement.denied.v1"] = "entitlement.denied.v1"


RevocationReason = Literal[
    "checked_in",
    "policy_changed",
    "app_undeployed",
    "licence_changed",
    "user_changed",
    "org_settings_changed",
]


class EntitlementRevokedPayload(Model):
    device_session_id: str
    device_id: str
    user_id: str
    reason: RevocationReason
    detail: str = ""


class EntitlementRevoked(Event[EntitlementRevokedPayload]):
    topic: ClassVar = topics.ENTITLEMENTS
    type: Literal["entitlement.revoked.v1"] = "entitlement.revoked.v1"


# ------------------------------------------------------------------------------ OIDC events (idp)


AuthChannel = Literal["login_page", "locker", "admin_api", "services_api"]
"""Where a user authenticated: the interactive login page, the Locker app, the admin API, or (a
vendor services principal, enterprise_id SERVICES_REALM) the services token endpoint."""


class UserAuthenticatedPayload(Model):
    """A user proved who they are at the IdP (login page, Locker authn API or admin API)."""

    user_id: str
    channel: AuthChannel
    amr: tuple[str, ...]
    device_id: str | None = None
    client_version: str | None = Field(default=None, description="the Locker app's release, when it reported it")


class UserAuthenticated(Event[UserAuthenticatedPayload]):
    topic: ClassVar = topics.OIDC_EVENTS
    key_field: ClassVar[str] = "user_id"
    type: Literal["oidc.user_authenticated.v1"] = "oidc.user_authenticated.v1"


class AuthenticationFailedPayload(Model):
    """A failed password or second factor; never the attempted secret."""

    username: str
    user_id: str | None = None
    channel: AuthChannel
    factor: Literal["password", "totp", "client_secret"]
    locked_out: bool = False


class AuthenticationFailed(Event[AuthenticationFailedPayload]):
    topic: ClassVar = topics.OIDC_EVENTS
    key_field: ClassVar[str] = "username"
    type: Literal["oidc.authentication_failed.v1"] = "oidc.authentication_failed.v1"


class AuthorizationGrantedPayload(Model):
    """An authorization code was issued: SSO activity for the session's inactivity timer."""

    client_id: str
    user_id: str
    sid: str
    via: Literal["sso_extension", "interactive", "silent"]
    device_session_id: str | None = None


class AuthorizationGranted(Event[AuthorizationGrantedPayload]):
    topic: ClassVar = topics.OIDC_EVENTS
    type: Literal["oidc.authorization_granted.v1"] = "oidc.authorization_granted.v1"


class TokensIssuedPayload(Model):
    client_id: str
    user_id: str
    sid: str
    grant_id: str
    grant_type: Literal["authorization_code", "refresh_token"]
    device_session_id: str | None = None


class TokensIssued(Event[TokensIssuedPayload]):
    topic: ClassVar = topics.OIDC_EVENTS
    type: Literal["oidc.tokens_issued.v1"] = "oidc.tokens_issued.v1"


class TokensRefreshed(Event[TokensIssuedPayload]):
    topic: ClassVar = topics.OIDC_EVENTS
    type: Literal["oidc.tokens_refreshed.v1"] = "oidc.tokens_refreshed.v1"


class TokensRevokedPayload(Model):
    client_id: str
    user_id: str
    grant_id: str
    reason: Literal["revocation_endpoint", "code_replay", "refresh_reuse", "session_revoked", "logout"]
    device_session_id: str | None = None


class TokensRevoked(Event[TokensRevokedPayload]):
    topic: ClassVar = topics.OIDC_EVENTS
    type: Literal["oidc.tokens_revoked.v1"] = "oidc.tokens_revoked.v1"


class SessionRevokedPayload(Model):
    """Every OIDC session (sid) of a device session or a browser login ended."""

    sid: str
    user_id: str
    reason: str
    clients: tuple[str, ...] = ()
    device_session_id: str | None = None


class SessionRevoked(Event[SessionRevokedPayload]):
    topic: ClassVar = topics.OIDC_EVENTS
    type: Literal["oidc.session_revoked.v1"] = "oidc.session_revoked.v1"


class BackchannelLogoutPayload(Model):
    client_id: str
    sid: str
    user_id: str
    attempts: int
    status_code: int | None = None
    error: str | None = None
    device_session_id: str | None = None


class BackchannelLogoutDelivered(Event[BackchannelLogoutPayload]):
    topic: ClassVar = topics.OIDC_EVENTS
    type: Literal["oidc.backchannel_logout_delivered.v1"] = "oidc.backchannel_logout_delivered.v1"


class BackchannelLogoutFailed(Event[BackchannelLogoutPayload]):
    """Rejected by the RP (4xx), or retries exhausted."""

    topic: ClassVar = topics.OIDC_EVENTS
    type: Literal["oidc.backchannel_logout_failed.v1"] = "oidc.backchannel_logout_failed.v1"


# --------------------------------------------------------------------------------- the registry

EVENT_TYPES: tuple[type[Event], ...] = (
    UserUpserted, UserDeleted, GroupUpserted, GroupDeleted,
    AppProfileUpserted, AppProfileDeleted, ClientSecretRotated, ServicesPrincipalChanged,
    UserPolicyUpserted, UserPolicyDeleted, AppDeploymentUpserted, AppDeploymentDeleted,
    LicenceUpserted, LicenceDeleted, OrgSettingsChanged, CloudConnectionChanged, LockerOptionsChanged,
    DeviceEnrolled, DeviceRetired, DeviceCheckedOut, CheckoutRefused, DeviceLocked, FaceVerified,
    FaceVerificationFailed, DeviceCheckedIn,
    EntitlementGranted, EntitlementDenied, EntitlementRevoked,
    UserAuthenticated, AuthenticationFailed, AuthorizationGranted, TokensIssued, TokensRefreshed,
    TokensRevoked, SessionRevoked, BackchannelLogoutDelivered, BackchannelLogoutFailed,
)  # fmt: skip

BY_TYPE: dict[str, type[Event]] = {cls.model_fields["type"].default: cls for cls in EVENT_TYPES}

AnyEvent = Annotated[Union[EVENT_TYPES], Field(discriminator="type")]  # noqa: UP007 (a union of a tuple)
"""Any event, told apart by its `type`: the union of `EVENT_TYPES`, so the list is written once."""

_ADAPTER: TypeAdapter[AnyEvent] = TypeAdapter(AnyEvent)


class UnknownEventType(ValueError):
    """A record whose `type` this version does not know (a newer producer): skip it, do not fail."""


def decode_event(raw: bytes | str) -> Event:
    """Parse a wire record into its concrete event class.

    Raises `UnknownEventType` for a well-formed record of a type this version does not know,
    and pydantic's `ValidationError` for anything malformed.
    """
    try:
        return _ADAPTER.validate_json(raw)
    except ValidationError:
        try:
            kind = json.loads(raw).get("type")
        except (ValueError, AttributeError):
            kind = None
        if isinstance(kind, str) and kind not in BY_TYPE:
            raise UnknownEventType(kind) from None
        raise
