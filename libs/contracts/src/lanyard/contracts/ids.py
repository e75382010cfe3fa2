"""Identifiers that travel in events: UUIDv7 event ids, sortable by creation time."""

from __future__ import annotations

import hashlib
import os
import time
import uuid


def uuid7(ms: int | None = None, seed: bytes | None = None) -> str:
    """A UUIDv7 (RFC 9562): 48-bit Unix milliseconds, version 7, 74 random bits.

    With `ms` and `seed` it is deterministic (the 74 bits come from SHA-256 of the seed): a
    producer that must republish an event after a crash gives it the same id, so consumers,
    which deduplicate by event id, see it once."""
    if ms is None:
        ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(hashlib.sha256(seed).digest()[:10] if seed is not None else os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= ((rand >> 62) & 0xFFF) << 64
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    return str(uuid.UUID(int=value))
