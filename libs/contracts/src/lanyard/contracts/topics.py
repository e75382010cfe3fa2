"""The topic registry: every Kafka topic Lanyard uses, declared once.

Services, the test fixtures and `make kafka-topics` create topics from this list and nowhere
else, so partitions, cleanup policy and retention cannot drift between environments.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

DAY_MS = 24 * 60 * 60 * 1000


@dataclass(frozen=True)
class Topic:
    """One topic: its name, what its records are keyed by, and how the broker keeps them."""

    name: str
    key: str
    partitions: int
    cleanup: Literal["compact", "delete"]
    retention_ms: int | None
    producer: str

    @property
    def dlq(self) -> Topic:
        """The dead-letter topic for records of this topic that a consumer could not process."""
        return Topic(
            name=f"{self.name}.dlq",
            key=self.key,
            partitions=1,
            cleanup="delete",
            retention_ms=30 * DAY_MS,
            producer="any consumer",
        )

    def config(self) -> dict[str, str]:
        """Topic-level broker configuration, as the admin API wants it."""
        cfg = {"cleanup.policy": self.cleanup}
        if self.retention_ms is not None:
            cfg["retention.ms"] = str(self.retention_ms)
        if self.cleanup == "compact":
            # Compact promptly so a rebuild from the topic reads little history.
            cfg["min.cleanable.dirty.ratio"] = "0.1"
            cfg["segment.ms"] = str(DAY_MS)
        return cfg


DIRECTORY = Topic("lanyard.directory.v1", "user or group id", 3, "compact", None, "idp")
APP_PROFILES = Topic("lanyard.app-profiles.v1", "client id", 3, "compact", None, "idp")
POLICY_CONFIG = Topic("lanyard.policy-config.v1", "config item id", 3, "compact", None, "policy")
DEVICE_SESSIONS = Topic("lanyard.device-sessions.v1", "device id", 6, "delete", 7 * DAY_MS, "session")
ENTITLEMENTS = Topic("lanyard.entitlements.v1", "device-session id", 6, "delete", 7 * DAY_MS, "policy")
OIDC_EVENTS = Topic("lanyard.oidc-events.v1", "device-session id or user id", 6, "delete", 7 * DAY_MS, "idp")

TOPICS: tuple[Topic, ...] = (DIRECTORY, APP_PROFILES, POLICY_CONFIG, DEVICE_SESSIONS, ENTITLEMENTS, OIDC_EVENTS)
"""The source topics, in the order DESIGN §3 lists them."""

ALL_TOPICS: tuple[Topic, ...] = TOPICS + tuple(t.dlq for t in TOPICS)
"""Source topics and their dead-letter topics: everything the broker must hold."""

BY_NAME: dict[str, Topic] = {t.name: t for t in ALL_TOPICS}
