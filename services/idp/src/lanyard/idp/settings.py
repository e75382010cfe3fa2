"""Settings of the idp service (env prefix LANYARD_IDP_)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from lanyard.runtime.settings import ServiceSettings


class IdpSettings(ServiceSettings):
    """Everything the idp service reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="LANYARD_IDP_", extra="ignore", frozen=True)
    service_name: ClassVar[str] = "idp"

    http_port: int = 8101

    # Keys. Retired keys stay in the JWKS until every token they signed has expired, so this must
    # be at least the longest lifetime of any JWT the IdP signs (ID, access, logout, admin tokens).
    max_token_lifetime_s: int = Field(default=3600, gt=0, description="longest lifetime of any JWT we sign")
    keys_cache_check_s: float = Field(
        default=1.0, ge=0, description="how often a process re-reads the key-ring version from Redis"
    )

    # Directory credentials.
    lockout_max_failures: int = Field(default=5, gt=0, description="failed passwords/codes before a lockout")
    lockout_window_s: int = Field(default=900, gt=0, description="failures older than this are forgotten")
    lockout_duration_s: int = Field(default=900, gt=0, description="how long a locked-out account waits")
    totp_issuer: str = "Lanyard"

    # Admin bearer tokens and checkout assertions.
    admin_token_ttl_s: int = Field(default=900, gt=0, le=3600)
    checkout_assertion_ttl_s: int = Field(default=60, gt=0, le=60)

    # Interactive login.
    browser_session_ttl_s: int = Field(default=8 * 3600, gt=0)
    pending_login_ttl_s: int = Field(default=300, gt=0)
    cookie_secure: bool = Field(default=False, description="set Secure on cookies (true behind https)")

    # Org settings from lanyard.policy-config.v1, cached briefly in process.
    org_settings_cache_s: float = Field(default=1.0, ge=0)

    # MDM SSO-extension profile.
    sso_extension_identifier: str = "dev.lanyard.locker.ssoextension"
    sso_extension_team_identifier: str = "LANYARD000"
