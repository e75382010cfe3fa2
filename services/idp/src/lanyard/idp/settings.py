"""Settings of the idp service (env prefix LANYARD_IDP_)."""

from __future__ import annotations

from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from lanyard.runtime.settings import ServiceSettings


class IdpSettings(ServiceSettings):
    """Everything the idp service reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="LANYARD_IDP_", extra="ignore", frozen=True)
    service_name: ClassVar[str] = "idp"

    http_port: int = 8101
