"""How `lanyard` answers: rich tables for people, JSON for scripts, and one set of exit codes.

Exit codes (the same for every command):

| code | meaning |
|---|---|
| 0 | done; for checks (readiness, audit-verify, demo play) every check passed |
| 1 | Lanyard refused: the product's own `{"error", "error_description"}` is shown as it came; or a check failed |
| 2 | bad usage (unknown option, missing argument) |
| 3 | Lanyard unreachable or failing: no answer from the gateway, a 5xx, `temporarily_unavailable` |
| 4 | local state missing: no device file (run `lanyard locker enrol`), no checkout, no admin credentials |

With `--json` the answer is one JSON document on stdout; a refusal is the product's error body
(plus `"status"`), so a script reads the same fields the API returns.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import sys
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import click
import httpx
from rich.console import Console
from rich.table import Table

from lanyard.harness.admin import ApiError

OK, REFUSED, USAGE, UNAVAILABLE, NO_STATE = 0, 1, 2, 3, 4


class Refused(Exception):
    """The product said no, in its own words (error code and description)."""

    def __init__(self, error: str, description: str, status: int | None = None, **extra: Any) -> None:
        super().__init__(f"{error}: {description}")
        self.error, self.description, self.status, self.extra = error, description, status, extra


class Missing(Exception):
    """Local state or configuration the command needs is not there (exit 4)."""


class CheckFailed(Exception):
    """A check ran and did not pass (exit 1); the data shows which part."""

    def __init__(self, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.data = data


class Out:
    """Where a command's answer goes: stdout as JSON, or a rich console for people."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.console = Console(highlight=False, soft_wrap=True)
        if not self.console.is_terminal and not os.environ.get("COLUMNS"):
            # Piped or captured (make demo's log, CI): wide enough that tables keep one line per row.
            self.console = Console(highlight=False, soft_wrap=True, width=160)
        self.err = Console(stderr=True, highlight=False, soft_wrap=True)

    def emit(self, data: Any, human: Callable[[Console], None] | None = None) -> None:
        """The command's result: JSON, or the human rendering (a key/value view by default)."""
        if self.as_json:
            click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))
        elif human is not None:
            human(self.console)
        else:
            self.console.print(kv(data))

    def note(self, text: str) -> None:
        """A line for people only (progress, hints); never in JSON output."""
        if not self.as_json:
            self.err.print(text)


def kv(data: Any, title: str | None = None) -> Table:
    """A two-column view of a flat mapping (nested values as compact JSON)."""
    table = Table(show_header=False, title=title, title_justify="left", box=None, pad_edge=False)
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column(overflow="fold")
    for key, value in (data or {}).items():
        table.add_row(str(key), value if isinstance(value, str) else json.dumps(value, default=str))
    return table


def rows(items: Iterable[dict[str, Any]], columns: list[str], title: str | None = None) -> Table:
    """A table of the given columns of each item."""
    table = Table(title=title, title_justify="left", header_style="bold")
    for column in columns:
        table.add_column(column, overflow="fold")
    for item in items:
        table.add_row(*(_cell(item.get(c)) for c in columns))
    return table


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(map(str, value))
    return str(value)


def json_option(f: Callable[..., Any]) -> Callable[..., Any]:
    """`--json` on a command."""
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON document (for scripts).")(f)


def runs(coro_fn: Callable[..., Awaitable[Any]]) -> Callable[..., Any]:
    """Run an async command body with `Out` as its first argument; map failures to exit codes."""

    @functools.wraps(coro_fn)
    def wrapper(*args: Any, as_json: bool = False, **kwargs: Any) -> None:
        out = Out(as_json)
        code = OK
        try:
            asyncio.run(coro_fn(out, *args, **kwargs))
        except ApiError as exc:
            code = _refusal(out, exc.error, exc.description, exc.status, exc.body)
        except Refused as exc:
            code = _refusal(out, exc.error, exc.description, exc.status, exc.extra)
        except CheckFailed as exc:
            if out.as_json and exc.data is not None:
                click.echo(json.dumps(exc.data, indent=2, sort_keys=True, default=str))
            out.err.print(f"[bold red]check failed:[/] {exc}")
            code = REFUSED
        except Missing as exc:
            if out.as_json:
                click.echo(json.dumps({"error": "missing_state", "error_description": str(exc)}))
            out.err.print(f"[bold red]missing:[/] {exc}")
            code = NO_STATE
        except (httpx.TransportError, OSError) as exc:
            what = f"cannot reach Lanyard: {type(exc).__name__}: {exc}"
            if out.as_json:
                click.echo(json.dumps({"error": "unreachable", "error_description": what}))
            out.err.print(f"[bold red]unreachable:[/] {what}")
            out.err.print("[dim]hint: is the gateway up? `make run` starts the stack (--gateway / LANYARD_GATEWAY)[/]")
            code = UNAVAILABLE
        sys.exit(code)

    # click passes --json as a keyword; keep the wrapper's signature visible to it.
    return wrapper


def _refusal(out: Out, error: str, description: str, status: int | None, body: dict[str, Any]) -> int:
    unavailable = (status or 0) >= 500 or error == "temporarily_unavailable"
    if out.as_json:
        shown = {"error": error, "error_description": description, **(body or {})}
        if status is not None:
            shown["status"] = status
        click.echo(json.dumps(shown, indent=2, sort_keys=True, default=str))
    else:
        where = f" (HTTP {status})" if status else ""
        out.err.print(f"[bold red]{error}[/]{where}: {description}")
        hint = HINTS.get(error)
        if hint:
            out.err.print(f"[dim]hint: {hint}[/]")
    return UNAVAILABLE if unavailable else REFUSED


HINTS = {
    "second_factor_required": "add --totp CODE (the code on the user's authenticator app)",
    "interaction_required": "the session needs the user: in face mode run `lanyard locker face`, then retry",
    "login_required": "no live device session: `lanyard locker checkout --user NAME` first",
    "invalid_token": "the admin token expired or is for another enterprise: sign in again",
    "device_not_enrolled": "run `lanyard locker enrol` (it plays the MDM and needs an admin)",
}
"""One line of help for the refusals people meet most; the product's own text comes first."""
