"""`python -m lanyard.harness.soak` (`make soak`): the long soak, every fault in turn and then
together, bounded by `--minutes` of churn (the faults' own recovery can extend it).

Writes bench/results/soak.json only when the checker found nothing and every fault recovered;
otherwise the result goes to the scratch directory (named on exit) and the exit status is 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from lanyard.harness.soak.faults import ALL_FAULTS
from lanyard.harness.soak.run import Plan, soak
from lanyard.runtime.testing import ROOT


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the churn (default 10)")
    parser.add_argument("--workers", type=int, default=8, help="devices churning at once")
    parser.add_argument("--people", type=int, default=60, help="clinicians (each signs in once per TOTP step)")
    parser.add_argument("--faults", nargs="*", default=list(ALL_FAULTS), help=f"in turn (default: {ALL_FAULTS})")
    parser.add_argument("--rp-down-s", type=float, default=60.0, help="how long the relying party is down")
    parser.add_argument("--cut-s", type=float, default=30.0, help="how long the broker is cut off")
    parser.add_argument("--settle-s", type=float, default=5.0, help="churn between faults")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/soak.json")
    return parser.parse_args(argv)


def machine() -> dict[str, object]:
    """Enough about the run to compare it with another: commit, CPUs, when."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607 - git from PATH, fixed arguments
        capture_output=True,
        text=True,
        check=False,
    )
    return {"commit": commit.stdout.strip() or None, "cpus": os.cpu_count(), "at": datetime.now(UTC).isoformat()}


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    plan = Plan(
        minutes=args.minutes,
        workers=args.workers,
        people=args.people,
        faults=args.faults,
        rp_down_s=args.rp_down_s,
        cut_s=args.cut_s,
        settle_s=args.settle_s,
    )
    scratch = Path(tempfile.mkdtemp(prefix="lanyard-soak-"))
    outcome = asyncio.run(soak(plan, scratch))
    outcome["machine"] = machine()
    outcome["how_to_run"] = "make soak  # or: uv run python -m lanyard.harness.soak " + " ".join(sys.argv[1:])
    clean = outcome["verdict"]["ok"] and not any("not_recovered" in f for f in outcome["faults"])
    path = args.out if clean else scratch / "soak.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(outcome, indent=2) + "\n")
    print(json.dumps(outcome["verdict"], indent=2))
    print(f"{'PASS' if clean else 'FAIL'} -> {path} (logs under {scratch})")
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
