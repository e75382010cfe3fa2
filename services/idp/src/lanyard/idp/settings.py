"""Settings of the idp service, all read from the environment with the prefix LANYARD_IDP_:

- `IdpSettings`: the service (ports, broker, Redis, keys, lockout, admin and login lifetimes);
- `OidcConfig`: the oidc part (code, access, ID and refresh token lifetimes, algorithms, caches);
- `DeviceSettings`: the devices part (SSO waits, freshness, back-channel logout delivery).

Three classes because each part is built and tested with its own; one prefix because they are
one service's settings (docs/operations.md lists the variables).
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from lanyard.runtime.settings import ServiceSettings


class IdpSettings(ServiceSettings):
    """Everything the idp service reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="LANYARD_IDP_", extra="ignore", frozen=True)
    service_name: ClassVar[str] = "idp"

    http_port: int = 8101
    instances: int = Field(
        default=1,
        ge=1,
        le=16,
        description="IdP processes on this host and port (SO_REUSEPORT: the kernel spreads the connections). Each "
        "is a full instance: its own consumers in the group (consumer_instance suffixed -1, -2, …), the read "
        "models, freshness watermarks and back-channel queue shared in Redis. For the GIL-bound token endpoints "
        "on a machine with idle cores; each instance answers /metrics for itself",
    )

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


class OidcConfig(BaseSettings):
    """The oidc part's tunables: lifetimes, algorithms, limits (env prefix LANYARD_IDP_, e.g.
    `LANYARD_IDP_ACCESS_TOKEN_TTL_S`). Built and tested with its ports alone; `create_app`
    passes the service's public base URL and login cookie name in."""

    model_config = SettingsConfigDict(env_prefix="LANYARD_IDP_", extra="ignore", frozen=True)

    public_base_url: str = "http://127.0.0.1:8480"
    code_ttl_s: int = 60
    code_replay_window_s: int = 600
    access_token_ttl_s: int = 300
    id_token_ttl_s: int = 300
    refresh_token_ttl_s: int = 12 * 3600
    # How long after its rotation a refresh token may be presented again as the retry of an answer
    # the app never got (only while its successor is unused; the successor then dies). Bounded
    # like Okta's rotation grace (≤ 60 s): long enough for a broker restart, short for a thief,
    # who is still caught once both parties refresh. 0 makes every second use reuse.
    refresh_retry_grace_s: float = 60.0
    interaction_ttl_s: int = 600
    id_token_alg: str = "RS256"
    # ES256 signs ~4x faster than RS256 here (0.19 ms vs 0.81 ms); RFC 9068 only requires RS256
    # *support*, which our JWKS and resource servers have.
    access_token_alg: str = "ES256"
    # OIDC Core §12.2: a refresh response "might not contain an id_token". Off by default: an RS256
    # signature per refresh would halve refresh throughput, and RPs keep the first ID token.
    id_token_on_refresh: bool = False
    resource_audience: str | None = None
    browser_cookie: str = "lanyard_idp_session"
    max_query_bytes: int = 8192
    max_param_chars: int = 2048
    enterprise_cache_s: float = 30.0
    client_cache_s: float = 5.0
    keys_cache_s: float = 5.0
    # The admin console (`/console/` on the same origin) as a built-in public client of every
    # enterprise; its access tokens may carry the admin audience and roles (domain.ADMIN_SCOPE).
    console_client: bool = True
    # In-process caches are keyed by what requests name (client ids, secrets): each holds at most
    # this many entries, least recently used evicted first, so made-up ids cannot grow memory.
    cache_entries: int = 10_000

    def audience(self, issuer: str) -> str:
        """The `aud` of our access tokens: a configured resource id, else our UserInfo endpoint."""
        return self.resource_audience or f"{issuer}/userinfo"


class DeviceSettings(BaseSettings):
    """Bounds of the device-session read model, SSO and back-channel logout delivery."""

    model_config = SettingsConfigDict(env_prefix="LANYARD_IDP_", extra="ignore", frozen=True)

    grant_wait_s: float = Field(default=2.0, ge=0, description="how long SSO waits for a checkout or grant in flight")
    grant_poll_s: float = Field(default=0.05, gt=0, description="Redis poll interval while waiting (multi-instance)")
    max_staleness_s: float = Field(
        default=5.0, gt=0, description="refuse device SSO/refresh when the consumer cannot show freshness this long"
    )
    freshness_tick_s: float = Field(default=0.25, gt=0, description="how often freshness is re-evaluated")
    proof_max_skew_s: int = Field(default=60, gt=0, le=300, description="device proof iat skew bound")

    bcl_timeout_s: float = Field(default=5.0, gt=0, description="HTTP timeout of one logout-token POST")
    # 20 attempts (1 s doubling, capped at 300 s) span about an hour, so bcl_max_age_s decides; 6
    # gave up after 31 s and an app down for a minute was never told of a checkin (the soak).
    bcl_max_attempts: int = Field(default=20, ge=1, description="POST attempts before a delivery fails")
    bcl_backoff_s: float = Field(default=1.0, gt=0, description="first retry delay; doubles per attempt")
    bcl_max_backoff_s: float = Field(default=300.0, gt=0)
    bcl_max_age_s: float = Field(default=3600.0, gt=0, description="a delivery older than this fails")
    bcl_lease_s: float = Field(default=30.0, gt=0, description="a claimed delivery is invisible this long")
    bcl_poll_s: float = Field(default=0.5, gt=0, description="worker poll interval when idle")
    bcl_batch: int = Field(default=16, ge=1, description="deliveries claimed per round")
    bcl_token_ttl_s: int = Field(default=120, gt=0, le=120, description="logout token lifetime")
