"""Settings of the policy service (env prefix LANYARD_POLICY_)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from lanyard.runtime.settings import RebuildingServiceSettings


class PolicySettings(RebuildingServiceSettings):
    """Everything the policy service reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="LANYARD_POLICY_", extra="ignore", frozen=True)
    service_name: ClassVar[str] = "policy"

    http_port: int = 8103
    second_factor_enforced_after: datetime = Field(
        default=datetime(2025, 6, 1, tzinfo=UTC),
        description="enterprises created on or after this moment cannot switch the second factor off (MAM 7.0)",
    )
    provisioning_code_ttl_s: int = Field(default=300, gt=0, description="the seed: 5 minutes after generation")
    licence_check_interval_s: float = Field(default=5.0, gt=0, description="how often licence start/end is checked")
    apply_wait_s: float = Field(default=5.0, ge=0, description="how long the admin API waits for its own projection")
    supported_releases: dict[str, date] = Field(
        default={"0.1": date(2027, 12, 31)},
        description="release series Lanyard supports and the day support ends (the Help menu row); JSON in the env",
    )
    device_activity_window_s: int = Field(
        default=7 * 24 * 3600, gt=0, description="devices that checked out within this count in readiness"
    )
