"""Settings of the audit service (env prefix LANYARD_AUDIT_)."""

from __future__ import annotations

from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from lanyard.runtime.settings import ServiceSettings


class AuditSettings(ServiceSettings):
    """Everything the audit service reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="LANYARD_AUDIT_", extra="ignore", frozen=True)
    service_name: ClassVar[str] = "audit"

    http_port: int = 8104
