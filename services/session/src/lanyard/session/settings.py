"""Settings of the session service (env prefix LANYARD_SESSION_)."""

from __future__ import annotations

from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from lanyard.runtime.settings import ServiceSettings


class SessionSettings(ServiceSettings):
    """Everything the session service reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="LANYARD_SESSION_", extra="ignore", frozen=True)
    service_name: ClassVar[str] = "session"

    http_port: int = 8102
