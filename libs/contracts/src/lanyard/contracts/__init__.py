"""Lanyard event contracts: the envelope, every v1 event, the topic registry, JSON Schemas.

Imports pydantic and nothing else from the repo (import-linter enforces it).
"""

from lanyard.contracts.envelope import CORRELATION_HEADER, TYPE_HEADER, Event, Model, Subject
from lanyard.contracts.events import BY_TYPE, EVENT_TYPES, AnyEvent, UnknownEventType, decode_event
from lanyard.contracts.ids import uuid7
from lanyard.contracts.topics import ALL_TOPICS, BY_NAME, TOPICS, Topic

__all__ = [
    "ALL_TOPICS", "BY_NAME", "BY_TYPE", "CORRELATION_HEADER", "EVENT_TYPES", "TOPICS", "TYPE_HEADER",
    "AnyEvent", "Event", "Model", "Subject", "Topic", "UnknownEventType", "decode_event", "uuid7",
]  # fmt: skip
