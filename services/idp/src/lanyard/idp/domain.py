"""The IdP's domain records and rules: pure, no I/O.

Directory and app-profile records are owned by the directory/profiles side of the IdP; the OIDC
protocol side (lanyard.idp.oidc) reads them through the ports in `ports.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

Role = Literal["superadmin", "admin", "auditor", "user"]
ClientType = Literal["public", "confidential"]

DEFAULT_CLAIMS: tuple[str, ...] = ("sub", "name", "preferred_username", "email", "employee_id", "groups")
"""The claims every OIDC application profile releases unless an admin changes them."""


@dataclass(frozen=True)
class Enterprise:
    """A tenant. Its issuer is `{public_base}/e/{enterprise_id}`."""

    enterprise_id: str
    name: str
    created_at: datetime


@dataclass(frozen=True)
class User:
    """A directory user as the protocol side sees it (no password hash, no TOTP secret)."""

    enterprise_id: str
    user_id: str
    username: str
    display_name: str
    email: str | None = None
    employee_id: str | None = None
    groups: tuple[str, ...] = ()
    roles: tuple[Role, ...] = ("user",)
    status: Literal["active", "disabled", "locked"] = "active"
    totp_enrolled: bool = False
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ClaimMapping:
    """A custom claim released in tokens, read from a user attribute."""

    claim: str
    source: str


@dataclass(frozen=True)
class Client:
    """An SSO application profile (an OIDC client)."""

    enterprise_id: str
    client_id: str
    profile_name: str
    display_name: str
    client_type: ClientType
    redirect_uris: tuple[str, ...]
    post_logout_redirect_uris: tuple[str, ...] = ()
    backchannel_logout_uri: str | None = None
    scopes: tuple[str, ...] = ("openid", "profile", "email", "offline_access")
    custom_claims: tuple[ClaimMapping, ...] = ()
    enabled: bool = True

    @property
    def is_public(self) -> bool:
        """Native apps are public clients (RFC 8252 §8.4): no secret, PKCE required."""
        return self.client_type == "public"


@dataclass(frozen=True)
class OrgSettings:
    """MAM org settings the IdP honours (from lanyard.policy-config.v1)."""

    password_autofill_and_sso: bool = False
    require_second_factor: bool = True


@dataclass(frozen=True)
class BrowserSession:
    """A login at the interactive login page (cookie-bound). `sid` is the OIDC session id."""

    enterprise_id: str
    sid: str
    user_id: str
    auth_time: int
    amr: tuple[str, ...]


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


class TemporarilyUnavailable(Exception):
    """The IdP cannot vouch that its view of device sessions is fresh: fail closed (DESIGN §4)."""


@dataclass(frozen=True)
class RevokedSession:
    """What revoking one OIDC session ended: for events and back-channel logout."""

    sid: str
    user_id: str
    client_ids: tuple[str, ...]
