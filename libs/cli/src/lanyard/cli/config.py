"""Where a command points and whose credentials it uses.

- Gateway: `--gateway` / `LANYARD_GATEWAY`, default http://127.0.0.1:8480 (`make run`).
- Enterprise: `--enterprise` / `LANYARD_ENTERPRISE`, else the demo enterprise when the demo file
  is for this gateway.
- Demo file: `LANYARD_DEMO_FILE`, else `.var/demo.json` in the working directory, else in the
  repository. `make run` writes it (secrets of the demo enterprise; mode 0600; gitignored).
- Admin credentials, first that applies: `--token` / `LANYARD_ADMIN_TOKEN`; `--admin USER` with
  `LANYARD_ADMIN_PASSWORD` (prompted on a terminal) and `--admin-totp`; the demo superadmin.
- Device file (the Locker app's key and handle): `--device-file` / `LANYARD_DEVICE_FILE`, else
  `~/.local/state/lanyard/locker-<enterprise>.json` (mode 0600).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import httpx

from lanyard.cli.output import Missing
from lanyard.harness.admin import Enterprise, sign_in

DEFAULT_GATEWAY = "http://127.0.0.1:8480"
REPO = Path(__file__).resolve().parents[5]


def demo_file() -> Path:
    """The demo file's path (it may not exist)."""
    if os.environ.get("LANYARD_DEMO_FILE"):
        return Path(os.environ["LANYARD_DEMO_FILE"])
    here = Path.cwd() / ".var" / "demo.json"
    return here if here.exists() else REPO / ".var" / "demo.json"


def load_demo(path: Path | None = None) -> dict[str, Any] | None:
    """The demo file's content, or None when there is none (or it is unreadable)."""
    path = path or demo_file()
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def write_private(path: Path, data: dict[str, Any]) -> None:
    """Write JSON readable by the owner only (it holds secrets), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


@dataclass
class Target:
    """One gateway and one enterprise, with the demo file when it describes them."""

    gateway: str
    enterprise_id: str
    demo: dict[str, Any] | None

    @property
    def issuer(self) -> str:
        """The enterprise's issuer."""
        return f"{self.gateway}/e/{self.enterprise_id}"

    def demo_user(self, username: str) -> dict[str, Any] | None:
        """The demo file's record of a user (password, TOTP secret), if it has one."""
        return ((self.demo or {}).get("users") or {}).get(username)

    def demo_app(self, client_id: str) -> dict[str, Any] | None:
        """The demo file's record of an app, by client id or by its short name."""
        apps = (self.demo or {}).get("apps") or {}
        if client_id in apps:
            return apps[client_id]
        return next((a for a in apps.values() if a.get("client_id") == client_id), None)


def target(gateway: str | None, enterprise: str | None) -> Target:
    """Resolve the gateway and enterprise (see the module docstring)."""
    gateway = (gateway or os.environ.get("LANYARD_GATEWAY") or DEFAULT_GATEWAY).rstrip("/")
    demo = load_demo()
    if demo and demo.get("gateway", "").rstrip("/") != gateway:
        demo = None
    enterprise = enterprise or os.environ.get("LANYARD_ENTERPRISE") or (demo or {}).get("enterprise_id")
    if not enterprise:
        raise Missing("no enterprise: pass --enterprise ID or set LANYARD_ENTERPRISE")
    if demo and demo.get("enterprise_id") != enterprise:
        demo = None
    return Target(gateway, enterprise, demo)


def target_options(f: Any) -> Any:
    """`--gateway` and `--enterprise` on a command."""
    f = click.option("--enterprise", "-e", help="Enterprise id (env LANYARD_ENTERPRISE; default: the demo's).")(f)
    return click.option("--gateway", "-g", help=f"Gateway URL (env LANYARD_GATEWAY; default {DEFAULT_GATEWAY}).")(f)


def admin_options(f: Any) -> Any:
    """The admin's credentials on a command (see the module docstring)."""
    f = click.option("--admin-totp", help="The admin's TOTP code, when the admin has TOTP enrolled.")(f)
    f = click.option("--admin", "admin_user", help="Admin username (password: env LANYARD_ADMIN_PASSWORD).")(f)
    f = click.option("--token", help="An admin bearer token (env LANYARD_ADMIN_TOKEN).")(f)
    return target_options(f)


async def admin_session(
    http: httpx.AsyncClient, t: Target, token: str | None, user: str | None, totp: str | None
) -> Enterprise:
    """Signed-in admin access to the target enterprise."""
    token = token or os.environ.get("LANYARD_ADMIN_TOKEN")
    if token:
        return Enterprise(t.gateway, t.enterprise_id, token, http)
    password = None
    if user:
        password = os.environ.get("LANYARD_ADMIN_PASSWORD")
        if password is None and click.get_text_stream("stdin").isatty():
            password = click.prompt(f"password for {user}", hide_input=True, err=True)
    elif t.demo and t.demo.get("superadmin"):
        user, password = t.demo["superadmin"]["username"], t.demo["superadmin"]["password"]
    if not user or password is None:
        raise Missing("no admin credentials: pass --token, or --admin USER with LANYARD_ADMIN_PASSWORD")
    return await sign_in(t.gateway, t.enterprise_id, user, password, http, totp)


def device_file(path: str | None, t: Target) -> Path:
    """Where this enterprise's Locker device state lives."""
    if path or os.environ.get("LANYARD_DEVICE_FILE"):
        return Path(path or os.environ["LANYARD_DEVICE_FILE"])
    state = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", t.enterprise_id)
    return state / "lanyard" / f"locker-{safe}.json"


def read_device(path: Path) -> dict[str, Any]:
    """The device state, or Missing when the device was never enrolled here."""
    with contextlib.suppress(OSError, ValueError):
        return json.loads(path.read_text())
    raise Missing(f"no enrolled device at {path}: run `lanyard locker enrol` first")
