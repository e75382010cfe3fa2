"""The envelope every Lanyard event travels in, and the wire encoding.

An event is a frozen pydantic model: envelope fields (who, when, which enterprise, which
subjects) plus a typed `payload`. On the wire it is UTF-8 JSON with `lanyard-type` and
`lanyard-correlation-id` headers, so operators can read topics with Kafka's console tools.
Changes are additive only; readers ignore fields they do not know.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from lanyard.contracts.ids import uuid7
from lanyard.contracts.topics import Topic

TYPE_HEADER = "lanyard-type"
CORRELATION_HEADER = "lanyard-correlation-id"


class Model(BaseModel):
    """Base of every contracts model: immutable, and tolerant of fields added later."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class Subject(Model):
    """The ids an event is about; audit and operators query by these without knowing the payload."""

    user_id: str | None = None
    device_id: str | None = None
    device_session_id: str | None = None
    client_id: str | None = None


P = TypeVar("P", bound=Model)


def _now() -> datetime:
    return datetime.now(UTC)


class Event(Model, Generic[P]):
    """Envelope plus payload. Concrete events fix `type`, `topic` and the payload class."""

    topic: ClassVar[Topic]
    key_field: ClassVar[str] = "device_session_id"

    event_id: str = Field(default_factory=uuid7, description="UUIDv7; consumers deduplicate by it")
    type: str
    occurred_at: datetime = Field(default_factory=_now)
    enterprise_id: str
    producer: str
    correlation_id: str | None = None
    actor: str | None = Field(default=None, description="the admin or user who caused it, if any")
    subject: Subject = Field(default_factory=Subject)
    payload: P

    def key(self) -> str:
        """The partition key: one enterprise's record of one thing always lands in one partition.

        The rule producers key by and consumers check (`record_key`, `wrong_key`): it reads only
        the event, so a record decoded from the wire has the key its producer computed. A type's
        `key_field` therefore never changes (that would move its subjects to other partitions)."""
        value = getattr(self.subject, self.key_field, None) or getattr(self.payload, self.key_field, None)
        if value is None:
            value = self.subject.user_id or self.event_id
        return f"{self.enterprise_id}:{value}"

    def record_key(self) -> bytes:
        """The Kafka record key every producer sends: `key()` in UTF-8."""
        return self.key().encode()

    def wrong_key(self, record_key: bytes | None) -> str | None:
        """Why a record carrying this event cannot be applied under `record_key`, or None if it can.

        A record whose key is not its event's key sits in another partition than the subject's
        other events, so its order against them (a checkin before its checkout) is not kept:
        consumers treat it as poison. Every producer sets the key, so a keyless record is one too.
        The reason names the event type and the key's field, never a key's value (a key may be a
        username)."""
        if record_key is None:
            return f"wrong key: {self.type} record has no key (expected enterprise id and {self.key_field})"
        if record_key != self.record_key():
            return f"wrong key: {self.type} record is not keyed by its enterprise id and {self.key_field}"
        return None

    def headers(self) -> dict[str, str]:
        """Kafka headers readable by console tools."""
        h = {TYPE_HEADER: self.type}
        if self.correlation_id:
            h[CORRELATION_HEADER] = self.correlation_id
        return h

    def to_json(self) -> bytes:
        """The wire form."""
        return self.model_dump_json().encode()
