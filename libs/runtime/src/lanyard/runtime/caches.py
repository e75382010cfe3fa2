"""A bounded in-process cache for anything keyed by what a request names (an enterprise, a client).

A plain dict keyed by request input grows with every made-up id a client sends; this one holds at
most `max_entries` (the least recently used goes first) and, with `ttl_s`, forgets entries after
that long. Single-threaded asyncio use only (no locks).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class LruCache(Generic[K, V]):
    """At most `max_entries` values, least recently used evicted first, each kept `ttl_s` (None: until
    evicted)."""

    def __init__(self, max_entries: int, ttl_s: float | None = None, clock: Callable[[], float] = time.monotonic):
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self._ttl = ttl_s
        self._clock = clock
        self._items: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def get(self, key: K) -> V | None:
        """The value, or None when absent or expired."""
        hit = self._items.get(key)
        if hit is None:
            return None
        if hit[0] <= self._clock():
            del self._items[key]
            return None
        self._items.move_to_end(key)
        return hit[1]

    def put(self, key: K, value: V) -> None:
        """Keep `value`, evicting the least recently used entry when full."""
        expires = self._clock() + self._ttl if self._ttl is not None else float("inf")
        self._items[key] = (expires, value)
        self._items.move_to_end(key)
        while len(self._items) > self.max_entries:
            self._items.popitem(last=False)

    def pop(self, key: K) -> None:
        """Forget `key`."""
        self._items.pop(key, None)

    def clear(self) -> None:
        """Forget everything."""
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return self.get(key) is not None  # type: ignore[arg-type]
