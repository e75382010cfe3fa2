"""The real clock."""

from __future__ import annotations

import time


class SystemClock:
    """`Clock` on the machine's wall clock."""

    def now(self) -> float:
        """Seconds since the epoch."""
        return time.time()
