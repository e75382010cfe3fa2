"""Settings of the audit service (env prefix LANYARD_AUDIT_)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from lanyard.runtime.settings import ServiceSettings


class AuditSettings(ServiceSettings):
    """Everything the audit service reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="LANYARD_AUDIT_", extra="ignore", frozen=True)
    service_name: ClassVar[str] = "audit"

    http_port: int = 8104
    db_path: Path = Field(default=Path(".var/audit/audit.sqlite"), description="the SQLite audit log file")
    sqlite_synchronous: Literal["FULL", "NORMAL"] = Field(
        default="FULL", description="FULL: a record whose offset is committed survives power loss (see sqlite_store)"
    )
    checkpoint_key: SecretStr | None = Field(
        default=None, description="HMAC-SHA256 key signing the pruning checkpoint; prune and verify need it"
    )
    consume: bool = Field(default=True, description="False: a query-only process over an existing file")
    max_page: int = Field(default=1000, gt=0, description="largest page the records query returns")
    export_batch: int = Field(default=500, gt=0, description="records read per batch while streaming an export")

    def checkpoint_key_bytes(self) -> bytes | None:
        """The checkpoint key as bytes, or None when not configured."""
        return self.checkpoint_key.get_secret_value().encode() if self.checkpoint_key else None
