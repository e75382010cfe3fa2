"""Prometheus metrics every service exposes on /metrics."""

from __future__ import annotations

import functools
from typing import Any, TypeVar

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

M = TypeVar("M", bound=MetricWrapperBase)


@functools.cache
def labelled(metric: M, *values: str) -> Any:
    """`metric.labels(*values)`, looked up once per label set.

    `labels()` takes a lock and checks its arguments on every call; called per consumed record
    it was 3-7 % of a consumer's CPU (py-spy, docs/performance.md). The label sets are few
    (topics x groups), so the cache stays small."""
    return metric.labels(*values)


CONSUMED = Counter("lanyard_events_consumed_total", "Records consumed, by outcome", ["topic", "group", "outcome"])
PUBLISHED = Counter("lanyard_events_published_total", "Events acknowledged by the broker", ["topic"])
HANDLER_SECONDS = Histogram("lanyard_handler_seconds", "Time spent handling one record", ["topic"])
RECORD_AGE_SECONDS = Histogram(
    "lanyard_record_age_seconds",
    "From the record's timestamp (the producer's send) to its handler starting: broker, fetch and queueing delay",
    ["topic", "group"],
    buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
RETRIES = Counter(
    "lanyard_consumer_retries_total",
    "Failed attempts at a record that is held and retried (not poison)",
    ["topic", "group"],
)
HELD_PARTITIONS = Gauge(
    "lanyard_consumer_held_partitions",
    "Partitions whose current record is being retried (the service is not ready)",
    ["group"],
)
