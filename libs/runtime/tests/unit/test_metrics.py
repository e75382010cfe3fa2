"""The metrics every service exposes: a label set looked up once still counts in /metrics."""

from prometheus_client import REGISTRY

from lanyard.runtime import metrics


def _consumed(outcome: str) -> float | None:
    labels = {"topic": "t-cached", "group": "g-cached", "outcome": outcome}
    return REGISTRY.get_sample_value("lanyard_events_consumed_total", labels)


def test_a_cached_label_set_counts_what_labels_would():
    metrics.labelled(metrics.CONSUMED, "t-cached", "g-cached", "ok").inc()
    metrics.labelled(metrics.CONSUMED, "t-cached", "g-cached", "ok").inc(2)
    metrics.CONSUMED.labels("t-cached", "g-cached", "ok").inc()
    assert _consumed("ok") == 4
    # Another label set is another child, not the cached one.
    metrics.labelled(metrics.CONSUMED, "t-cached", "g-cached", "skipped").inc()
    assert (_consumed("ok"), _consumed("skipped")) == (4, 1)
