"""The console's pages, under /console/e/{enterprise_id}/. Every read and every action is one
or a few calls of the admin APIs as the signed-in admin (`adapters.admin_api`); what an API
refuses is shown to the admin as it said it. No rule of Lanyard's lives here.

Pages (roles as the APIs they call allow):
  /                      integration readiness and the per-user "why not"       all admin roles
  /apps ...              SSO application profiles, credentials, IdP metadata    superadmin
  /sessions              live device sessions, force checkin (live updates)     superadmin, admin
  /users ...             users and groups, passwords, TOTP enrolment (QR)       read: all; write: superadmin, admin
  /policies /deployments /licences /settings /cloud                            read: all; write: superadmin, admin
  /audit                 the audit trail, export, access question, chain check   auditor, superadmin
"""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import segno
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from markupsafe import Markup

from lanyard.console.adapters.admin_api import ApiError
from lanyard.console.web import ALL_ADMINS, WRITERS, Ctx, Refused, api_message, form_list, posted, signed_in, when

SUPER = ("superadmin",)
AUDIT = ("auditor", "superadmin")
ITEM_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")

FIXES: dict[str, tuple[str, str]] = {
    "Single Sign On licensed": ("licences", "Licences"),
    "cloud connection established": ("cloud", "Cloud connection"),
    "OpenID Connect apps added and enabled": ("apps", "SSO application profiles"),
    "apps deployed to users": ("deployments", "App deployments"),
    "users assigned to a policy enabled for SSO": ("policies", "User policies"),
    "Password Autofill and SSO is ON": ("settings", "Org settings"),
    "Require a second factor to unlock the device is ON": ("settings", "Org settings"),
    "users with SSO can check out (second factor enrolled)": ("users", "Users"),
}
"""Readiness row (the policy service's check name) → the console page that fixes it."""


def lines(text: str | None) -> list[str]:
    """One value per line (or separated by commas/spaces for short lists), blanks dropped."""
    return [v.strip() for v in re.split(r"[\r\n]+", text or "") if v.strip()]


def words(text: str | None) -> list[str]:
    return [w for w in re.split(r"[\s,]+", text or "") if w]


def qr_svg(text: str) -> Markup:
    """An otpauth:// URI as an inline SVG QR code (no image request, nothing cached)."""
    out = io.BytesIO()
    segno.make(text, error="m").save(out, kind="svg", scale=5, border=2, xmldecl=False, svgns=True,
                                     title="QR code for the authenticator app")  # fmt: skip
    return Markup(out.getvalue().decode())  # noqa: S704 - segno's own SVG, no user markup in it


def _check_id(value: str, what: str) -> str:
    if not ITEM_ID.match(value or ""):
        raise Refused(400, f"{what}: letters, digits and . _ : @ - only (at most 128).")
    return value


async def _names(ctx: Ctx) -> dict[str, str]:
    """user id → username, for tables that name people (empty when the role cannot list users)."""
    try:
        return {u["user_id"]: u["username"] for u in await ctx.admin.users()}
    except ApiError:
        return {}


async def _app_names(ctx: Ctx) -> dict[str, str]:
    """client id → profile name (superadmin only may list profiles; others see ids)."""
    if not ctx.session.has("superadmin"):
        return {}
    try:
        return {p["client_id"]: p["profile_name"] for p in await ctx.admin.app_profiles()}
    except ApiError:
        return {}


def pages_router() -> APIRouter:
    r = APIRouter(prefix="/console/e/{enterprise_id}")

    async def act(ctx: Ctx, call: Any, ok: str, back: str, failed_back: str | None = None) -> Response:
        """Run one API action; flash what happened; 303 back (a reload never re-posts)."""
        try:
            await call
        except ApiError as exc:
            await ctx.flash(api_message(exc), "error")
            return ctx.see_other(failed_back if failed_back is not None else back)
        await ctx.flash(ok)
        return ctx.see_other(back)

    # ------------------------------------------------------------------ readiness (front page)

    @r.get("/")
    async def readiness(request: Request, enterprise_id: str, user_id: str | None = None,
                        client_id: str | None = None) -> Response:  # fmt: skip
        ctx = await signed_in(request, enterprise_id, ALL_ADMINS)
        report = await ctx.admin.readiness()
        rows = [{**c, "fix": FIXES.get(c["check"])} for c in report["checks"]]
        try:
            org = await ctx.admin.org_settings()
        except ApiError:
            org = None
        users = await _names(ctx)
        apps = await _app_names(ctx)
        why = None
        if user_id:
            try:
                why = await ctx.admin.explain(_check_id(user_id, "user"), client_id or None)
            except ApiError as exc:
                why = {"allowed": False, "reason": exc.error, "detail": exc.description}
        return ctx.render("readiness.html", title="Integration readiness", report=report, rows=rows, org=org,
                          users=users, apps=apps, why=why, asked_user=user_id, asked_app=client_id)  # fmt: skip

    # ------------------------------------------------------------------ SSO application profiles

    def profile_body(form: dict[str, str], creating: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "profile_name": form.get("profile_name", "").strip(),
            "display_name": form.get("display_name", "").strip(),
            "redirect_uris": lines(form.get("redirect_uris")),
            "post_logout_redirect_uris": lines(form.get("post_logout_redirect_uris")),
            "backchannel_logout_uri": form.get("backchannel_logout_uri", "").strip() or None,
            # Empty is "RS256 (default)": null, so an update also returns a profile to the default.
            "id_token_signed_response_alg": form.get("id_token_signed_response_alg") or None,
            "client_type": form.get("client_type", "public"),
            "enabled": "enabled" in form,
        }
        claims = words(form.get("claims"))
        if claims or not creating:
            body["claims"] = claims
        custom = []
        for line in lines(form.get("custom_claims")):
            claim, _, source = line.partition("=")
            custom.append({"claim": claim.strip(), "source": source.strip()})
        body["custom_claims"] = custom
        return body

    @r.get("/apps")
    async def apps(request: Request, enterprise_id: str) -> Response:
        ctx = await signed_in(request, enterprise_id, SUPER)
        return ctx.render("apps.html", title="SSO application profiles", profiles=await ctx.admin.app_profiles())

    @r.get("/apps/new")
    async def new_app(request: Request, enterprise_id: str, template: str | None = None) -> Response:
        ctx = await signed_in(request, enterprise_id, SUPER)
        profile: dict[str, Any] = {"client_type": "public", "enabled": True}
        if template:
            try:
                profile = await ctx.admin.template(template)
            except ApiError as exc:
                await ctx.flash(api_message(exc), "error")
                return ctx.see_other("apps")
        return ctx.render("app_form.html", title="Add application using OpenID Connect", profile=profile,
                          template=template, action=ctx.url("apps"))  # fmt: skip

    @r.post("/apps")
    async def create_app(request: Request, enterprise_id: str) -> Response:
        ctx, form = await posted(request, enterprise_id, SUPER)
        template = form.get("template") or None
        try:
            created = await ctx.admin.create_profile(profile_body(form, creating=True), template)
        except ApiError as exc:
            profile = {**profile_body(form, creating=True), "template": template}
            return ctx.render("app_form.html", 400, title="Add application using OpenID Connect", profile=profile,
                              template=template, action=ctx.url("apps"), error=api_message(exc))  # fmt: skip
        await ctx.flash(f"Saved {created['profile_name']}. Generate client credentials to give to the app.")
        return ctx.see_other(f"apps/{created['client_id']}")

    @r.get("/apps/{client_id}")
    async def app_detail(request: Request, enterprise_id: str, client_id: str) -> Response:
        ctx = await signed_in(request, enterprise_id, SUPER)
        profile = await ctx.admin.profile(_check_id(client_id, "client id"))
        metadata = await ctx.admin.idp_metadata(client_id)
        shown = await ctx.take_once(f"credentials:{client_id}")
        return ctx.render("app_detail.html", title=profile["profile_name"], profile=profile, metadata=metadata,
                          credentials=shown, action=ctx.url(f"apps/{client_id}"))  # fmt: skip

    @r.post("/apps/{client_id}")
    async def update_app(request: Request, enterprise_id: str, client_id: str) -> Response:
        ctx, form = await posted(request, enterprise_id, SUPER)
        _check_id(client_id, "client id")
        return await act(ctx, ctx.admin.update_profile(client_id, profile_body(form, creating=False)),
                         "Saved.", f"apps/{client_id}")  # fmt: skip

    @r.post("/apps/{client_id}/delete")
    async def delete_app(request: Request, enterprise_id: str, client_id: str) -> Response:
        ctx, _ = await posted(request, enterprise_id, SUPER)
        _check_id(client_id, "client id")
        return await act(ctx, ctx.admin.delete_profile(client_id), "Application profile deleted.", "apps",
                         f"apps/{client_id}")  # fmt: skip

    @r.post("/apps/{client_id}/credentials")
    async def credentials(request: Request, enterprise_id: str, client_id: str) -> Response:
        ctx, form = await posted(request, enterprise_id, SUPER)
        _check_id(client_id, "client id")
        try:
            if form.get("action") == "rotate":
                grace = int(form.get("grace_period_s") or 0)
                creds = await ctx.admin.rotate_credentials(client_id, grace)
            else:
                creds = await ctx.admin.issue_credentials(client_id)
        except ValueError:
            await ctx.flash("The grace period must be a whole number of seconds.", "error")
            return ctx.see_other(f"apps/{client_id}")
        except ApiError as exc:
            await ctx.flash(api_message(exc), "error")
            return ctx.see_other(f"apps/{client_id}")
        # Shown on the next page only: a reload (or the back button) finds it gone.
        await ctx.keep_once(f"credentials:{client_id}", creds)
        return ctx.see_other(f"apps/{client_id}")

    @r.get("/mobileconfig")
    async def mobileconfig(request: Request, enterprise_id: str) -> Response:
        ctx = await signed_in(request, enterprise_id, WRITERS)
        body, media_type, disposition = await ctx.admin.mobileconfig()
        headers = {"Content-Disposition": disposition} if disposition else {}
        return Response(body, media_type=media_type or "application/x-apple-aspen-config", headers=headers)

    # ------------------------------------------------------------------ live device sessions

    async def session_rows(ctx: Ctx) -> list[dict[str, Any]]:
        names = await _names(ctx)
        rows = await ctx.admin.device_sessions()
        return [
            {
                **s,
                "username": names.get(s["user_id"], s["user_id"]),
                # Formatted here for the page and its live updates alike.
                "checked_out": when(s.get("checked_out_at")),
                "last_activity": when(s.get("last_activity_at")),
            }
            for s in rows
        ]

    @r.get("/sessions")
    async def sessions(request: Request, enterprise_id: str) -> Response:
        ctx = await signed_in(request, enterprise_id, WRITERS)
        return ctx.render("sessions.html", title="Device sessions", rows=await session_rows(ctx),
                          poll_ms=ctx.console.settings.live_poll_ms)  # fmt: skip

    @r.get("/sessions/data")
    async def sessions_data(request: Request, enterprise_id: str) -> Response:
        ctx = await signed_in(request, enterprise_id, WRITERS)
        return JSONResponse({"device_sessions": await session_rows(ctx)})

    @r.post("/sessions/{handle}/force-checkin")
    async def force_checkin(request: Request, enterprise_id: str, handle: str) -> Response:
        ctx, _ = await posted(request, enterprise_id, WRITERS)
        wants_json = request.headers.get("accept", "").startswith("application/json")
        try:
            closed = await ctx.admin.force_checkin(handle)
        except ApiError as exc:
            if wants_json:
                return JSONResponse({"error": exc.error, "error_description": api_message(exc)}, exc.status)
            await ctx.flash(api_message(exc), "error")
            return ctx.see_other("sessions")
        if wants_json:
            return JSONResponse(closed)
        await ctx.flash("Checked in: the device session and its app sessions are revoked.")
        return ctx.see_other("sessions")

    # ------------------------------------------------------------------ users and groups

    @r.get("/users")
    async def users(request: Request, enterprise_id: str) -> Response:
        ctx = await signed_in(request, enterprise_id, ALL_ADMINS)
        groups = await ctx.admin.groups()
        return ctx.render("users.html", title="Users and groups", users=await ctx.admin.users(), groups=groups,
                          group_names={g["group_id"]: g["name"] for g in groups})  # fmt: skip

    @r.post("/users")
    async def add_user(request: Request, enterprise_id: str) -> Response:
        ctx, form = await posted(request, enterprise_id, WRITERS)
        body: dict[str, Any] = {
            "username": form.get("username", "").strip(),
            "display_name": form.get("display_name", "").strip() or form.get("username", "").strip(),
            "roles": [form.get("role") or "user"],
            "groups": form_list(request, "groups"),
        }
        for optional in ("email", "password", "badge_id", "employee_id"):
            if form.get(optional, "").strip():
                body[optional] = form[optional].strip()
        try:
            user = await ctx.admin.create_user(body)
        except ApiError as exc:
            await ctx.flash(api_message(exc), "error")
            return ctx.see_other("users")
        await ctx.flash(f"Added {user['username']}.")
        return ctx.see_other(f"users/{user['user_id']}")

    @r.post("/groups")
    async def add_group(request: Request, enterprise_id: str) -> Response:
        ctx, form = await posted(request, enterprise_id, WRITERS)
        name = form.get("name", "").strip()
        return await act(ctx, ctx.admin.create_group(name, form.get("description") or None), f"Added group {name}.",
                         "users")  # fmt: skip

    @r.get("/users/{user_id}")
    async def user_detail(request: Request, enterprise_id: str, user_id: str) -> Response:
        ctx = await signed_in(request, enterprise_id, ALL_ADMINS)
        user = await ctx.admin.user(_check_id(user_id, "user"))
        groups = {g["group_id"]: g["name"] for g in await ctx.admin.groups()}
        enrolment = await ctx.take_once(f"totp:{user_id}")
        qr = qr_svg(enrolment["otpauth_uri"]) if enrolment else None
        return ctx.render("user_detail.html", title=user["display_name"], user=user, group_names=groups,
                          enrolment=enrolment, qr=qr)  # fmt: skip

    @r.post("/users/{user_id}/status")
    async def user_status(request: Request, enterprise_id: str, user_id: str) -> Response:
        ctx, form = await posted(request, enterprise_id, WRITERS)
        status = "disabled" if form.get("status") == "disabled" else "active"
        word = "Disabled" if status == "disabled" else "Enabled"
        return await act(ctx, ctx.admin.update_user(_check_id(user_id, "user"), {"status": status}),
                         f"{word} the account.", f"users/{user_id}")  # fmt: skip

    @r.post("/users/{user_id}/password")
    async def user_password(request: Request, enterprise_id: str, user_id: str) -> Response:
        ctx, form = await posted(request, enterprise_id, WRITERS)
        return await act(ctx, ctx.admin.set_password(_check_id(user_id, "user"), form.get("password", "")),
                         "The password is reset.", f"users/{user_id}")  # fmt: skip

    @r.post("/users/{user_id}/totp")
    async def user_totp(request: Request, enterprise_id: str, user_id: str) -> Response:
        ctx, form = await posted(request, enterprise_id, WRITERS)
        _check_id(user_id, "user")
        try:
            if form.get("action") == "remove":
                await ctx.admin.remove_totp(user_id)
                await ctx.flash("TOTP removed.")
            else:
                await ctx.keep_once(f"totp:{user_id}", await ctx.admin.enroll_totp(user_id))
        except ApiError as exc:
            await ctx.flash(api_message(exc), "error")
        return ctx.see_other(f"users/{user_id}")

    @r.post("/users/{user_id}/delete")
    async def user_delete(request: Request, enterprise_id: str, user_id: str) -> Response:
        ctx, _ = await posted(request, enterprise_id, WRITERS)
        return await act(ctx, ctx.admin.delete_user(_check_id(user_id, "user")), "User deleted.", "users",
                         f"users/{user_id}")  # fmt: skip

    # ------------------------------------------------------------------ policies, deployments, licences

    async def directory(ctx: Ctx) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        try:
            return await ctx.admin.users(), await ctx.admin.groups()
        except ApiError:
            return [], []

    @r.get("/policies")
    async def policies(request: Request, enterprise_id: str, edit: str | None = None) -> Response:
        ctx = await signed_in(request, enterprise_id, ALL_ADMINS)
        items = await ctx.admin.items("policies")
        users, groups = await directory(ctx)
        current = next((p for p in items if p["policy_id"] == edit), None)
        return ctx.render("policies.html", title="User policies", items=items, users=users, groups=groups,
                          current=current or {"sso_enabled": True, "auth_mode": "passcode",
                                              "inactivity_timeout_s": 300, "max_session_s": 43200,
                                              "face_recency_s": 300, "priority": 100},
                          names={u["user_id"]: u["username"] for u in users},
                          group_names={g["group_id"]: g["name"] for g in groups})  # fmt: skip

    def number(form: dict[str, str], name: str, default: int) -> int:
        try:
            return int(form.get(name) or default)
        except ValueError:
            raise Refused(400, f"{name.replace('_', ' ')} must be a whole number.") from None

    @r.post("/policies")
    async def put_policy(request: Request, enterprise_id: str) -> Response:
        ctx, form = await posted(request, enterprise_id, WRITERS)
        policy_id = _check_id(form.get("policy_id", "").strip(), "policy id")
        body = {
            "name": form.get("name", "").strip() or policy_id,
            "sso_enabled": "sso_enabled" in form,
            "auth_mode": form.get("auth_mode", "passcode"),
            "inactivity_timeout_s": number(form, "inactivity_timeout_s", 300),
            "max_session_s": number(form, "max_session_s", 43200),
            "face_recency_s": number(form, "face_recency_s", 300),
            "priority": number(form, "priority", 100),
            "users": form_list(request, "users"),
            "groups": form_list(request, "groups"),
        }
        return await act(ctx, ctx.admin.put_item("policies", policy_id, body), f"Saved policy {body['name']}.",
                         "policies")  # fmt: skip

    @r.post("/{collection}/{item_id}/delete")
    async def delete_item(request: Request, enterprise_id: str, collection: str, item_id: str) -> Response:
        if collection not in ("policies", "deployments", "licences"):
            raise Refused(404, "There is no such page.")
        ctx, _ = await posted(request, enterprise_id, WRITERS)
        return await act(ctx, ctx.admin.delete_item(collection, _check_id(item_id, "id")), "Deleted.", collection)

    @r.get("/deployments")
    async def deployments(request: Request, enterprise_id: str) -> Response:
        ctx = await signed_in(request, enterprise_id, ALL_ADMINS)
        items = await ctx.admin.items("deployments")
        users, groups = await directory(ctx)
        return ctx.render("deployments.html", title="App deployments", items=items, users=users, groups=groups,
                          apps=await _app_names(ctx), names={u["user_id"]: u["username"] for u in users},
                          group_names={g["group_id"]: g["name"] for g in groups})  # fmt: skip

    @r.post("/deployments")
    async def put_deployment(request: Request, enterprise_id: str) -> Response:
        ctx, form = await posted(request, enterprise_id, WRITERS)
        client_id = _check_id(form.get("client_id", "").strip(), "app (client id)")
        body = {"users": form_list(request, "users"), "groups": form_list(request, "groups")}
        return await act(ctx, ctx.admin.put_item("deployments", client_id, body), "Deployment saved.", "deployments")

    @r.get("/licences")
    async def licences(request: Request, enterprise_id: str) -> Response:
        ctx = await signed_in(request, enterprise_id, ALL_ADMINS)
        try:
            seats = await ctx.admin.seats()
        except ApiError:
            seats = None
        today = datetime.now(UTC).date()
        return ctx.render("licences.html", title="Licences", items=await ctx.admin.items("licences"), seats=seats,
                          today=today.isoformat(), next_year=(today + timedelta(days=365)).isoformat())  # fmt: skip

    @r.post("/licences")
    async def put_licence(request: Request, enterprise_id: str) -> Response:
        ctx, form = await posted(request, enterprise_id, WRITERS)
        kind = form.get("kind", "sso")
        licence_id = _check_id(form.get("licence_id", "").strip() or kind, "licence id")

        def moment(name: str) -> str:
            value = form.get(name, "")
            try:
                day = datetime.fromisoformat(value)
            except ValueError:
                raise Refused(400, f"{name.replace('_', ' ')} must be a date.") from None
            return (day if day.tzinfo else day.replace(tzinfo=UTC)).isoformat()

        body = {"kind": kind, "seats": number(form, "seats", 0), "valid_from": moment("valid_from"),
                "valid_until": moment("valid_until")}  # fmt: skip
        return await act(ctx, ctx.admin.put_item("licences", licence_id, body), "Licence saved.", "licences")

    # ------------------------------------------------------------------ org settings

    @r.get("/settings")
    async def settings(request: Request, enterprise_id: str) -> Response:
        ctx = await signed_in(request, enterprise_id, ALL_ADMINS)
        return ctx.render("settings.html", title="Org settings", org=await ctx.admin.org_settings())

    @r.post("/settings")
    async def put_settings(request: Request, enterprise_id: str) -> Response:
        ctx, form = await posted(request, enterprise_id, WRITERS)

        def fraction(name: str) -> float:
            try:
                return float(form.get(name) or 0.9)
            except ValueError:
                raise Refused(400, f"{name.replace('_', ' ')} must be a number between 0 and 1.") from None

        body = {
            "password_autofill_and_sso": "password_autofill_and_sso" in form,
            "require_second_factor": "require_second_factor" in form,
            "checkin_previous_on_checkout": "checkin_previous_on_checkout" in form,
            "face_match_threshold": fraction("face_match_threshold"),
            "face_liveness_threshold": fraction("face_liveness_threshold"),
            "face_max_failures": number(form, "face_max_failures", 5),
        }
        return await act(ctx, ctx.admin.put_org_settings(body), "Org settings saved.", "settings")

    # ------------------------------------------------------------------ cloud connection

    @r.get("/cloud")
    async def cloud(request: Request, enterprise_id: str) -> Response:
        ctx = await signed_in(request, enterprise_id, ALL_ADMINS)
        code = await ctx.take_once("provisioning_code")
        return ctx.render("cloud.html", title="Cloud connection", cloud=await ctx.admin.cloud(), code=code)

    @r.post("/cloud/code")
    async def cloud_code(request: Request, enterprise_id: str) -> Response:
        ctx, _ = await posted(request, enterprise_id, SUPER)  # the seed: the superadmin generates it
        try:
            await ctx.keep_once("provisioning_code", await ctx.admin.provisioning_code())
        except ApiError as exc:
            await ctx.flash(api_message(exc), "error")
        return ctx.see_other("cloud")

    # ------------------------------------------------------------------ audit trail

    FILTERS = ("user_id", "device_id", "client_id", "type", "category", "since", "until", "actor")

    def audit_filters(request: Request) -> dict[str, str]:
        return {k: v for k in FILTERS if (v := request.query_params.get(k, "").strip())}

    @r.get("/audit")
    async def audit(request: Request, enterprise_id: str, after: int = 0) -> Response:
        ctx = await signed_in(request, enterprise_id, AUDIT)
        filters = audit_filters(request)
        error = None
        try:
            page = await ctx.admin.audit_records(filters, after=max(after, 0))
        except ApiError as exc:
            page, error = {"records": [], "next_cursor": None}, api_message(exc)
        try:
            verification = await ctx.admin.audit_verification()
        except ApiError as exc:
            verification = {"ok": None, "detail": api_message(exc)}
        access, q = None, request.query_params
        if q.get("access_client_id") and q.get("access_device_id") and q.get("access_at"):
            try:
                access = await ctx.admin.audit_access(q["access_client_id"], q["access_device_id"], q["access_at"])
            except ApiError as exc:
                access = {"error": api_message(exc)}
        return ctx.render("audit.html", title="Audit trail", page=page, filters=filters, error=error,
                          verification=verification, access=access, query=dict(q), names=await _names(ctx))  # fmt: skip

    @r.get("/audit/export")
    async def audit_export(request: Request, enterprise_id: str, format: str = "csv") -> Response:
        ctx = await signed_in(request, enterprise_id, AUDIT)
        download = await ctx.admin.audit_export(audit_filters(request), "jsonl" if format == "jsonl" else "csv")
        headers = {"Content-Disposition": download.disposition} if download.disposition else {}
        return StreamingResponse(download.chunks, media_type=download.media_type, headers=headers)

    return r
