"""`lanyard admin groups|policies|licences …`: the directory's groups (IdP admin API) and the
policy service's user policies and licences, as an admin edits them in the console.

A client of the admin APIs like the rest of `lanyard admin`: the services decide. `set` commands
are upserts over the API's PUT, which replaces the whole item; so that changing one field does not
reset the others, `set` starts from the item as the API shows it now (when there is one) and
applies only the options given. Users and groups may be named by name or id.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import click
import httpx
from rich.console import Console

from lanyard.cli.admin import admin, admin_command, resolve_user, signed_in
from lanyard.cli.output import Out, Refused, kv, rows, runs
from lanyard.harness.admin import ApiError, Enterprise


async def resolve_group(ent: Enterprise, who: str) -> dict[str, Any]:
    """A group by name or id (refused when neither matches)."""
    groups = (await ent.call("GET", f"/e/{ent.enterprise_id}/admin/groups"))["groups"]
    found = next((g for g in groups if who in (g["name"], g["group_id"])), None)
    if found is None:
        raise Refused("not_found", f"no group {who!r} in {ent.enterprise_id}", 404)
    return found


async def _current(ent: Enterprise, path: str) -> dict[str, Any] | None:
    """The policy service's item at `path`, or None when it has none."""
    try:
        return await ent.policy("GET", path)
    except ApiError as exc:
        if exc.status == 404:
            return None
        raise


def _changed(item: dict[str, Any]) -> Any:
    """How a PUT's answer reads for people: the item, then its event."""

    def human(c: Console) -> None:
        c.print(kv({k: v for k, v in item.items() if k not in ("event_id", "applied")}))
        c.print(f"[dim]event {item.get('event_id')} (applied here before answering: {item.get('applied')})[/]")

    return human


# -------------------------------------------------------------------------------------- groups


@admin.group()
def groups() -> None:
    """Directory groups (IdP admin API); policies and deployments name them."""


@groups.command(name="list")
@admin_command
@runs
async def groups_list(out: Out, **kw: Any) -> None:
    """Every group, with how many users are in it."""
    async with httpx.AsyncClient(timeout=15) as http:
        ent = await signed_in(http, kw)
        found = (await ent.call("GET", f"/e/{ent.enterprise_id}/admin/groups"))["groups"]
        people = (await ent.call("GET", f"/e/{ent.enterprise_id}/admin/users"))["users"]
    for group in found:
        group["members"] = sum(group["group_id"] in u.get("groups", []) for u in people)
    out.emit(found, lambda c: c.print(rows(found, ["group_id", "name", "description", "members"])))


@groups.command(name="add")
@admin_command
@click.argument("name")
@click.option("--description")
@runs
async def groups_add(out: Out, name: str, description: str | None, **kw: Any) -> None:
    """Add a group; its id is printed (for --group on users, policies and deployments)."""
    body = {"name": name, **({"description": description} if description else {})}
    async with httpx.AsyncClient(timeout=15) as http:
        ent = await signed_in(http, kw)
        found = await ent.call("POST", f"/e/{ent.enterprise_id}/admin/groups", json=body)
    out.emit(found)


@groups.command(name="delete")
@admin_command
@click.argument("group")
@runs
async def groups_delete(out: Out, group: str, **kw: Any) -> None:
    """Delete a group (by name or id)."""
    async with httpx.AsyncClient(timeout=15) as http:
        ent = await signed_in(http, kw)
        found = await resolve_group(ent, group)
        await ent.call("DELETE", f"/e/{ent.enterprise_id}/admin/groups/{found['group_id']}")
    out.emit({"deleted": found["group_id"], "name": found["name"]})


@groups.command(name="members")
@admin_command
@click.argument("group")
@click.option("--add", "add", multiple=True, help="A user to put in the group (repeatable).")
@click.option("--remove", "remove", multiple=True, help="A user to take out of it (repeatable).")
@runs
async def groups_members(out: Out, group: str, add: tuple[str, ...], remove: tuple[str, ...], **kw: Any) -> None:
    """Show a group's members, or change them (each change edits the user's groups)."""
    async with httpx.AsyncClient(timeout=15) as http:
        ent = await signed_in(http, kw)
        found = await resolve_group(ent, group)
        gid = found["group_id"]
        for who, joining in [(u, True) for u in add] + [(u, False) for u in remove]:
            user = await resolve_user(ent, who)
            now = [g for g in user.get("groups", []) if g != gid] + ([gid] if joining else [])
            await ent.call("PATCH", f"/e/{ent.enterprise_id}/admin/users/{user['user_id']}", json={"groups": now})
        people = (await ent.call("GET", f"/e/{ent.enterprise_id}/admin/users"))["users"]
    members = [{"username": u["username"], "user_id": u["user_id"]} for u in people if gid in u.get("groups", [])]
    data = {"group_id": gid, "name": found["name"], "members": members}
    out.emit(data, lambda c: c.print(rows(members, ["username", "user_id"], title=f"{found['name']} ({gid})")))


# ------------------------------------------------------------------------------ user policies


POLICY_COLUMNS = [
    "policy_id", "name", "sso_enabled", "auth_mode", "inactivity_timeout_s", "max_session_s", "priority", "users",
    "groups",
]  # fmt: skip


@admin.group()
def policies() -> None:
    """User policies (policy service): SSO on or off, passcode or face mode, timeouts, who."""


@policies.command(name="list")
@admin_command
@runs
async def policies_list(out: Out, **kw: Any) -> None:
    """Every user policy."""
    async with httpx.AsyncClient(timeout=15) as http:
        ent = await signed_in(http, kw)
        found = (await ent.policy("GET", "/user-policies"))["items"]
    out.emit(found, lambda c: c.print(rows(found, POLICY_COLUMNS, title="User policies")))


@policies.command(name="show")
@admin_command
@click.argument("policy_id")
@runs
async def policies_show(out: Out, policy_id: str, **kw: Any) -> None:
    """One user policy."""
    async with httpx.AsyncClient(timeout=15) as http:
        ent = await signed_in(http, kw)
        found = await ent.policy("GET", f"/user-policies/{policy_id}")
    out.emit(found)


@policies.command(name="set")
@admin_command
@click.argument("policy_id")
@click.option("--name", help="Shown to admins (required for a new policy).")
@click.option("--sso/--no-sso", "sso_enabled", default=None, help="SSO enabled (required for a new policy).")
@click.option("--auth-mode", type=click.Choice(["passcode", "face"]), help="How the device unlocks.")
@click.option("--inactivity", "inactivity_timeout_s", type=int, help="Inactivity timeout, seconds.")
@click.option("--max-session", "max_session_s", type=int, help="Longest session, seconds.")
@click.option("--face-recency", "face_recency_s", type=int, help="How recent a face verification must be, seconds.")
@click.option("--priority", type=int, help="Among policies of the same kind (by user, by group) the lower number wins.")
@click.option("--user", "users_", multiple=True, help="Assign a user (repeatable; replaces the users).")
@click.option("--group", "groups_", multiple=True, help="Assign a group (repeatable; replaces the groups).")
@runs
async def policies_set(
    out: Out,
    policy_id: str,
    users_: tuple[str, ...],
    groups_: tuple[str, ...],
    **kw: Any,
) -> None:
    """Create or change a user policy; options not given keep their current value."""
    fields = {k: kw.pop(k) for k in ("name", "sso_enabled", "auth_mode", "inactivity_timeout_s", "max_session_s",
                                     "face_recency_s", "priority")}  # fmt: skip
    async with httpx.AsyncClient(timeout=15) as http:
        ent = await signed_in(http, kw)
        body = await _current(ent, f"/user-policies/{policy_id}") or {}
        body.pop("policy_id", None)
        body.update({k: v for k, v in fields.items() if v is not None})
        if users_:
            body["users"] = [(await resolve_user(ent, u))["user_id"] for u in users_]
        if groups_:
            body["groups"] = [(await resolve_group(ent, g))["group_id"] for g in groups_]
        # A new policy without --name or --sso: the API says which field it needs.
        found = await ent.policy("PUT", f"/user-policies/{policy_id}", body)
    out.emit(found, _changed(found))


@policies.command(name="delete")
@admin_command
@click.argument("policy_id")
@runs
async def policies_delete(out: Out, policy_id: str, **kw: Any) -> None:
    """Delete a user policy (its users fall back to the next policy that applies, or none)."""
    async with httpx.AsyncClient(timeout=15) as http:
        ent = await signed_in(http, kw)
        found = await ent.policy("DELETE", f"/user-policies/{policy_id}")
    out.emit(found)


# ---------------------------------------------------------------------------------- licences


@admin.group()
def licences() -> None:
    """Licences (policy service): SSO seats, and APA seats for face authentication."""


@licences.command(name="list")
@admin_command
@runs
async def licences_list(out: Out, **kw: Any) -> None:
    """Every licence, and the seats in use now."""
    async with httpx.AsyncClient(timeout=15) as http:
        ent = await signed_in(http, kw)
        found = (await ent.policy("GET", "/licences"))["items"]
        seats = await ent.policy("GET", "/seats")

    def human(c: Console) -> None:
        c.print(rows(found, ["licence_id", "kind", "seats", "valid_from", "valid_until"], title="Licences"))
        c.print(kv({kind: f"{s['in_use']} of {s['valid']} in use" for kind, s in seats.items()}, title="Seats now"))

    out.emit({"licences": found, "seats": seats}, human)


@licences.command(name="set")
@admin_command
@click.argument("kind", type=click.Choice(["sso", "apa"]))
@click.option("--seats", type=int, help="How many seats (required for a new licence).")
@click.option("--valid-from", type=click.DateTime(), help="Start (UTC; default: now, or the current start).")
@click.option("--valid-until", type=click.DateTime(), help="End (UTC).")
@click.option("--days", type=int, help="End this many days after the start (instead of --valid-until).")
@runs
async def licences_set(
    out: Out,
    kind: str,
    seats: int | None,
    valid_from: datetime | None,
    valid_until: datetime | None,
    days: int | None,
    **kw: Any,
) -> None:
    """Load or change the enterprise's licence of one kind (its id is the kind)."""
    if valid_until and days:
        raise click.UsageError("--valid-until or --days, not both")
    async with httpx.AsyncClient(timeout=15) as http:
        ent = await signed_in(http, kw)
        body = await _current(ent, f"/licences/{kind}") or {}
        body.pop("licence_id", None)
        body["kind"] = kind
        start = valid_from.replace(tzinfo=UTC) if valid_from else None
        if start or "valid_from" not in body:
            body["valid_from"] = (start or datetime.now(UTC)).isoformat()
        if days is not None:
            body["valid_until"] = (datetime.fromisoformat(body["valid_from"]) + timedelta(days=days)).isoformat()
        elif valid_until:
            body["valid_until"] = valid_until.replace(tzinfo=UTC).isoformat()
        if seats is not None:
            body["seats"] = seats
        found = await ent.policy("PUT", f"/licences/{kind}", body)
    out.emit(found, _changed(found))


@licences.command(name="delete")
@admin_command
@click.argument("kind", type=click.Choice(["sso", "apa"]))
@runs
async def licences_delete(out: Out, kind: str, **kw: Any) -> None:
    """Remove a licence (readiness then fails its licence check)."""
    async with httpx.AsyncClient(timeout=15) as http:
        ent = await signed_in(http, kw)
        found = await ent.policy("DELETE", f"/licences/{kind}")
    out.emit(found)
