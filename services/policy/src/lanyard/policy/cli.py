"""Operator CLI: `python -m lanyard.policy readiness --enterprise E` prints the readiness table.

It reads the service's Redis read model (REDIS_URL / LANYARD_POLICY_REDIS_URL) and runs the same
pure evaluation as the API; the exit status is 0 when every Required check passes, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TextIO

from lanyard.policy.adapters.redis_store import RedisReadModel
from lanyard.policy.domain import ReadinessCheck, is_ready, utcnow
from lanyard.policy.service import Readiness
from lanyard.policy.settings import PolicySettings
from lanyard.runtime.redis import create_redis


def render(enterprise_id: str, checks: list[ReadinessCheck]) -> str:
    """The table as plain text, one row per check."""
    headers = ("check", "required", "status", "where to fix", "detail")
    rows = [(c.check, c.requirement, c.status, c.where_to_fix, c.detail) for c in checks]
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(5)]
    line = "  ".join("{:<" + str(w) + "}" for w in widths)
    out = [f"Integration readiness of enterprise {enterprise_id}", line.format(*headers)]
    out.append("  ".join("-" * w for w in widths))
    out += [line.format(*r) for r in rows]
    return "\n".join(out)


async def readiness(enterprise_id: str, settings: PolicySettings, out: TextIO) -> int:
    """Print the table; 0 when ready."""
    redis = create_redis(settings.redis_url)
    try:
        checks = await Readiness.from_settings(RedisReadModel(redis), utcnow, settings).report(enterprise_id)
    finally:
        await redis.aclose()
    print(render(enterprise_id, checks), file=out)
    return 0 if is_ready(checks) else 1


def main(argv: list[str]) -> int:
    """Parse the command line and run one command."""
    parser = argparse.ArgumentParser(prog="python -m lanyard.policy")
    commands = parser.add_subparsers(dest="command")
    ready = commands.add_parser("readiness", help="print the integration-readiness table of an enterprise")
    ready.add_argument("--enterprise", required=True)
    commands.add_parser("serve", help="run the service (the default)")
    args = parser.parse_args(argv)
    if args.command == "readiness":
        return asyncio.run(readiness(args.enterprise, PolicySettings(), sys.stdout))
    from lanyard.policy.app import create_app
    from lanyard.runtime.service import serve

    settings = PolicySettings()
    serve(create_app(settings), settings)
    return 0
