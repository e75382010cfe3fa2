"""Sealing splices an entry's canonical event text into the hash material as it is; verification
re-canonicalises the stored text. Both must give the same hash for any JSON document, or a chain
written by one would not verify with the other. Likewise the time format's fast path."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from lanyard.audit.domain import (
    GENESIS_HASH,
    Position,
    StoredRecord,
    canonical_json,
    chain_hash,
    entry_from_json,
    format_time,
    seal,
    verify_chain,
)

PROPERTIES = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

NUMBERS = (
    st.integers()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([0.0, -0.0, 1e16, 1e-7, 0.1, 1.5e-300, 2.5e300, 123456789.125, -1e22])
)
TEXT = st.text() | st.sampled_from(['"', "\\", "\n\t\r\b\f", "\x00\x1f\x7f", "\u2028\u2029", "é漢字🙂", "</script>"])
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | NUMBERS | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=25,
)
ZONES = st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-11))])


@st.composite
def documents(draw: st.DrawFn) -> dict[str, Any]:
    """An event document entry_from_json accepts, with arbitrary extra and nested content."""
    document = draw(st.dictionaries(TEXT, JSON_VALUES, max_size=5))
    moment = draw(st.datetimes(min_value=datetime(1, 1, 2), timezones=st.none() | ZONES))
    document.update(
        event_id=draw(TEXT.filter(bool)),
        type=draw(TEXT),
        enterprise_id=draw(TEXT),
        occurred_at=moment.isoformat(),
        subject=draw(st.dictionaries(TEXT, JSON_VALUES, max_size=3)),
        payload=draw(st.dictionaries(TEXT, JSON_VALUES, max_size=6)),
    )
    return document


POSITIONS = st.builds(Position, TEXT, st.integers(min_value=0, max_value=2**31), st.integers(min_value=0))
PREV_HASHES = st.just(GENESIS_HASH) | st.text(alphabet="0123456789abcdef", min_size=64, max_size=64) | TEXT


def respelled(event_json: str) -> str:
    """The same JSON value spelled another way: keys reversed, spaces, \\u escapes."""

    def reverse(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: reverse(v) for k, v in reversed(value.items())}
        if isinstance(value, list):
            return [reverse(v) for v in value]
        return value

    return json.dumps(reverse(json.loads(event_json)), ensure_ascii=True, indent=1)


@PROPERTIES
@given(documents(), POSITIONS, st.integers(min_value=1, max_value=2**63), PREV_HASHES)
@example(
    {"event_id": "e", "type": "t", "enterprise_id": "x", "occurred_at": "2026-11-30T08:00:00Z",
     "payload": {"n": [1, -0.0, 1e16, 0.1, 2**70, True, None], "s": "é\"\\\n\u2028🙂", "z": {"b": {}, "a": []}}},
    Position('top"ic\\ü', 3, 12),
    1,
    GENESIS_HASH,
)  # fmt: skip
def test_the_sealed_hash_is_the_one_verification_recomputes_from_the_stored_text(document, position, seq, prev):
    entry = entry_from_json(document, position)
    record = seal(entry, seq, prev)
    assert record.hash == chain_hash(seq, prev, entry.event_json, position)
    # The recomputation is independent of how the stored text is spelled.
    assert record.hash == chain_hash(seq, prev, respelled(entry.event_json), position)
    # Both are the hash's definition: SHA-256 over the canonical array holding the event.
    array = [seq, prev, json.loads(entry.event_json), position.topic, position.partition, position.offset]
    assert record.hash == hashlib.sha256(canonical_json(array).encode("utf-8")).hexdigest()


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(documents(), min_size=1, max_size=4), st.data())
def test_a_chain_sealed_from_generated_documents_verifies(docs, data):
    records, prev = [], GENESIS_HASH
    for i, document in enumerate(docs, start=1):
        rec = seal(entry_from_json(document, data.draw(POSITIONS)), i, prev)
        records.append(rec)
        prev = rec.hash
    stored = [StoredRecord(r, r.entry.clients) for r in records]
    verdict = verify_chain(stored, checkpoint=None, key=None, head=(len(records), prev))
    assert verdict.ok, verdict


@pytest.mark.parametrize(
    ("seq", "prev", "position"),
    [(True, GENESIS_HASH, Position("t", 0, 1)), (2, None, Position("t", False, 1)), (3, "h", Position(7, 1, 2.5))],
)
def test_values_that_are_not_plain_ints_and_strings_are_written_as_the_encoder_writes_them(seq, prev, position):
    entry = entry_from_json({"event_id": "e", "type": "t", "enterprise_id": "x", "occurred_at": "2026-01-01"}, position)
    assert seal(entry, seq, prev).hash == chain_hash(seq, prev, entry.event_json, position)


def test_sealing_non_text_event_json_fails_as_before():
    entry = entry_from_json(
        {"event_id": "e", "type": "t", "enterprise_id": "x", "occurred_at": "2026-01-01"}, Position("t", 0, 0)
    )
    broken = entry.__class__(**{**entry.__dict__, "event_json": None})
    with pytest.raises(TypeError):
        seal(broken, 1, GENESIS_HASH)


def strftime_format(moment: datetime) -> str:
    """format_time as it was written before its fast path."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@PROPERTIES
@given(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.none() | ZONES))
@example(datetime(999, 12, 31, 23, 59, 59, 999999))
@example(datetime(1000, 1, 1, 0, 0, 0, 1, tzinfo=timezone(timedelta(hours=5, minutes=30))))
@example(datetime(2026, 11, 30, 8, tzinfo=UTC))
def test_format_time_writes_what_strftime_wrote(moment):
    assert format_time(moment) == strftime_format(moment)
