"""Settings of the audit service (env prefix LANYARD_AUDIT_)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import ClassVar, Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from lanyard.runtime.settings import ServiceSettings


class AuditSettings(ServiceSettings):
    """Everything the audit service reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="LANYARD_AUDIT_", extra="ignore", frozen=True)
    service_name: ClassVar[str] = "audit"

    http_port: int = 8104
    consumer_batch_wait_ms: int = Field(
        default=100,
        ge=0,
        le=1000,
        description="the audit log is on no user's path: larger batches, one transaction and one commit each",
    )
    db_path: Path = Field(default=Path(".var/audit/audit.sqlite"), description="the SQLite audit log file")
    sqlite_synchronous: Literal["FULL", "NORMAL"] = Field(
        default="FULL", description="FULL: a record whose offset is committed survives power loss (see sqlite_store)"
    )
    checkpoint_key: SecretStr | None = Field(
        default=None,
        description="Ed25519 private key (base64url of its 32-byte seed) that signs pruning checkpoints; "
        "`lanyard-audit keygen` makes one",
    )
    checkpoint_public_key: str | None = Field(
        default=None,
        description="Ed25519 public key (base64url, 32 bytes) that verifies checkpoints; derived from "
        "checkpoint_key when only that is set",
    )
    consume: bool = Field(default=True, description="False: a query-only process over an existing file")
    max_page: int = Field(default=1000, gt=0, description="largest page the records query returns")
    export_batch: int = Field(default=500, gt=0, description="records read per batch while streaming an export")

    def checkpoint_signer(self) -> Ed25519PrivateKey | None:
        """The key that signs checkpoints, or None when not configured."""
        if self.checkpoint_key is None:
            return None
        return Ed25519PrivateKey.from_private_bytes(_b64(self.checkpoint_key.get_secret_value()))

    def checkpoint_verifier(self) -> Ed25519PublicKey | None:
        """The key that verifies checkpoints, or None when neither key is configured."""
        if self.checkpoint_public_key:
            return Ed25519PublicKey.from_public_bytes(_b64(self.checkpoint_public_key))
        signer = self.checkpoint_signer()
        return signer.public_key() if signer else None

    @field_validator("checkpoint_key", "checkpoint_public_key")
    @classmethod
    def _is_32_bytes(cls, value: SecretStr | str | None) -> SecretStr | str | None:
        raw = value.get_secret_value() if isinstance(value, SecretStr) else value
        if raw is not None:
            try:
                decoded = _b64(raw)
            except ValueError:
                decoded = b""
            if len(decoded) != 32:
                raise ValueError("an Ed25519 key is 32 bytes, base64url-encoded (see `lanyard-audit keygen`)")
        return value


def _b64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text.strip() + "=" * (-len(text.strip()) % 4))


def encode_key(raw: bytes) -> str:
    """base64url without padding, the form the key settings take."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
