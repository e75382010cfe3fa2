"""Settings of the console (env prefix LANYARD_CONSOLE_)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from lanyard.runtime.settings import ServiceSettings


class ConsoleSettings(ServiceSettings):
    """Everything the console reads from its environment. It talks to Redis (its sessions) and to
    the gateway (the IdP and every admin API); it has no Kafka consumer or producer."""

    model_config = SettingsConfigDict(env_prefix="LANYARD_CONSOLE_", extra="ignore", frozen=True)
    service_name: ClassVar[str] = "console"

    http_port: int = 8105
    gateway_url: str | None = Field(
        default=None,
        description="where the console's server side reaches the gateway; defaults to public_base_url",
    )
    idle_timeout_s: int = Field(default=900, gt=0, le=24 * 3600, description="a session unused this long ends")
    session_max_s: int = Field(
        default=8 * 3600, gt=0, description="a session ends this long after sign-in, used or not"
    )
    login_ttl_s: int = Field(default=600, gt=0, description="how long a started sign-in may take")
    api_timeout_s: float = Field(default=10.0, gt=0)
    live_poll_ms: int = Field(default=1500, ge=250, description="how often live pages (device sessions) refresh")

    @property
    def api_base(self) -> str:
        """The gateway origin for server-side calls."""
        return (self.gateway_url or self.public_base_url).rstrip("/")

    @property
    def console_base(self) -> str:
        """The console's public URL prefix (what browsers see)."""
        return f"{self.public_base_url.rstrip('/')}/console"

    @property
    def cookie_secure(self) -> bool:
        """Secure cookies whenever browsers reach us over https."""
        return self.public_base_url.lower().startswith("https://")
