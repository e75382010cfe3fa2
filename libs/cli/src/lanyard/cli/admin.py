"""`lanyard admin …`: what an admin does most, as a client of the admin APIs through the gateway.

Every command is one or a few calls of the harness's `Enterprise` client (the one the end-to-end
tests use): nothing here decides anything the services decide. USER arguments take a username
or a user id.
"""

from __future__ import annotations

import getpass
import io
import json
import os
import sys
from pathlib import Path
from typing import Any

import click
import httpx
import segno
from rich.console import Console

from lanyard.cli.audit import verify_export, verify_file
from lanyard.cli.config import admin_options, admin_session, target, target_options
from lanyard.cli.output import CheckFailed, Missing, Out, Refused, json_option, kv, rows, runs
from lanyard.harness.admin import ApiError, Enterprise, bootstrap


@click.group()
def admin() -> None:
    """Administer an enterprise through its admin APIs."""


def admin_command(f: Any) -> Any:
    """The options of every signed-in admin command: --json, the target and the credentials."""
    return json_option(admin_options(f))


async def signed_in(http: httpx.AsyncClient, kwargs: dict[str, Any]) -> Enterprise:
    """The admin's session for the target those options name (taking them out of `kwargs`)."""
    t = target(kwargs.pop("gateway"), kwargs.pop("enterprise"))
    return await admin_session(http, t, kwargs.pop("token"), kwargs.pop("admin_user"), kwargs.pop("admin_totp"))


async def resolve_user(ent: Enterprise, who: str) -> dict[str, Any]:
    """A user by username or id (404 from the API when neither matches)."""
    users = (await ent.call("GET", f"/e/{ent.enterprise_id}/admin/users"))["users"]
    found = next((u for u in users if who in (u["username"], u["user_id"])), None)
    if found is None:
        raise Refused("not_found", f"no user {who!r} in {ent.enterprise_id}", 404)
    return found


def qr(uri: str) -> str:
    """A QR code of `uri` for a terminal (what an authenticator app scans)."""
    buffer = io.StringIO()
    segno.make(uri, error="m").terminal(out=buffer, compact=True, border=2)
    return buffer.getvalue()


# ------------------------------------------------------------------------------------ sign-in


@admin.command(name="bootstrap")
@json_option
@target_options
@click.option("--enterprise-id", "new_id", required=True, help="The new enterprise's id.")
@click.option("--name", required=True, help="The enterprise's name.")
@click.option("--superadmin", required=True, help="The superadmin's username.")
@runs
async def bootstrap_cmd(out: Out, gateway: str | None, enterprise: str | None, new_id: str, name: str, superadmin: str):
    """Create an enterprise and its superadmin (Imprivata-style Services' first step). Runs the
    IdP's own `bootstrap` (there is no API before an enterprise exists), so it needs the IdP's
    Redis and Kafka (REDIS_URL, KAFKA_BOOTSTRAP_SERVERS); the password comes from
    LANYARD_BOOTSTRAP_PASSWORD or a prompt, never from the command line."""
    password = os.environ.get("LANYARD_BOOTSTRAP_PASSWORD")
    if password is None:
        if not sys.stdin.isatty():
            raise Missing("set LANYARD_BOOTSTRAP_PASSWORD (the superadmin's password)")
        password = getpass.getpass(f"new password for {superadmin}: ")
    done = bootstrap({}, new_id, superadmin, password, name, check=False)
    if done.returncode != 0:
        text = (done.stderr or done.stdout).decode(errors="replace").strip().splitlines()
        error = "enterprise_exists" if done.returncode == 1 else "invalid_request"
        raise Refused(error, text[-1] if text else f"bootstrap exited {done.returncode}")
    issuer = target(gateway, new_id).issuer
    out.emit({"enterprise_id": new_id, "superadmin": superadmin, "issuer": issuer})


@admin.command()
@admin_command
@runs
async def login(out: Out, **kw: Any) -> None:
    """Sign in and print an admin bearer token (for LANYARD_ADMIN_TOKEN)."""
    async with httpx.AsyncClient(timeout=15) as http:
        ent = await signed_in(http, kw)
    data = {"access_token": ent.admin_token, "token_type": "Bearer", "enterprise_id": ent.enterprise_id}
    out.emit(data, lambda c: c.print(ent.admin_token))


# -------------------------------------------------------------------------------------- users


@admin.group()
def users() -> None:
    """Directory users (IdP admin API)."""


@users.command(name="list")
@admin_command
@runs
async def users_list(out: Out, **kw: Any) -> None:
    """Every user of the enterprise."""
    async with httpx.AsyncClient(timeout=15) as http:
        ent = await signed_in(http, kw)
        found = (await ent.call("GET", f"/e/{ent.enterprise_id}/admin/users"))["users"]
    columns = ["username", "user_id", "display_name", "roles", "groups", "status", "totp_enrolled", "badge_id"]
    out.emit(found, lambda c: c.print(rows(found, columns)))


@users.command(name="add")
@admin_command
@click.argument("username")
@click.option("--display-name", help="Shown to the user (default: from the username).")
@click.option("--email")
@click.option("--badge", "badge_id", help="A badge id for badge-tap checkout.")
@click.option("--group", "groups", multiple=True, help="A group id (repeatable).")
@click.option("--role", "roles", multiple=True, help="user (default), admin, auditor, superadmin.")
@click.option("--no-totp", is_flag=True, help="Do not enrol TOTP.")
@runs
async def users_add(
    out: Out,
    username: str,
    display_name: str | None,
    email: str | None,
    badge_id: str | None,
    groups: tuple[str, ...],
    roles: tuple[str, ...],
    no_totp: bool,
    **kw: Any,
) -> None:
    """Add a user; the password comes from LANYARD_USER_PASSWORD or is generated (shown once);
    TOTP is enrolled and shown as an otpauth URI and a QR code."""
    password = os.environ.get("LANYARD_USER_PASSWORD")
    attrs: dict[str, Any] = {"display_name": display_name or username.replace(".", " ").title()}
    if email:
        attrs["email"] = email
    if badge_id:
        attrs["badge_id"] = badge_id
    if roles:
        attrs["roles"] = list(roles)
    async with httpx.AsyncClient(timeout=15) as http:
        ent = await signed_in(http, kw)
        person = await ent.add_user(username, password=password, totp=not no_totp, groups=groups, **attrs)
    data = {
        "user_id": person.user_id,
        "username": username,
        "password": None if password else person.password,
        "totp_secret": person.totp_secret,
        "otpauth_uri": person.otpauth_uri,
    }
    _show_enrolment(out, data)


def _show_enrolment(out: Out, data: dict[str, Any]) -> None:
    def human(c: Console) -> None:
        c.print(kv({k: v for k, v in data.items() if v is not None}))
        if data.get("otpauth_uri"):
            c.print("[dim]scan with an authenticator app (shown once):[/]")
            click.echo(qr(data["otpauth_uri"]))

    out.emit(data, human)


@users.command(name="show")
@admin_command
@click.argument("user")
@runs
async def users_show(out: Out, user: str, **kw: Any) -> None:
    """One user."""
    async with httpx.AsyncClient(timeout=15) as http:
        ent = await signed_in(http, kw)
        found = await resolve_user(ent, user)
    out.emit(found)


@users.command(name="totp")
@admin_command
@click.argument("user")
@runs
async def users_totp(out: Out, user: str, **kw: Any) -> None:
    """(Re-)enrol TOTP for a user: the new secret as an otpauth URI and a QR code (shown once)."""
    async with httpx.AsyncClient(timeout=15) as http:
        ent = await signed_in(http, kw)
        found = await resolve_user(ent, user)
        enrolment = await ent.call("POST", f"/e/{ent.enterprise_id}/admin/users/{found['user_id']}/totp")
    data = {"user_id": found["user_id"], "username": found["username"], **enrolment}
    data["totp_secret"] = data.pop("secret")
    _show_enrolment(out, data)


@users.command(name="delete")
@admin_command
@click.argument("user")
@runs
async def users_delete(out: Out, user: str, **kw: Any) -> None:
    """Delete a user (their live sessions are revoked by the policy service)."""
    async with httpx.AsyncClient(timeout=15) as http:
        ent = await signed_in(http, kw)
        found = await resolve_user(ent, user)
        await ent.call("DELETE", f"/e/{ent.enterprise_id}/admin/users/{found['user_id']}")
    out.emit({"deleted": found["user_id"], "username": found["username"]})


# ------------------------------------------------------------------------------- app profiles


@admin.group(name="app-profiles")
def app_profiles() -> None:
    """SSO application profiles (superadmin only)."""


PROFILE_COLUMNS = ["client_id", "profile_name", "display_name", "client_type", "redirect_uris", "template", "enabled"]


@app_profiles.command(name="list")
@admin_command
@runs
async def profiles_list(out: Out, **kw: Any) -> None:
    """Every app profile."""
    async with httpx.AsyncClient(timeout=15) as http:
        ent = await signed_in(http, kw)
        found = (await ent.call("GET", f"/e/{ent.enterprise_id}/admin/app-profiles"))["app_profiles"]
    out.emit(found, lambda c: c.print(rows(found, PROFILE_COLUMNS)))


@app_profiles.command(name="template")
@admin_command
@click.argument("name", default="epic-rover")
@runs
async def profiles_template(out: Out, name: str, **kw: Any) -> None:
    """What a template pre-fills (epic-rover)."""
    async with httpx.AsyncClient(timeout=15) as http:
        ent = await signed_in(http, kw)
        found = await ent.call("GET", f"/e/{ent.enterprise_id}/admin/app-profiles/templates/{name}")
    out.emit(found)


@app_profiles.command(name="add")
@admin_command
@click.option("--template", help="Start from a template (epic-rover).")
@click.option("--name", help="Application profile name (admins see it).")
@click.option("--display-name", help="User-friendly name (users see it).")
@click.option("--redirect-uri", "redirect_uris", multiple=True, help="A redirect URI (repeatable).")
@click.option("--confidential", is_flag=True, help="A confidential client (gets a client secret).")
@click.option("--public", "public", is_flag=True, help="A public native client (no secret, PKCE; RFC 8252).")
@click.option("--backchannel-logout-uri", help="Where the IdP posts logout tokens.")
@runs
async def profiles_add(
    out: Out,
    template: str | None,
    name: str | None,
    display_name: str | None,
    redirect_uris: tuple[str, ...],
    confidential: bool,
    public: bool,
    backchannel_logout_uri: str | None,
    **kw: Any,
) -> None:
    """Add App Profile > Application using OpenID Connect, then Generate Client credentials
    (the secret is shown once)."""
    body: dict[str, Any] = {}
    if name:
        body["profile_name"] = name
    if display_name or name:
        body["display_name"] = display_name or name
    if redirect_uris:
        body["redirect_uris"] = list(redirect_uris)
    if confidential and public:
        raise click.UsageError("--confidential or --public, not both")
    if confidential or public:
        body["client_type"] = "public" if public else "confidential"
    if backchannel_logout_uri:
        body["backchannel_logout_uri"] = backchannel_logout_uri
    if not template and not (name and redirect_uris):
        raise click.UsageError("give --template, or --name and at least one --redirect-uri")
    async with httpx.AsyncClient(timeout=15) as http:
        ent = await signed_in(http, kw)
        path = f"/e/{ent.enterprise_id}/admin/app-profiles"
        params = {"template": template} if template else None
        profile = await ent.call("POST", path, params=params, json=body or None)
        creds = await ent.call("POST", f"{path}/{profile['client_id']}/credentials")
        meta = await ent.call("GET", f"{path}/{profile['client_id']}/metadata")
    data = {**profile, "client_secret": creds.get("client_secret"), "issuer": meta["issuer"]}

    def human(c: Console) -> None:
        c.print(kv({k: data[k] for k in ("client_id", "profile_name", "display_name", "client_type", "redirect_uris")}))
        if data.get("client_type_reason"):
            c.print(f"[dim]why {data['client_type']}: {data['client_type_reason']}[/]")
        if data["client_secret"]:
            c.print(f"[bold]client secret (shown once):[/] {data['client_secret']}")
        c.print(f"issuer for the RP: {data['issuer']}  (discovery: {meta['discovery_url']})")
        c.print(f"[dim]next: lanyard admin deploy {data['client_id']} --user NAME[/]")

    out.emit(data, human)


@app_profiles.command(name="credentials")
@admin_command
@click.argument("client_id")
@click.option("--rotate", is_flag=True, help="Rotate the secret (the old one stops working at once, or after --grace).")
@click.option("--grace", "grace_s", type=int, help="With --rotate: seconds the previous secret keeps working.")
@runs
async def profiles_credentials(out: Out, client_id: str, rotate: bool, grace_s: int | None, **kw: Any) -> None:
    """Generate client credentials (once), or rotate the secret."""
    if grace_s is not None and not rotate:
        raise click.UsageError("--grace goes with --rotate")
    async with httpx.AsyncClient(timeout=15) as http:
        ent = await signed_in(http, kw)
        path = f"/e/{ent.enterprise_id}/admin/app-profiles/{client_id}/credentials"
        body = {"grace_period_s": grace_s} if grace_s is not None else None
        found = await ent.call("POST", path + ("/rotate" if rotate else ""), json=body)
    out.emit(found)


@app_profiles.command(name="metadata")
@admin_command
@click.argument("client_id")
@runs
async def profiles_metadata(out: Out, client_id: str, **kw: Any) -> None:
    """View and copy IdP metadata: the issuer, its discovery URL and every endpoint."""
    async with httpx.AsyncClient(timeout=15) as http:
        ent = await signed_in(http, kw)
        found = await ent.call("GET", f"/e/{ent.enterprise_id}/admin/app-profiles/{client_id}/metadata")
    out.emit(found)


@admin.command()
@admin_command
@click.argument("client_id")
@click.option("--user", "users_", multiple=True, help="A username or user id (repeatable).")
@click.option("--group", "groups", multiple=True, help="A group id (repeatable).")
@runs
async def deploy(out: Out, client_id: str, users_: tuple[str, ...], groups: tuple[str, ...], **kw: Any) -> None:
    """Deploy an app to users and groups (replaces the app's deployment)."""
    async with httpx.AsyncClient(timeout=15) as http:
        ent = await signed_in(http, kw)
        ids = [(await resolve_user(ent, u))["user_id"] for u in users_]
        found = await ent.policy("PUT", f"/app-deployments/{client_id}", {"users": ids, "groups": list(groups)})
    out.emit(found)


@admin.command()
@admin_command
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), help="Write to a file.")
@runs
async def mobileconfig(out: Out, output: str | None, **kw: Any) -> None:
    """The MDM's SSO-extension profile (.mobileconfig, type Redirect, the issuer's URL)."""
    async with httpx.AsyncClient(timeout=15) as http:
        ent = await signed_in(http, kw)
        response = await ent.raw("GET", f"/e/{ent.enterprise_id}/admin/sso-extension.mobileconfig")
        if response.status_code >= 300:
            raise ApiError(response)
    if output:
        Path(output).write_bytes(response.content)  # noqa: ASYNC240 - one small file, after the last await
        out.emit({"written": output, "bytes": len(response.content)})
    elif out.as_json:
        out.emit({"mobileconfig": response.text})
    else:
        click.echo(response.text)


# ------------------------------------------------------------------------ readiness, why-not


@admin.command()
@admin_command
@runs
async def readiness(out: Out, **kw: Any) -> None:
    """The seed's integration-readiness table: each prerequisite, Required or Optional, pass or
    fail, where to fix it. Exits 1 when a Required check fails."""
    async with httpx.AsyncClient(timeout=15) as http:
        ent = await signed_in(http, kw)
        report = await ent.policy("GET", "/readiness")

    def human(c: Console) -> None:
        c.print(
            rows(
                report["checks"],
                ["check", "requirement", "status", "detail", "where_to_fix"],
                title="Integration readiness",
            )
        )
        c.print("[bold green]ready[/]" if report["ready"] else "[bold red]not ready[/]")

    out.emit(report, human)
    if not report["ready"]:
        raise CheckFailed("not every Required readiness check passes")


@admin.command(name="why-not")
@admin_command
@click.argument("user")
@click.option("--client", "client_id", help="Ask about one app (a client id).")
@runs
async def why_not(out: Out, user: str, client_id: str | None, **kw: Any) -> None:
    """Why a user can (or cannot) use SSO, or one app, on a checked-out device."""
    async with httpx.AsyncClient(timeout=15) as http:
        ent = await signed_in(http, kw)
        found = await resolve_user(ent, user)
        path = f"/readiness/users/{found['user_id']}" + (f"?client_id={client_id}" if client_id else "")
        answer = await ent.policy("GET", path)
    answer["username"] = found["username"]

    def human(c: Console) -> None:
        verdict = "[bold green]allowed[/]" if answer["allowed"] else f"[bold red]denied: {answer['reason']}[/]"
        c.print(f"{found['username']} ({found['user_id']}): {verdict}")
        c.print(answer.get("detail") or "")
        if answer.get("grant"):
            c.print(kv(answer["grant"], title="the grant a checkout would get"))

    out.emit(answer, human)


# ------------------------------------------------------------------------------ live sessions


SESSION_COLUMNS = ["device_session_id", "device_id", "user_id", "state", "auth_mode", "checked_out_at"]


@admin.command()
@admin_command
@runs
async def sessions(out: Out, **kw: Any) -> None:
    """Live device sessions (session service admin API)."""
    async with httpx.AsyncClient(timeout=15) as http:
        ent = await signed_in(http, kw)
        found = (await ent.call("GET", f"/session/e/{ent.enterprise_id}/device-sessions"))["device_sessions"]
    out.emit(found, lambda c: c.print(rows(found, SESSION_COLUMNS, title="Live device sessions")))


@admin.command(name="force-checkin")
@admin_command
@click.argument("handle")
@runs
async def force_checkin(out: Out, handle: str, **kw: Any) -> None:
    """Check a device session in as an admin (its OIDC sessions are revoked at once).

    Handles never start with "-"; one made before that rule may, and goes after `--`
    (`lanyard admin force-checkin -- -abc…`)."""
    async with httpx.AsyncClient(timeout=15) as http:
        ent = await signed_in(http, kw)
        found = await ent.call("POST", f"/session/e/{ent.enterprise_id}/device-sessions/{handle}/force-checkin")
    out.emit(found)


# ---------------------------------------------------------------------------------- audit


@admin.command(name="audit-verify")
@admin_command
@click.option("--db", type=click.Path(dir_okay=False), help="Also verify the whole chain in this audit log file.")
@runs
async def audit_verify(out: Out, db: str | None, **kw: Any) -> None:
    """Check the enterprise's audit records: export them (audit API), recompute every record's
    hash and every link between consecutive records with the audit service's own chain code,
    and ask for sequence and offset gaps. With --db (on the audit host) the whole chain, every
    enterprise, from the checkpoint, as `python -m lanyard.audit verify` does."""
    async with httpx.AsyncClient(timeout=60) as http:
        ent = await signed_in(http, kw)
        response = await ent.raw("GET", f"/audit/e/{ent.enterprise_id}/export", params={"format": "jsonl"})
        if response.status_code >= 300:
            raise ApiError(response)
        gaps = await ent.call("GET", f"/audit/e/{ent.enterprise_id}/gaps")
    report = verify_export([json.loads(line) for line in response.text.splitlines() if line.strip()])
    report["gaps"] = gaps
    report["ok"] = report["ok"] and not gaps["sequence_gaps"] and not gaps["offset_gaps"]
    if db:
        report["chain"] = verify_file(Path(db))
        report["ok"] = report["ok"] and report["chain"]["ok"]

    def human(c: Console) -> None:
        c.print(kv({k: v for k, v in report.items() if k not in ("gaps", "chain", "problems")}))
        for problem in report["problems"][:20]:
            c.print(f"[red]{problem}[/]")
        c.print(f"sequence gaps: {len(gaps['sequence_gaps'])}, offset gaps: {len(gaps['offset_gaps'])}")
        if "chain" in report:
            c.print(kv(report["chain"], title="whole chain"))
        c.print("[bold green]OK[/]" if report["ok"] else "[bold red]BROKEN[/]")

    out.emit(report, human)
    if not report["ok"]:
        raise CheckFailed("the audit records do not verify")
