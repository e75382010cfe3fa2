"""Settings of the session service (env prefix LANYARD_SESSION_)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from lanyard.runtime.settings import RebuildingServiceSettings


class SessionSettings(RebuildingServiceSettings):
    """Everything the session service reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="LANYARD_SESSION_", extra="ignore", frozen=True)
    service_name: ClassVar[str] = "session"

    http_port: int = 8102
    consumer_batch_wait_ms: int = Field(
        default=25, ge=0, le=1000, description="activity and grants tolerate a few ms; batches spare the broker commits"
    )
    default_max_session_s: int = Field(default=12 * 3600, gt=0, description="until the first grant arrives")
    timer_poll_interval_s: float = Field(default=0.25, gt=0, description="how often due timers are looked for")
    timer_lease_s: float = Field(default=30.0, gt=0, description="a claimed timer fires again after this if lost")
    face_challenge_ttl_s: int = Field(default=120, gt=0)
    proof_max_skew_s: int = Field(default=60, gt=0)
    activity_resolution_s: float = Field(
        default=1.0, ge=0, description="SSO activity closer than this to activity already applied moves no deadline"
    )
    run_background: bool = Field(default=True, description="run the timer loop and the outbox relay")
    rebuild_activity_lookback_s: float = Field(
        default=24 * 3600, gt=0, description="how far back the rebuild reads SSO activity (lanyard.oidc-events.v1)"
    )
