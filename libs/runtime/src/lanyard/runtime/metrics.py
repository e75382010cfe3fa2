"""Prometheus metrics every service exposes on /metrics."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

CONSUMED = Counter("lanyard_events_consumed_total", "Records consumed, by outcome", ["topic", "group", "outcome"])
PUBLISHED = Counter("lanyard_events_published_total", "Events acknowledged by the broker", ["topic"])
HANDLER_SECONDS = Histogram("lanyard_handler_seconds", "Time spent handling one record", ["topic"])
