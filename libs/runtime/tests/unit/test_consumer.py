"""Retry policy arithmetic."""

from lanyard.runtime.consumer import RetryPolicy


def test_backoff_doubles():
    policy = RetryPolicy(attempts=4, backoff_s=0.1)
    assert [policy.delay(a) for a in (1, 2, 3)] == [0.1, 0.2, 0.4]
