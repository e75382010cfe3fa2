"""`lanyard demo …`: the demo enterprise (`make run` seeds it) and the story (`make demo` plays it).

seed   first start only: the demo enterprise through the admin APIs (see lanyard.cli.seed)
info   the banner: URLs, demo credentials (TOTP as otpauth URIs), next commands
play   the story with a timeline (see lanyard.cli.story); exit 1 if an effect is missing
"""

from __future__ import annotations

import os
from pathlib import Path

import click
from rich.console import Console

from lanyard.cli.config import DEFAULT_GATEWAY, demo_file, load_demo
from lanyard.cli.output import CheckFailed, Missing, Out, json_option, runs
from lanyard.cli.seed import ENTERPRISE_ID, ROVER_DEMO_URL, banner, seed
from lanyard.cli.story import play as play_story


@click.group()
def demo() -> None:
    """The demo enterprise and the story."""


def _path(option: str | None) -> Path:
    return Path(option) if option else demo_file()


@demo.command(name="seed")
@click.option(
    "--gateway", "-g", default=lambda: os.environ.get("LANYARD_GATEWAY", DEFAULT_GATEWAY), show_default=DEFAULT_GATEWAY
)
@click.option("--file", "file_", help="The demo file (default .var/demo.json; env LANYARD_DEMO_FILE).")
@click.option("--enterprise-id", default=ENTERPRISE_ID, show_default=True)
@click.option("--rover-demo-url", default=ROVER_DEMO_URL, show_default=True, help="Where rover-demo answers.")
@click.option(
    "--inactivity", "inactivity_s", type=int, default=10, show_default=True, help="Face-mode inactivity timeout (s)."
)
@click.option("--quiet", is_flag=True, help="Do not print the banner.")
@json_option
@runs
async def seed_cmd(
    out: Out, gateway: str, file_: str | None, enterprise_id: str, rover_demo_url: str, inactivity_s: int, quiet: bool
) -> None:
    """Seed the demo enterprise unless it is there already (idempotent, resumable)."""
    path = _path(file_)
    state, seeded = await seed(
        gateway, path, enterprise_id=enterprise_id, rover_demo_url=rover_demo_url, inactivity_s=inactivity_s,
        env=dict(os.environ),
    )  # fmt: skip
    out.note(f"demo: {'seeded' if seeded else 'already seeded'} {enterprise_id}; secrets in {path}")
    out.emit({"seeded": seeded, "file": str(path), "enterprise_id": enterprise_id}, lambda c: _banner(c, state, quiet))


def _banner(console: Console, state: dict, quiet: bool) -> None:
    if not quiet:
        for line in banner(state):
            console.print(line, markup=False)


@demo.command(name="info")
@click.option("--file", "file_", help="The demo file (default .var/demo.json).")
@json_option
@runs
async def info(out: Out, file_: str | None) -> None:
    """Print the banner again (URLs, demo credentials, next commands)."""
    path = _path(file_)
    state = load_demo(path)
    if not state or not state.get("complete"):
        raise Missing(f"no seeded demo in {path}: `make run` seeds it")
    out.emit(state, lambda c: _banner(c, state, False))


@demo.command(name="play")
@click.option("--file", "file_", help="The demo file (default .var/demo.json).")
@click.option("--user", default="nurse.jane", show_default=True, help="Which demo clinician plays.")
@click.option("--bound", type=float, default=10.0, show_default=True, help="Seconds an effect may take to show.")
@json_option
@runs
async def play(out: Out, file_: str | None, user: str, bound: float) -> None:
    """Play checkout → SSO (Rover, rover-demo) → inactivity lock → face unlock → checkin, with a
    timeline of measured latencies and what each app observed. Exit 1 if any effect is missing."""
    path = _path(file_)
    state = load_demo(path)
    if not state or not state.get("complete"):
        raise Missing(f"no seeded demo in {path}: start the stack with `make run` first")
    out.note(
        f"demo: playing against {state['gateway']} as {user} (face-mode lock takes the policy's inactivity timeout)"
    )
    timeline = await play_story(state, user=user, effect_timeout_s=bound)
    out.emit(timeline.as_dict(), timeline.render)
    if not timeline.ok:
        raise CheckFailed("some effects are missing (marked ✗)")
