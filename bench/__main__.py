"""`make bench`: every benchmark in turn, each writing its JSON to bench/results/.

They start their own Kafka, Redis and services (see bench/common.py) and take, on this 2-core
machine: audit_write ~1 min, token_endpoints ~4 min, event_throughput ~10 min (100,000 live
sessions) and ~3 min (four enterprises), locker_sso ~17 min (most of it creating 1,400 users
with argon2id and checking 1,200 devices out). The last step, bench.report, prints the README's
performance rows from the result files, each with its verdict.
"""

from __future__ import annotations

import subprocess
import sys

BENCHMARKS = (
    ["bench/audit_write.py", "--kafka"],
    ["-m", "bench.token_endpoints"],
    ["-m", "bench.event_throughput", "--levels", "10000", "100000", "--samples", "30"],
    ["-m", "bench.event_throughput", "--levels", "10000", "--samples", "30", "--enterprises", "4"],
    ["-m", "bench.locker_sso"],
    ["-m", "bench.report"],
)


def main() -> int:
    """Run each benchmark; stop at the first that fails."""
    for args in BENCHMARKS:
        print(f"== {' '.join(args)}", flush=True)
        if subprocess.run([sys.executable, *args], check=False).returncode != 0:
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
