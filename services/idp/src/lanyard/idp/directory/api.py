"""HTTP API of the directory/administration side of the IdP (all under `/e/{enterprise_id}`):

- `POST /admin/token`: admin bearer tokens (typ at+jwt, aud lanyard-admin, roles claim);
- `/admin/users`, `/admin/groups`: the directory (superadmin and admin write; auditor reads);
- `/admin/app-profiles`: SSO application profiles (superadmin only);
- `POST /admin/keys/rotate`: signing-key rotation (superadmin);
- `GET /admin/sso-extension.mobileconfig`: the MDM SSO-extension profile;
- `POST /locker/authn`: the Locker app's first-party authn API → a checkout assertion.

Errors are JSON `{"error": ..., "error_description": ...}` with a 4xx status; nothing changes.
Bodies are read by `lanyard.runtime.bodies` (bounded, no repeated keys), validation errors answer
400 without the submitted value (`lanyard.runtime.errors`), free text is `FreeText`, and every
state-changing POST honours `Idempotency-Key` (`lanyard.runtime.idempotency`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict, replace
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from lanyard.contracts.versions import RELEASE_PATTERN
from lanyard.idp.directory import mdm
from lanyard.idp.directory.authn import AuthError, Badge, Password, Primary
from lanyard.idp.directory.domain import (
    ADMIN_ROLES,
    DEFAULT_CLAIMS,
    USERNAME_PATTERN,
    AppProfile,
    ClaimMapping,
    Client,
    Group,
    Invalid,
    NotFound,
    Role,
    User,
)
from lanyard.idp.directory.ports import (
    Conflict,
)
from lanyard.idp.directory.profiles import CLIENT_TYPE_REASONS, TEMPLATES, metadata, template_view
from lanyard.idp.directory.service import DirectorySide, new_id, rotate_keys
from lanyard.idp.web import NO_STORE
from lanyard.runtime.bodies import BoundedRoute, read_object, validated
from lanyard.runtime.errors import error_response
from lanyard.runtime.errors import install_error_handlers as install_shared_error_handlers
from lanyard.runtime.text import FreeText, FreeTextBlock
from lanyard.runtime.tokens import AdminPrincipal, TokenVerifier, require_roles


def side(request: Request) -> DirectorySide:
    return request.app.state.directory_side


def _verifier(request: Request) -> TokenVerifier:
    return side(request).verifier


Side = Annotated[DirectorySide, Depends(side)]
AnyAdmin = Annotated[AdminPrincipal, Depends(require_roles(_verifier, "superadmin", "admin", "auditor"))]
Writer = Annotated[AdminPrincipal, Depends(require_roles(_verifier, "superadmin", "admin"))]
Superadmin = Annotated[AdminPrincipal, Depends(require_roles(_verifier, "superadmin"))]


error = error_response


def install_error_handlers(app: FastAPI) -> None:
    """The shared handlers (validation, HTTP errors, anything unhandled: `lanyard.runtime.errors`),
    then the directory side's own exceptions in the same shape."""
    install_shared_error_handlers(app)

    async def not_found(_: Request, exc: Exception) -> JSONResponse:
        return error(404, "not_found", str(exc))

    async def invalid(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Invalid)
        status = 409 if exc.error == "credentials_already_issued" else 400
        return error(status, exc.error, exc.description)

    async def conflict(_: Request, exc: Exception) -> JSONResponse:
        return error(409, "conflict", str(exc))

    async def auth(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, AuthError)
        headers = dict(NO_STORE)
        if exc.retry_after:
            headers["Retry-After"] = str(exc.retry_after)
        return error(exc.status, exc.error, exc.description, headers)

    app.add_exception_handler(NotFound, not_found)
    app.add_exception_handler(Invalid, invalid)
    app.add_exception_handler(Conflict, conflict)
    app.add_exception_handler(AuthError, auth)


# ---------------------------------------------------------------------------------- models


class Strict(BaseModel):
    """Unknown fields are refused (a typo must not silently do nothing). Free text is normalised by
    its type; secrets (passwords, codes) are taken exactly as sent."""

    model_config = ConfigDict(extra="forbid")


Name = Annotated[FreeText, Field(min_length=1, max_length=128, pattern=USERNAME_PATTERN)]
Label = Annotated[FreeText, Field(min_length=1, max_length=256)]
"""A name people read (display name, profile name, group name)."""
Text = Annotated[FreeText, Field(max_length=256)]
Email = Annotated[FreeText, Field(max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")]
GroupRef = Annotated[FreeText, Field(min_length=1, max_length=256)]
AttributeName = Annotated[FreeText, Field(min_length=1, max_length=64)]
AttributeValue = Annotated[FreeText, Field(max_length=1024)]
Uri = Annotated[str, Field(min_length=1, max_length=2048)]
ClaimName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
IdTokenAlg = Annotated[
    str,
    Field(
        max_length=64,
        description="RS256 or ES256 (OIDC Dynamic Client Registration §2); null: the IdP's default, RS256",
    ),
]
"""Any string here: the profile rules refuse what is not supported with `invalid_client_metadata`."""


class UserIn(Strict):
    username: Name
    display_name: Label
    email: Email | None = None
    employee_id: Annotated[FreeText, Field(max_length=128)] | None = None
    badge_id: Annotated[FreeText, Field(min_length=1, max_length=256)] | None = None
    groups: list[GroupRef] = Field(default_factory=list, max_length=256)
    roles: list[Role] = Field(default_factory=lambda: ["user"])
    status: Literal["active", "disabled", "locked"] = "active"
    attributes: dict[AttributeName, AttributeValue] = Field(default_factory=dict, max_length=64)
    password: str | None = Field(default=None, min_length=8, max_length=1024)


class UserPatch(Strict):
    username: Name | None = None
    display_name: Label | None = None
    email: Email | None = None
    employee_id: Annotated[FreeText, Field(max_length=128)] | None = None
    badge_id: Annotated[FreeText, Field(min_length=1, max_length=256)] | None = None
    groups: list[GroupRef] | None = Field(default=None, max_length=256)
    roles: list[Role] | None = None
    status: Literal["active", "disabled", "locked"] | None = None
    attributes: dict[AttributeName, AttributeValue] | None = Field(default=None, max_length=64)


class PasswordIn(Strict):
    password: str = Field(min_length=8, max_length=1024)


class GroupIn(Strict):
    name: Label
    description: Annotated[FreeTextBlock, Field(max_length=1024)] | None = None


class ClaimMappingIn(Strict):
    claim: ClaimName
    source: ClaimName


class ProfileIn(Strict):
    profile_name: Label
    display_name: Label
    redirect_uris: list[Uri] = Field(min_length=1, max_length=32)
    post_logout_redirect_uris: list[Uri] = Field(default_factory=list, max_length=32)
    claims: list[ClaimName] = Field(default_factory=lambda: list(DEFAULT_CLAIMS), max_length=64)
    custom_claims: list[ClaimMappingIn] = Field(default_factory=list, max_length=64)
    backchannel_logout_uri: Uri | None = None
    id_token_signed_response_alg: IdTokenAlg | None = None
    client_type: Literal["public", "confidential"] = "public"
    require_pkce: bool = False
    enabled: bool = True


class ProfilePatch(Strict):
    profile_name: Label | None = None
    display_name: Label | None = None
    redirect_uris: list[Uri] | None = Field(default=None, min_length=1, max_length=32)
    post_logout_redirect_uris: list[Uri] | None = Field(default=None, max_length=32)
    claims: list[ClaimName] | None = Field(default=None, max_length=64)
    custom_claims: list[ClaimMappingIn] | None = Field(default=None, max_length=64)
    backchannel_logout_uri: Uri | None = None
    id_token_signed_response_alg: IdTokenAlg | None = None
    client_type: Literal["public", "confidential"] | None = None
    require_pkce: bool | None = None
    enabled: bool | None = None


NULLABLE_ON_PATCH = frozenset({"backchannel_logout_uri", "id_token_signed_response_alg"})
"""Profile fields a PATCH may set to null; any other null means "unchanged"."""


class RotateIn(Strict):
    grace_period_s: int = Field(default=0, ge=0, le=30 * 24 * 3600)


class AdminTokenIn(Strict):
    """`POST /admin/token`, as a form or JSON. The username reaches the authentication events."""

    username: Annotated[FreeText, Field(min_length=1, max_length=256)]
    password: str = Field(min_length=1, max_length=1024)
    totp: str | None = Field(default=None, max_length=16)


class LockerAuthnIn(Strict):
    device_id: Annotated[FreeText, Field(min_length=1, max_length=128)]
    username: Annotated[FreeText, Field(min_length=1, max_length=256)] | None = None
    password: str | None = Field(default=None, max_length=1024)
    badge_id: Annotated[FreeText, Field(min_length=1, max_length=256)] | None = None
    totp: str | None = Field(default=None, max_length=16)
    locker_version: str | None = Field(default=None, max_length=64, pattern=RELEASE_PATTERN)


def user_out(user: User) -> dict[str, Any]:
    """A user as the admin API shows it (no secrets exist on the record)."""
    d = asdict(user)
    d.pop("enterprise_id")
    return d


def profile_out(p: AppProfile) -> dict[str, Any]:
    c = p.client
    return {
        "client_id": c.client_id,
        "profile_name": c.profile_name,
        "display_name": c.display_name,
        "client_type": c.client_type,
        "redirect_uris": list(c.redirect_uris),
        "post_logout_redirect_uris": list(c.post_logout_redirect_uris),
        "backchannel_logout_uri": c.backchannel_logout_uri,
        "id_token_signed_response_alg": c.id_token_signed_response_alg,
        "claims": list(c.claims),
        "custom_claims": [asdict(m) for m in c.custom_claims],
        "scopes": list(c.scopes),
        "enabled": c.enabled,
        "template": p.template,
        "has_secret": p.has_secret,
        "require_pkce": c.pkce_required,
        "credentials_source": p.credentials_source or "generated",
    }


def _check_role_grant(principal: AdminPrincipal, roles: list[str] | None) -> None:
    """Only a superadmin may hand out admin roles (no privilege escalation by admins)."""
    if roles and set(roles) & set(ADMIN_ROLES) and "superadmin" not in principal.roles:
        raise PermissionError


def forbidden() -> JSONResponse:
    return error(403, "insufficient_role", "only a superadmin may grant admin roles")


# ---------------------------------------------------------------------------------- routes


async def once(
    request: Request,
    s: DirectorySide,
    enterprise_id: str,
    who: AdminPrincipal | None,
    work: Callable[[], Awaitable[Response]],
) -> Response:
    """A state-changing call under its Idempotency-Key, scoped to the calling admin; a call without
    one (anyone may make it) keeps its answer only briefly."""
    if who is None:
        return await s.idempotency.run(request, enterprise_id, work, keep_s=s.idempotency.secret_ttl_s)
    return await s.idempotency.run(request, enterprise_id, work, subject=who.user_id)


def api_router() -> APIRouter:
    """The directory side's routes (admin API and Locker authn)."""
    r = APIRouter(prefix="/e/{enterprise_id}", route_class=BoundedRoute)

    @r.post("/admin/token")
    async def admin_token(enterprise_id: str, request: Request, s: Side) -> JSONResponse:
        body = validated(AdminTokenIn, await read_object(request))
        username, password, code = body.username, body.password, body.totp
        if await s.enterprises.get(enterprise_id) is None:
            raise NotFound("no such enterprise")
        # Admin sign-ins are published like any other (channel admin_api), failures included, so
        # the security office sees who obtained admin rights and who tried to.
        user = await s.authenticator.admin_sign_in(enterprise_id, username, password, code)
        if user is None:
            return error(403, "access_denied", "this user holds no admin role", NO_STORE)
        ttl = s.settings.admin_token_ttl_s
        token = await s.issuer.admin_token(enterprise_id, user, ttl)
        return JSONResponse({"access_token": token, "token_type": "Bearer", "expires_in": ttl}, headers=NO_STORE)

    # --------------------------------------------------------------------------- users

    @r.get("/admin/users")
    async def list_users(enterprise_id: str, s: Side, _: AnyAdmin) -> dict[str, Any]:
        return {"users": [user_out(u) for u in await s.directory.list_users(enterprise_id)]}

    @r.post("/admin/users", status_code=201)
    async def create_user(enterprise_id: str, body: UserIn, s: Side, who: Writer, request: Request) -> Response:
        async def work() -> Response:
            try:
                _check_role_grant(who, body.roles)
            except PermissionError:
                return forbidden()
            fields = body.model_dump(exclude={"password"})
            fields.update(groups=tuple(body.groups), roles=tuple(body.roles))
            user = await s.directory_service.create_user(enterprise_id, fields, body.password, who.user_id)
            return JSONResponse(user_out(user), 201)

        return await once(request, s, enterprise_id, who, work)

    @r.get("/admin/users/{user_id}")
    async def get_user(enterprise_id: str, user_id: str, s: Side, _: AnyAdmin) -> dict[str, Any]:
        return user_out(await s.directory_service.get(enterprise_id, user_id))

    @r.patch("/admin/users/{user_id}")
    async def update_user(enterprise_id: str, user_id: str, body: UserPatch, s: Side, who: Writer) -> Any:
        current = await s.directory_service.get(enterprise_id, user_id)
        try:
            _check_role_grant(who, body.roles)
            if set(current.roles) & set(ADMIN_ROLES):
                _check_role_grant(who, list(current.roles))  # admins cannot edit admins
        except PermissionError:
            return forbidden()
        fields = body.model_dump(exclude_unset=True)
        for key in ("groups", "roles"):
            if fields.get(key) is not None:
                fields[key] = tuple(fields[key])
        fields = {k: v for k, v in fields.items() if v is not None or k in ("email", "employee_id", "badge_id")}
        return user_out(await s.directory_service.update_user(enterprise_id, user_id, fields, who.user_id))

    @r.delete("/admin/users/{user_id}", status_code=204)
    async def delete_user(enterprise_id: str, user_id: str, s: Side, who: Writer) -> Response:
        current = await s.directory_service.get(enterprise_id, user_id)
        try:
            _check_role_grant(who, list(current.roles))
        except PermissionError:
            return forbidden()
        await s.directory_service.delete_user(enterprise_id, user_id, who.user_id)
        return Response(status_code=204)

    @r.put("/admin/users/{user_id}/password", status_code=204)
    async def set_password(enterprise_id: str, user_id: str, body: PasswordIn, s: Side, who: Writer) -> Response:
        current = await s.directory_service.get(enterprise_id, user_id)
        try:
            _check_role_grant(who, list(current.roles))
        except PermissionError:
            return forbidden()
        await s.directory_service.set_password(enterprise_id, user_id, body.password, who.user_id)
        return Response(status_code=204)

    @r.post("/admin/users/{user_id}/totp")
    async def enroll_totp(enterprise_id: str, user_id: str, s: Side, who: Writer, request: Request) -> Response:
        async def work() -> Response:
            enrolment = await s.directory_service.enroll_totp(enterprise_id, user_id, who.user_id)
            body = {"secret": enrolment.secret, "otpauth_uri": enrolment.otpauth_uri}
            return JSONResponse(body, 201, headers=NO_STORE)

        return await once(request, s, enterprise_id, who, work)

    @r.delete("/admin/users/{user_id}/totp")
    async def remove_totp(enterprise_id: str, user_id: str, s: Side, who: Writer) -> dict[str, Any]:
        return user_out(await s.directory_service.remove_totp(enterprise_id, user_id, who.user_id))

    # -------------------------------------------------------------------------- groups

    @r.get("/admin/groups")
    async def list_groups(enterprise_id: str, s: Side, _: AnyAdmin) -> dict[str, Any]:
        return {"groups": [asdict(g) for g in await s.directory.list_groups(enterprise_id)]}

    @r.post("/admin/groups", status_code=201)
    async def create_group(enterprise_id: str, body: GroupIn, s: Side, who: Writer, request: Request) -> Response:
        async def work() -> Response:
            group = Group(enterprise_id, new_id("grp"), body.name, body.description)
            return JSONResponse(asdict(await s.directory_service.save_group(group, who.user_id)), 201)

        return await once(request, s, enterprise_id, who, work)

    @r.get("/admin/groups/{group_id}")
    async def get_group(enterprise_id: str, group_id: str, s: Side, _: AnyAdmin) -> dict[str, Any]:
        group = await s.directory.get_group(enterprise_id, group_id)
        if group is None:
            raise NotFound("no such group")
        return asdict(group)

    @r.put("/admin/groups/{group_id}")
    async def put_group(enterprise_id: str, group_id: str, body: GroupIn, s: Side, who: Writer) -> dict[str, Any]:
        if await s.directory.get_group(enterprise_id, group_id) is None:
            raise NotFound("no such group")
        group = Group(enterprise_id, group_id, body.name, body.description)
        return asdict(await s.directory_service.save_group(group, who.user_id))

    @r.delete("/admin/groups/{group_id}", status_code=204)
    async def delete_group(enterprise_id: str, group_id: str, s: Side, who: Writer) -> Response:
        await s.directory_service.delete_group(enterprise_id, group_id, who.user_id)
        return Response(status_code=204)

    # ---------------------------------------------------------------------------- keys

    @r.post("/admin/keys/rotate")
    async def rotate(enterprise_id: str, s: Side, who: Superadmin, request: Request) -> Response:
        async def work() -> Response:
            ring = await rotate_keys(s.keys, enterprise_id)
            return JSONResponse({"version": ring.version, "keys": [asdict(e) for e in ring.entries]})

        return await once(request, s, enterprise_id, who, work)

    @r.get("/admin/keys")
    async def key_ring(enterprise_id: str, s: Side, _: Superadmin) -> dict[str, Any]:
        ring = await s.keys.ring(enterprise_id)
        if ring is None:
            raise NotFound("no keys")
        return {"version": ring.version, "keys": [asdict(e) for e in ring.entries]}

    # --------------------------------------------------------------------- app profiles

    @r.get("/admin/app-profiles/templates/{template}")
    async def template(enterprise_id: str, template: str, _: Superadmin) -> dict[str, Any]:
        if template not in TEMPLATES:
            raise NotFound("no such template")
        return template_view(template)

    @r.get("/admin/app-profiles")
    async def list_profiles(enterprise_id: str, s: Side, _: Superadmin) -> dict[str, Any]:
        return {"app_profiles": [profile_out(p) for p in await s.clients.list_profiles(enterprise_id)]}

    @r.post("/admin/app-profiles", status_code=201)
    async def create_profile(
        enterprise_id: str,
        request: Request,
        s: Side,
        who: Superadmin,
        template: Annotated[str | None, Query(max_length=64)] = None,
    ) -> Response:
        raw: dict[str, Any] = {}
        if template is not None:
            if template not in TEMPLATES:
                raise Invalid("invalid_request", "unknown template")
            raw.update(TEMPLATES[template])
        if await request.body():
            raw.update(await read_object(request))
        body = validated(ProfileIn, raw)

        async def work() -> Response:
            client = Client(
                enterprise_id=enterprise_id,
                client_id=new_id("cli"),
                profile_name=body.profile_name,
                display_name=body.display_name,
                client_type=body.client_type,
                redirect_uris=tuple(body.redirect_uris),
                post_logout_redirect_uris=tuple(body.post_logout_redirect_uris),
                backchannel_logout_uri=body.backchannel_logout_uri,
                id_token_signed_response_alg=body.id_token_signed_response_alg,
                custom_claims=tuple(ClaimMapping(m.claim, m.source) for m in body.custom_claims),
                enabled=body.enabled,
                claims=tuple(body.claims),
                require_pkce=body.require_pkce,
            )
            profile = await s.profiles.save(AppProfile(client, template=template), who.user_id)
            out = profile_out(profile)
            if template is not None:  # why this kind of client: the admin chose it, or took the default
                out["client_type_reason"] = CLIENT_TYPE_REASONS[client.client_type]
            return JSONResponse(out, 201)

        return await once(request, s, enterprise_id, who, work)

    @r.get("/admin/app-profiles/{client_id}")
    async def get_profile(enterprise_id: str, client_id: str, s: Side, _: Superadmin) -> dict[str, Any]:
        return profile_out(await s.profiles.get(enterprise_id, client_id))

    @r.patch("/admin/app-profiles/{client_id}")
    async def update_profile(
        enterprise_id: str, client_id: str, body: ProfilePatch, s: Side, who: Superadmin
    ) -> dict[str, Any]:
        current = await s.profiles.get(enterprise_id, client_id)
        fields = body.model_dump(exclude_unset=True)
        for key in ("redirect_uris", "post_logout_redirect_uris", "claims"):
            if fields.get(key) is not None:
                fields[key] = tuple(fields[key])
        if fields.get("custom_claims") is not None:
            fields["custom_claims"] = tuple(ClaimMapping(m["claim"], m["source"]) for m in fields["custom_claims"])
        # An explicit null clears what may be absent: no back-channel logout, the IdP's default alg.
        fields = {k: v for k, v in fields.items() if v is not None or k in NULLABLE_ON_PATCH}
        client = replace(current.client, **fields)
        if current.credentials_source == "rp_supplied" and client.client_type != "confidential":
            raise Invalid("invalid_request", "a profile with RP-supplied credentials stays confidential")
        has_secret = current.has_secret and client.client_type == "confidential"
        profile = await s.profiles.save(replace(current, client=client, has_secret=has_secret), who.user_id)
        return profile_out(profile)

    @r.delete("/admin/app-profiles/{client_id}", status_code=204)
    async def delete_profile(enterprise_id: str, client_id: str, s: Side, who: Superadmin) -> Response:
        await s.profiles.delete(enterprise_id, client_id, who.user_id)
        return Response(status_code=204)

    @r.post("/admin/app-profiles/{client_id}/credentials", status_code=201)
    async def credentials(enterprise_id: str, client_id: str, s: Side, who: Superadmin, request: Request) -> Response:
        async def work() -> Response:
            creds = await s.profiles.issue_credentials(enterprise_id, client_id, who.user_id, rotate=False)
            client = (await s.profiles.get(enterprise_id, client_id)).client
            body: dict[str, Any] = {
                "client_id": creds.client_id,
                "client_type": client.client_type,
                "pkce_required": client.pkce_required,
                "reason": CLIENT_TYPE_REASONS[client.client_type],
            }
            if creds.client_secret:
                body["client_secret"] = creds.client_secret
            return JSONResponse(body, 201, headers=NO_STORE)

        return await once(request, s, enterprise_id, who, work)

    @r.post("/admin/app-profiles/{client_id}/credentials/rotate")
    async def rotate_secret(
        enterprise_id: str, client_id: str, s: Side, who: Superadmin, request: Request, body: RotateIn | None = None
    ) -> Response:
        grace = body.grace_period_s if body else 0

        async def work() -> Response:
            creds = await s.profiles.issue_credentials(
                enterprise_id, client_id, who.user_id, rotate=True, grace_s=grace
            )
            until = creds.previous_secret_valid_until
            return JSONResponse(
                {
                    "client_id": creds.client_id,
                    "client_secret": creds.client_secret,
                    "previous_secret_valid_until": int(until) if until else None,
                },
                headers=NO_STORE,
            )

        return await once(request, s, enterprise_id, who, work)

    @r.get("/admin/app-profiles/{client_id}/metadata")
    async def profile_metadata(enterprise_id: str, client_id: str, s: Side, _: Superadmin) -> dict[str, Any]:
        await s.profiles.get(enterprise_id, client_id)
        return metadata(s.settings.public_base_url, enterprise_id, client_id)

    # ------------------------------------------------------------------------------ MDM

    @r.get("/admin/sso-extension.mobileconfig")
    async def mobileconfig(enterprise_id: str, s: Side, _: Writer) -> Response:
        # One profile for every enterprise of this host (the origin): see mdm.py and docs/mdm.md.
        origin = mdm.origin_of(s.settings.public_base_url)
        body = mdm.sso_extension_profile(
            origin, s.settings.sso_extension_identifier, s.settings.sso_extension_team_identifier
        )
        host = origin.split("://", 1)[1].replace(":", "-")
        return Response(
            body,
            media_type=mdm.CONTENT_TYPE,
            headers={"Content-Disposition": f'attachment; filename="lanyard-sso-{host}.mobileconfig"'},
        )

    # ---------------------------------------------------------------------- Locker authn

    @r.post("/locker/authn")
    async def locker_authn(enterprise_id: str, body: LockerAuthnIn, s: Side, request: Request) -> Response:
        if await s.enterprises.get(enterprise_id) is None:
            raise NotFound("no such enterprise")
        # A Locker app retrying after a lost answer gets the same assertion: its TOTP step is spent.
        # The fingerprint covers the whole body (credentials included), so only the same sign-in
        # replays, and an assertion (no-store) is kept only briefly.
        return await once(request, s, enterprise_id, None, lambda: _locker_authn(enterprise_id, body, s))

    async def _locker_authn(enterprise_id: str, body: LockerAuthnIn, s: DirectorySide) -> Response:
        if body.badge_id and not (body.username or body.password):
            primary: Primary = Badge(body.badge_id)
        elif body.username and body.password is not None and not body.badge_id:
            primary = Password(body.username, body.password)
        else:
            raise Invalid("invalid_request", "send username and password, or badge_id")
        auth = await s.authenticator.locker_sign_in(
            enterprise_id, primary, body.totp, body.device_id, body.locker_version
        )
        ttl = s.settings.checkout_assertion_ttl_s
        assertion = await s.issuer.checkout_assertion(enterprise_id, auth, body.device_id, ttl)
        return JSONResponse({"assertion": assertion, "expires_in": ttl}, headers=NO_STORE)

    return r
