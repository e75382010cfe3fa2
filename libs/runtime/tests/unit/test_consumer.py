"""The consumer's pure parts: backoff arithmetic and the dead-letter copy's bounds, and the
size fallback of a dead-letter write (a fake broker stands in for the publish)."""

import pytest
from aiokafka.errors import MessageSizeTooLargeError

from lanyard.contracts import Topic
from lanyard.runtime.consumer import (
    DLQ_REASON,
    DLQ_SOURCE,
    DLQ_TRUNCATED,
    RecordInfo,
    RetryPolicy,
    _dead_letter,
    dead_letter_copy,
)
from lanyard.runtime.kafka import MAX_REQUEST_BYTES


def test_backoff_doubles_and_is_capped():
    policy = RetryPolicy(backoff_s=0.1, max_backoff_s=0.5)
    assert [policy.delay(a) for a in (1, 2, 3, 4, 5, 1000)] == [0.1, 0.2, 0.4, 0.5, 0.5, 0.5]


def record(value: bytes, headers=()) -> RecordInfo:
    return RecordInfo("t.v1", 2, 41, b"k", value, tuple(headers), 0)


def test_a_small_record_is_copied_whole_with_where_it_came_from():
    value, key, headers = dead_letter_copy(record(b"{}", [("lanyard-type", b"x.v1")]), "g", "undecodable", 1000)
    assert value == b"{}" and key == b"k"
    assert headers[DLQ_SOURCE] == "t.v1:2:41" and headers[DLQ_REASON] == "undecodable"
    assert headers["lanyard-type"] == "x.v1" and DLQ_TRUNCATED not in headers


def test_a_large_value_or_large_headers_are_cut_and_say_so():
    value, _, headers = dead_letter_copy(record(b"x" * 5000), "g", "r" * 2000, 1000)
    assert len(value) == 1000 and headers[DLQ_TRUNCATED] == "5000" and len(headers[DLQ_REASON]) == 500
    _, _, headers = dead_letter_copy(record(b"{}", [("h", b"v" * 100_000)]), "g", "r", 1000)
    assert "h" not in headers and headers[DLQ_TRUNCATED] == "2"


class SizeRefusingBroker:
    """Refuses any value above `limit` the way the broker does (MESSAGE_TOO_LARGE)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.tried: list[int] = []
        self.sent: list[tuple[bytes, dict]] = []

    async def publish(self, value, *, topic, key, headers):
        self.tried.append(len(value))
        if len(value) > self.limit:
            raise MessageSizeTooLargeError()
        self.sent.append((value, headers))


@pytest.mark.parametrize(("limit", "sent_bytes"), [(10**7, MAX_REQUEST_BYTES - 64 * 1024), (100_000, 65_536), (10, 0)])
async def test_a_copy_refused_as_too_large_is_sent_again_smaller(limit, sent_bytes):
    broker = SizeRefusingBroker(limit)
    topic = Topic("t.v1", "k", 1, "delete", None, "test")
    await _dead_letter(broker, topic, record(b"x" * 1_048_424), "g", "undecodable")
    [(value, headers)] = broker.sent
    assert len(value) == sent_bytes and headers[DLQ_TRUNCATED] == "1048424"
