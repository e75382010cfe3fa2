"""Handlers for the events the audit service consumes.

The subscribe helper hands a handler the decoded event; the audit log also needs the record's
topic, partition and offset and its exact wire JSON, which the runtime exposes as
`lanyard.runtime.consumer.current_record()` while the handler runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from lanyard.audit.domain import Position
from lanyard.audit.ports import AuditObserver, AuditStore
from lanyard.audit.service import parse_wire, record_event, record_events
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
        await record_event(self._store, self._observer, *_document(event, record))

    async def handle_batch(self, items: Sequence[tuple[Event, RawRecord]]) -> None:
        """Append one partition's fetched records in one transaction (the runtime falls back to
        `handle` record by record if this raises)."""
        await record_events(self._store, self._observer, [_document(event, record) for event, record in items])


def _document(event: Event, record: RawRecord) -> tuple[dict[str, Any], Position]:
    """The event's document as produced (its exact JSON when it parses and matches), and where it was read."""
    position = Position(record.topic, record.partition, record.offset)
    try:
        document = parse_wire(record.value)
    except ValueError:
        document = event.model_dump(mode="json")
    if document.get("event_id") != event.event_id:
        document = event.model_dump(mode="json")
    return document, position
