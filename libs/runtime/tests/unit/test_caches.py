"""The bounded cache behind every cache keyed by request input."""

from lanyard.runtime.caches import LruCache


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_least_recently_used_goes_first_and_size_never_exceeds_the_bound():
    cache: LruCache[str, int] = LruCache(3)
    for i, key in enumerate("abc"):
        cache.put(key, i)
    assert cache.get("a") == 0  # a is now the most recent
    cache.put("d", 3)
    assert cache.get("b") is None and [cache.get(k) for k in "acd"] == [0, 2, 3]
    for i in range(1000):
        cache.put(f"made-up-{i}", i)
    assert len(cache) == 3


def test_entries_expire_after_their_ttl():
    clock = Clock()
    cache: LruCache[str, str] = LruCache(10, ttl_s=30, clock=clock)
    cache.put("k", "v")
    clock.t = 29.9
    assert cache.get("k") == "v"
    clock.t = 30.0
    assert cache.get("k") is None and len(cache) == 0
