"""The promises `lanyard --help` makes about every command (no stack needed)."""

from __future__ import annotations

from collections.abc import Iterator

import click

from lanyard.cli.main import cli


def commands(group: click.Group, path: tuple[str, ...] = ()) -> Iterator[tuple[str, click.Command]]:
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from commands(command, (*path, name))
        else:
            yield " ".join((*path, name)), command


def test_every_command_takes_json_for_scripts():
    found = dict(commands(cli))
    assert {"locker checkout", "admin policies set", "admin licences set", "demo play"} <= set(found)
    without = [name for name, command in found.items() if not any("--json" in p.opts for p in command.params)]
    assert not without, f"no --json on: {without}"


def test_every_command_says_what_it_does():
    assert not [name for name, command in commands(cli) if not (command.help or "").strip()]
