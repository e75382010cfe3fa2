"""Settings base for every service: one env prefix per service, shared infrastructure names.

`KAFKA_BOOTSTRAP_SERVERS` and `REDIS_URL` are read unprefixed as defaults (the test fixtures and
`make run` set them once for all services); `LANYARD_<SERVICE>_*` overrides per service.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from lanyard.runtime.consumer import RetryPolicy

DEFAULT_KAFKA = "127.0.0.1:29092"
DEFAULT_REDIS = "redis://127.0.0.1:26379/0"


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or default


class ServiceSettings(BaseSettings):
    """What every service needs to start. Subclasses set `service_name` and `env_prefix`."""

    model_config = SettingsConfigDict(env_prefix="LANYARD_", extra="ignore", frozen=True)
    service_name: ClassVar[str] = "lanyard"

    kafka_bootstrap_servers: str = Field(default_factory=lambda: _env("KAFKA_BOOTSTRAP_SERVERS", DEFAULT_KAFKA))
    redis_url: str = Field(default_factory=lambda: _env("REDIS_URL", DEFAULT_REDIS))
    http_host: str = "127.0.0.1"
    http_port: int = 8100
    blocking_threads: int = Field(
        default=1,
        ge=1,
        le=32,
        description="threads of the event loop's default executor (asyncio.to_thread). It bounds memory-hungry "
        "blocking work: an argon2id hash holds 64 MiB while it runs, and six at once (asyncio's default) took "
        "the IdP past 500 MB RSS; one at a time keeps it near 170 MB on a machine whose cores the hash keeps "
        "busy anyway",
    )
    public_base_url: str = Field(
        default_factory=lambda: _env("LANYARD_PUBLIC_BASE_URL", "http://127.0.0.1:8480"),
        description="the gateway's origin as clients see it; issuers are built from it",
    )
    log_level: str = "INFO"
    log_json: bool = True
    consumer_group: str | None = Field(default=None, description="defaults to lanyard-<service>")
    consumer_retry_backoff_s: float = Field(
        default=0.05, gt=0, description="first delay before a failing record is retried (never dead-lettered)"
    )
    consumer_retry_max_backoff_s: float = Field(
        default=1.0, gt=0, description="cap of the doubling delay: how late a held record sees its dependency back"
    )
    consumer_hold_s: float = Field(
        default=30.0, gt=0, description="in-place retrying of one batch before it is rewound and fetched again"
    )
    consumer_batch_wait_ms: int = Field(
        default=0,
        ge=0,
        le=1000,
        description="0: hand records over as soon as they arrive. More, for consumers off every user's path: "
        "the broker gathers records for up to this long (or consumer_batch_min_bytes) per fetch, so each "
        "fetch, handler batch and offset commit serves many records",
    )
    consumer_batch_min_bytes: int = Field(default=65_536, ge=1)
    consumer_instance: str | None = Field(
        default=None,
        max_length=200,
        description="static group membership (Kafka's group.instance.id), unique per process and kept across its "
        "restarts: a process restarted after a crash gets its partitions back at once instead of waiting for its "
        "dead predecessor's session timeout (10 s). A cleanly stopped one keeps them that long too",
    )
    create_topics: bool = True
    idempotency_ttl_s: int = Field(
        default=24 * 3600, gt=0, description="how long the first answer to an Idempotency-Key is replayed"
    )
    idempotency_secret_ttl_s: int = Field(
        default=300, gt=0, description="the same for answers that carry a secret (Cache-Control: no-store)"
    )
    outbox_interval_s: float = Field(default=1.0, gt=0, description="how often the outbox relay runs")
    outbox_grace_s: float = Field(default=5.0, ge=0, description="the request path's time to publish first")
    outbox_lease_s: float = Field(default=30.0, gt=0, description="a claimed event is published again after this")
    publish_timeout_s: float = Field(default=15.0, gt=0, description="after this an event is left to the relay")

    def retry_policy(self) -> RetryPolicy:
        """How this service's consumers retry a record that fails for any reason but poison."""
        return RetryPolicy(self.consumer_retry_backoff_s, self.consumer_retry_max_backoff_s, self.consumer_hold_s)

    def consumer_options(self) -> dict[str, Any]:
        """Extra `subscribe` options: static membership when configured, and this service's
        batching (none in latency mode)."""
        options: dict[str, Any] = {}
        if self.consumer_instance:
            options["group_instance_id"] = self.consumer_instance
        if self.consumer_batch_wait_ms:
            options.update(
                fetch_max_wait_ms=self.consumer_batch_wait_ms,
                fetch_min_bytes=self.consumer_batch_min_bytes,
            )
        return options

    @property
    def group_id(self) -> str:
        """The Kafka consumer group of this service."""
        return self.consumer_group or f"lanyard-{self.service_name}"


class RebuildingServiceSettings(ServiceSettings):
    """Settings of a service whose Redis state is rebuilt from Kafka when lost (`runtime.rebuild`)."""

    rebuild_on_start: bool = Field(
        default=True, description="rebuild the state from Kafka at startup when Redis lost it (no marker)"
    )
    rebuild_timeout_s: float = Field(
        default=120.0, gt=0, description="startup fails when the rebuild (or the wait for another's) takes longer"
    )
