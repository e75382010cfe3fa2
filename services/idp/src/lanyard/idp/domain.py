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
