"""Settings of the policy service (env prefix LANYARD_POLICY_)."""

from __future__ import annotations

from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from lanyard.runtime.settings import ServiceSettings


class PolicySettings(ServiceSettings):
    """Everything the policy service reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="LANYARD_POLICY_", extra="ignore", frozen=True)
    service_name: ClassVar[str] = "policy"

    http_port: int = 8103
