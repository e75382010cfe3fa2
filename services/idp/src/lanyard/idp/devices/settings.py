"""Settings of the IdP's device-session side (env prefix LANYARD_IDP_, like the rest of the IdP).

Kept apart from `IdpSettings` so the device side's knobs live next to the code that reads them.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class DeviceSettings(BaseSettings):
    """Bounds of the device-session read model, SSO and back-channel logout delivery."""

    model_config = SettingsConfigDict(env_prefix="LANYARD_IDP_", extra="ignore", frozen=True)

    grant_wait_s: float = Field(default=2.0, ge=0, description="how long SSO waits for a checkout or grant in flight")
    grant_poll_s: float = Field(default=0.05, gt=0, description="Redis poll interval while waiting (multi-instance)")
    poll_ms: int = Field(
        default=1, ge=1, le=100, description="idle poll of the device-session consumer (revocation latency)"
    )
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
