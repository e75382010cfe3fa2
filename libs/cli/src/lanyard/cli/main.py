"""The `lanyard` console script: one root group with the locker, admin, demo and ops groups."""

from __future__ import annotations

import click

from lanyard.cli import admin_config  # noqa: F401 - registers admin's groups, policies and licences commands
from lanyard.cli.admin import admin
from lanyard.cli.demo import demo
from lanyard.cli.locker import locker
from lanyard.cli.ops import ops

EPILOG = (
    "Exit codes: 0 done · 1 refused by Lanyard or a check failed · 2 bad usage · "
    "3 unreachable/unavailable · 4 local state missing."
)


@click.group(epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
def cli() -> None:
    """Lanyard from the command line, through the gateway like any client. Every command takes --json."""


cli.add_command(locker)
cli.add_command(admin)
cli.add_command(demo)
cli.add_command(ops)


def main() -> None:
    """Entry point (`lanyard`); click turns usage errors into exit code 2."""
    cli(prog_name="lanyard")
