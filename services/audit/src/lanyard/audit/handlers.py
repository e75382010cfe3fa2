"""Handlers for the events the audit service consumes.

The subscribe helper hands a handler the decoded event; the audit log also needs the record's
topic, partition and offset and its exact wire JSON, which the runtime exposes as
`lanyard.runtime.consumer.current_record()` while the handler runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lanyard.audit.domain import Position
from lanyard.audit.ports import AuditObserver, AuditStore
from lanyard.audit.service import parse_wire, record_event
from lanyard.contracts import Event

RawRecord = Any
"""What the broker hands over per record: an object with topic, partition, offset and value."""


class AuditHandlers:
    """Appends every consumed event to the audit log."""

    def __init__(
        self, store: AuditStore, observer: AuditObserver, current_record: Callable[[], RawRecord | None]
    ) -> None:
        self._store = store
        self._observer = observer
        self._current_record = current_record

    async def handle(self, event: Event) -> None:
        """Append the event read from the current record (a redelivery is recognised and skipped)."""
        record = self._current_record()
        if record is None:
            raise RuntimeError("no Kafka record in context: the audit log needs topic, partition and offset")
        position = Position(record.topic, record.partition, record.offset)
        try:
            document = parse_wire(record.value)
        except ValueError:
            document = event.model_dump(mode="json")
        if document.get("event_id") != event.event_id:
            document = event.model_dump(mode="json")
        await record_event(self._store, self._observer, document, position)
