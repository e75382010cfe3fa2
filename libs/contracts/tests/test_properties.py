"""Property tests of the wire contract (issue 17), beyond the golden samples of test_events.py:
whatever a producer could put on a topic, `decode_event` either refuses it with the two errors
consumers classify (ValidationError: poison, dead-lettered; UnknownEventType: skipped) or
returns an event that survives a round trip unchanged and re-encodes to the same key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from lanyard.contracts import BY_TYPE, UnknownEventType, decode_event

GOLDEN = Path(__file__).parent / "golden"
SAMPLES = {p.stem: json.loads(p.read_text()) for p in sorted(GOLDEN.glob("*.json"))}
REQUIRED_ENVELOPE = ("type", "enterprise_id", "producer", "payload")
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def decoded_or_refused(raw: bytes) -> Any:
    """The event, or None when refused as consumers expect; any other exception fails the test."""
    try:
        return decode_event(raw)
    except (ValidationError, UnknownEventType):
        return None


def paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path of a JSON document (dict keys and list indexes)."""
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for k, v in value.items():
            found += paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found += paths(v, (*prefix, i))
    return found


def replaced(doc: Any, path: tuple, new: Any) -> Any:
    doc = json.loads(json.dumps(doc))
    target = doc
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = new
    return doc


@FAST
@given(kind=st.sampled_from(sorted(SAMPLES)), data=st.data())
def test_a_mutated_event_is_refused_as_poison_or_round_trips(kind, data):
    sample = SAMPLES[kind]
    path = data.draw(st.sampled_from(paths(sample)))
    raw = json.dumps(replaced(sample, path, data.draw(JSON_VALUES))).encode()
    event = decoded_or_refused(raw)
    if event is not None:
        again = decode_event(event.to_json())
        assert again == event and again.key() == event.key()
        assert again.wrong_key(event.record_key()) is None  # what the producer keyed it by, the consumer accepts
        assert type(event) is BY_TYPE[event.type]


@FAST
@given(raw=st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_arbitrary_bytes_never_crash_the_decoder(raw):
    decoded_or_refused(raw)


@FAST
@given(kind=st.sampled_from(sorted(SAMPLES)), cut=st.integers(min_value=1))
def test_a_truncated_record_is_refused(kind, cut):
    raw = json.dumps(SAMPLES[kind]).encode()
    assert decoded_or_refused(raw[: cut % len(raw)]) is None


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_an_event_missing_a_required_envelope_field_is_poison_not_skipped(kind):
    for field in REQUIRED_ENVELOPE:
        doc = {k: v for k, v in SAMPLES[kind].items() if k != field}
        with pytest.raises(ValidationError):
            decode_event(json.dumps(doc))


@FAST
@given(kind=st.sampled_from(sorted(SAMPLES)), enterprise=st.text(min_size=1, max_size=40))
def test_round_trip_keeps_the_enterprise_whatever_it_is(kind, enterprise):
    doc = dict(SAMPLES[kind], enterprise_id=enterprise)
    event = decoded_or_refused(json.dumps(doc).encode())
    if event is not None:
        assert event.enterprise_id == enterprise
        assert json.loads(event.to_json())["enterprise_id"] == enterprise
        assert event.key().startswith(f"{enterprise}:")
