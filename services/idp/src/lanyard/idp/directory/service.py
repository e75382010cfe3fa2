"""Use cases of the directory/administration side of the IdP. They take their ports as
parameters (see `ports.py`); `app.py` wires the Redis adapters in, unit tests the fakes.

Every state change that other services see is stored together with its event in an outbox
(one Redis transaction) and then published; the use case returns only after the broker acked.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from lanyard.contracts import Subject
from lanyard.contracts.events import (
    AppProfileDeleted,
    AppProfileDeletedPayload,
    AppProfileUpserted,
    AppProfileUpsertedPayload,
    AuthChannel,
    AuthenticationFailed,
    AuthenticationFailedPayload,
    ClientSecretRotated,
    ClientSecretRotatedPayload,
    GroupDeleted,
    GroupDeletedPayload,
    GroupUpserted,
    GroupUpsertedPayload,
    OrgSettingsChanged,
    UserAuthenticated,
    UserAuthenticatedPayload,
    UserDeleted,
    UserDeletedPayload,
    UserUpserted,
    UserUpsertedPayload,
)
from lanyard.contracts.events import ClaimMapping as ClaimMappingModel
from lanyard.contracts.factors import has_second_factor
from lanyard.idp.directory.domain import (
    DEFAULT_CLAIMS,
    USERNAME_PATTERN,
    AppProfile,
    Client,
    Enterprise,
    Group,
    InvalidUri,
    KeyRing,
    OrgSettings,
    User,
    admin_roles,
    b32_secret,
    otpauth_uri,
    rp_client_id_problem,
    rp_secret_problem,
    totp_match,
    validate_backchannel_uri,
    validate_redirect_uri,
)
from lanyard.idp.directory.ports import (
    BrowserSessions,
    Directory,
    EnterpriseStore,
    KeyStore,
    Lockouts,
    OrgSettingsStore,
    OrgSettingsView,
    PendingLogins,
    ProfileStore,
    Publisher,
)
from lanyard.idp.settings import IdpSettings
from lanyard.idp.web import endpoints
from lanyard.runtime.idempotency import Idempotency
from lanyard.runtime.logging import get_logger
from lanyard.runtime.signing import JwtSigner
from lanyard.runtime.text import UnsafeText, clean_text
from lanyard.runtime.tokens import (
    ADMIN_AUDIENCE,
    ADMIN_TOKEN_TYP,
    CHECKOUT_TYP,
    SESSION_AUDIENCE,
    StaticJwks,
    TokenVerifier,
    issuer_for,
)

log = get_logger("lanyard.idp.directory.service")
PRODUCER = "idp"
Channel = AuthChannel


class Passwords:
    """argon2id hashing (argon2-cffi defaults, RFC 9106's second recommended profile), off the
    event loop: a hash takes tens of milliseconds by design."""

    def __init__(self) -> None:
        self._hasher = PasswordHasher()
        # Verified when the user does not exist, so timing does not reveal valid usernames. Made
        # in a thread of its own (argon2 releases the GIL): a hash costs ~0.2 s of CPU, which
        # would otherwise sit on the IdP's start-up path.
        self._dummy = ""
        self._dummy_ready = threading.Event()
        threading.Thread(target=self._make_dummy, name="argon2-dummy", daemon=True).start()

    def _make_dummy(self) -> None:
        self._dummy = self._hasher.hash(secrets.token_urlsafe(16))
        self._dummy_ready.set()

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, stored: str | None, password: str) -> bool:
        def check() -> bool:
            if not stored:
                self._dummy_ready.wait()
            try:
                return self._hasher.verify(stored or self._dummy, password) and stored is not None
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                return False

        return await asyncio.to_thread(check)


# ----------------------------------------------------------------------------- authentication


class AuthError(Exception):
    """Authentication refused. `error` is the JSON error code; `status` the HTTP status."""

    def __init__(self, error: str, description: str, status: int = 401, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status
        self.retry_after = retry_after


PASSWORD_AMR: tuple[str, ...] = ("pwd",)
BADGE_AMR: tuple[str, ...] = ("hwk",)
"""A badge is a primary factor (`lanyard.contracts.factors`), like a password."""
TOTP_AMR = "otp"


@dataclass(frozen=True)
class Password:
    """A username and password, the first factor."""

    username: str
    password: str


@dataclass(frozen=True)
class Badge:
    """A badge id, the first factor of a badge tap."""

    badge_id: str


Primary = Password | Badge


@dataclass(frozen=True)
class Authenticated:
    """Who proved what, when."""

    user: User
    amr: tuple[str, ...]
    auth_time: int


class Authenticator:
    """Password, badge and TOTP checks with lockout, shared by the login page, the Locker authn API
    and the admin token endpoint. Failures and successes are published on lanyard.oidc-events.v1
    (never the attempted secret)."""

    def __init__(
        self,
        directory: Directory,
        lockouts: Lockouts,
        org_settings: OrgSettingsView,
        publisher: Publisher,
        passwords: Passwords,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._dir = directory
        self._lock = lockouts
        self._org = org_settings
        self._pub = publisher
        self._pwd = passwords
        self._clock = clock

    async def _refuse_if_locked(self, eid: str, subject: str, username: str, channel: Channel | None) -> None:
        state = await self._lock.state(eid, subject)
        now = self._clock()
        if state.locked(now):
            if channel:
                await self._failed(eid, username, None, channel, "password", locked_out=True)
            raise AuthError(
                "temporarily_locked", "too many failed attempts; try later", 429, int(state.locked_until - now) + 1
            )

    async def _failed(
        self, eid: str, username: str, user_id: str | None, channel: Channel, factor: str, locked_out: bool
    ) -> None:
        payload = AuthenticationFailedPayload(
            username=username[:256],
            user_id=user_id,
            channel=channel,
            factor=factor,
            locked_out=locked_out,  # type: ignore[arg-type]
        )
        await self._pub.publish(
            AuthenticationFailed(
                enterprise_id=eid, producer=PRODUCER, subject=Subject(user_id=user_id), payload=payload
            )
        )

    async def _count_failure(
        self, eid: str, subject: str, username: str, user_id: str | None, channel: Channel | None, factor: str
    ) -> AuthError:
        state = await self._lock.record_failure(eid, subject, self._clock())
        locked = state.locked(self._clock())
        log.info("authentication failed", enterprise_id=eid, user_id=user_id, factor=factor, locked_out=locked)
        if channel:
            await self._failed(eid, username, user_id, channel, factor, locked)
        return AuthError("invalid_grant", "the credentials are not valid")

    async def password(self, eid: str, username: str, password: str, channel: Channel | None) -> User:
        """The user, if `password` is theirs and they are active; else AuthError (counted)."""
        if not username or len(username) > 256 or not isinstance(password, str) or len(password) > 1024:
            raise AuthError("invalid_request", "username and password are required", 400)
        subject = f"u:{username.lower()}"
        await self._refuse_if_locked(eid, subject, username, channel)
        user = await self._dir.by_username(eid, username)
        stored = await self._dir.password_hash(eid, user.user_id) if user else None
        ok = await self._pwd.verify(stored, password)
        if not ok or user is None or user.status != "active":
            raise await self._count_failure(eid, subject, username, user.user_id if user else None, channel, "password")
        return user

    async def badge(self, eid: str, badge_id: str, channel: Channel | None) -> User:
        """The active user holding `badge_id`; else AuthError (counted against the badge)."""
        if not badge_id or len(badge_id) > 256:
            raise AuthError("invalid_request", "badge_id is required", 400)
        subject = f"b:{badge_id}"
        await self._refuse_if_locked(eid, subject, f"badge:{badge_id[:8]}", channel)
        user = await self._dir.by_badge(eid, badge_id)
        if user is None or user.status != "active":
            raise await self._count_failure(eid, subject, "badge", user.user_id if user else None, channel, "password")
        return user

    async def second_factor_required(self, eid: str, user: User) -> bool:
        """TOTP is required when the user enrolled it or the org requires a second factor."""
        return user.totp_enrolled or (await self._org.get(eid)).require_second_factor

    async def totp(self, eid: str, user: User, code: str, channel: Channel | None) -> None:
        """Accept `code` once (±1 step, no replay); else AuthError (counted)."""
        subject = f"u:{user.username.lower()}"
        await self._refuse_if_locked(eid, subject, user.username, channel)
        enrolled = await self._dir.totp(eid, user.user_id)
        if enrolled is None:
            raise AuthError("second_factor_required", "a second factor is required but none is enrolled")
        secret, last = enrolled
        step = totp_match(secret, (code or "").strip(), self._clock(), last)
        if step is None or not await self._dir.consume_totp_step(eid, user.user_id, step):
            raise await self._count_failure(eid, subject, user.username, user.user_id, channel, "totp")

    async def sign_in_factors(
        self, eid: str, user: User, amr: tuple[str, ...], code: str | None, channel: Channel, required: bool
    ) -> tuple[str, ...]:
        """`amr` after the second factor: a code sent is always checked; when a second factor is
        `required`, a sign-in whose methods lack one (`lanyard.contracts.factors`: a password or a
        badge alone) must send one."""
        if code or (required and not has_second_factor(amr)):
            if not code:
                raise AuthError("second_factor_required", "a second factor (totp) is required")
            await self.totp(eid, user, code, channel)
            amr = (*amr, TOTP_AMR)
        return amr

    async def admin_sign_in(self, eid: str, username: str, password: str, code: str | None) -> User | None:
        """`POST /admin/token`: password, then TOTP when the admin enrolled it (a code is ignored
        otherwise). None when the user
        holds no admin role (after the factors were checked, so that answer needs them)."""
        user = await self.password(eid, username, password, "admin_api")
        amr = PASSWORD_AMR
        if user.totp_enrolled:
            if not code:
                raise AuthError("second_factor_required", "this admin has TOTP enrolled: send totp")
            amr = await self.sign_in_factors(eid, user, amr, code, "admin_api", True)
        if not admin_roles(user):
            return None
        await self.succeeded(eid, user, amr, "admin_api")
        return user

    async def locker_sign_in(
        self, eid: str, primary: Primary, code: str | None, device_id: str, client_version: str | None
    ) -> Authenticated:
        """`POST /locker/authn`: a badge or a password, then TOTP when the user enrolled it or the
        org requires a second factor (or when a code is sent anyway)."""
        if isinstance(primary, Badge):
            user, amr = await self.badge(eid, primary.badge_id, "locker"), BADGE_AMR
        else:
            user, amr = await self.password(eid, primary.username, primary.password, "locker"), PASSWORD_AMR
        required = await self.second_factor_required(eid, user)
        amr = await self.sign_in_factors(eid, user, amr, code, "locker", required)
        return await self.succeeded(eid, user, amr, "locker", device_id, client_version)

    async def succeeded(
        self,
        eid: str,
        user: User,
        amr: tuple[str, ...],
        channel: Channel | None,
        device_id: str | None = None,
        client_version: str | None = None,
    ) -> Authenticated:
        """Forget past failures and announce the authentication (with the Locker's release, when
        it said it)."""
        await self._lock.clear(eid, f"u:{user.username.lower()}")
        if user.badge_id:
            await self._lock.clear(eid, f"b:{user.badge_id}")
        if channel:
            payload = UserAuthenticatedPayload(
                user_id=user.user_id, channel=channel, amr=amr, device_id=device_id, client_version=client_version
            )
            await self._pub.publish(
                UserAuthenticated(
                    enterprise_id=eid,
                    producer=PRODUCER,
                    subject=Subject(user_id=user.user_id, device_id=device_id),
                    payload=payload,
                )
            )
        return Authenticated(user, amr, int(self._clock()))


# ------------------------------------------------------------------------- tokens we issue


class TokenIssuer:
    """Admin bearer tokens and checkout assertions, signed with the enterprise's active ES256 key."""

    def __init__(self, keys: KeyStore, public_base_url: str, clock: Callable[[], float] = time.time) -> None:
        self._signer = JwtSigner(keys)
        self._base = public_base_url
        self._clock = clock

    async def _sign(self, eid: str, claims: dict[str, Any], typ: str) -> str:
        return await self._signer.sign(eid, claims, alg="ES256", typ=typ)

    async def admin_token(self, eid: str, user: User, ttl_s: int) -> str:
        now = int(self._clock())
        roles = admin_roles(user)
        claims = {
            "iss": issuer_for(self._base, eid),
            "sub": user.user_id,
            "aud": ADMIN_AUDIENCE,
            "iat": now,
            "exp": now + ttl_s,
            "jti": secrets.token_urlsafe(16),
            "roles": roles,
        }
        return await self._sign(eid, claims, ADMIN_TOKEN_TYP)

    async def checkout_assertion(self, eid: str, auth: Authenticated, device_id: str, ttl_s: int) -> str:
        now = int(self._clock())
        claims = {
            "iss": issuer_for(self._base, eid),
            "sub": auth.user.user_id,
            "aud": SESSION_AUDIENCE,
            "iat": now,
            "exp": now + min(ttl_s, 60),
            "auth_time": auth.auth_time,
            "jti": secrets.token_urlsafe(16),
            "amr": list(auth.amr),
            "device_id": device_id,
        }
        return await self._sign(eid, claims, CHECKOUT_TYP)


# ----------------------------------------------------------------------- enterprises and keys


class NotFound(LookupError):
    """The addressed record does not exist in this enterprise."""


class Invalid(ValueError):
    """Input that breaks a rule; `error` is the JSON error code."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


async def bootstrap(
    enterprises: EnterpriseStore,
    keys: KeyStore,
    directory: Directory,
    passwords: Passwords,
    publisher: Publisher,
    enterprise_id: str,
    name: str,
    superadmin: str,
    password: str,
) -> User:
    """Create an enterprise, its signing keys and its first superadmin. Refuses (Conflict) to
    touch an enterprise that exists."""
    if not enterprise_id or not all(c.isalnum() or c in "-_" for c in enterprise_id) or len(enterprise_id) > 64:
        raise Invalid("invalid_request", "enterprise id: letters, digits, '-' and '_' only")
    if enterprise_id.startswith("_"):
        raise Invalid("invalid_request", "enterprise ids starting with '_' are reserved (the services realm)")
    if len(password) < 12:
        raise Invalid("invalid_request", "the superadmin password must have at least 12 characters")
    if not re.fullmatch(USERNAME_PATTERN, superadmin):
        raise Invalid("invalid_request", "superadmin: letters, digits and . _ @ + - only (at most 128)")
    try:
        name = clean_text(name)
    except UnsafeText as exc:
        raise Invalid("invalid_request", f"name: {exc}") from None
    if not 1 <= len(name) <= 256:
        raise Invalid("invalid_request", "name: 1 to 256 characters")
    await enterprises.create(Enterprise(enterprise_id, name, datetime.now(UTC)))
    await keys.create(enterprise_id)
    user = User(enterprise_id, new_id("usr"), superadmin, superadmin, roles=("superadmin",))
    await directory.set_password_hash(enterprise_id, user.user_id, await passwords.hash(password))
    event = user_upserted(user, actor="bootstrap")
    await directory.save_user(user, event)
    await publisher.publish(event)
    return user


async def rotate_keys(keys: KeyStore, enterprise_id: str) -> KeyRing:
    """Rotate an enterprise's signing keys (next → active → retired)."""
    try:
        return await keys.rotate(enterprise_id)
    except LookupError:
        raise NotFound(f"enterprise {enterprise_id} has no keys") from None


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(12)}"


# --------------------------------------------------------------------------------- directory


def user_upserted(user: User, actor: str | None) -> UserUpserted:
    payload = UserUpsertedPayload(
        user_id=user.user_id,
        username=user.username,
        display_name=user.display_name,
        email=user.email,
        employee_id=user.employee_id,
        groups=user.groups,
        roles=user.roles,
        status=user.status,
        totp_enrolled=user.totp_enrolled,
    )
    return UserUpserted(
        enterprise_id=user.enterprise_id,
        producer=PRODUCER,
        actor=actor,
        subject=Subject(user_id=user.user_id),
        payload=payload,
    )


@dataclass(frozen=True)
class TotpEnrolment:
    """Shown once: the secret and the otpauth:// URI an authenticator app scans."""

    secret: str
    otpauth_uri: str


class DirectoryService:
    """Users, groups, passwords and TOTP enrolment; every change announced on lanyard.directory.v1."""

    def __init__(self, directory: Directory, publisher: Publisher, passwords: Passwords, totp_issuer: str) -> None:
        self._dir = directory
        self._pub = publisher
        self._pwd = passwords
        self._issuer = totp_issuer

    async def _save(self, user: User, actor: str) -> User:
        event = user_upserted(user, actor)
        await self._dir.save_user(user, event)
        await self._pub.publish(event)
        return user

    async def get(self, eid: str, user_id: str) -> User:
        user = await self._dir.get(eid, user_id)
        if user is None:
            raise NotFound("no such user")
        return user

    async def create_user(self, eid: str, fields: dict[str, Any], password: str | None, actor: str) -> User:
        user = User(enterprise_id=eid, user_id=new_id("usr"), **fields)
        if password is not None:
            await self._dir.set_password_hash(eid, user.user_id, await self._pwd.hash(password))
        return await self._save(user, actor)

    async def update_user(self, eid: str, user_id: str, fields: dict[str, Any], actor: str) -> User:
        user = await self.get(eid, user_id)
        return await self._save(replace(user, **fields), actor)

    async def set_password(self, eid: str, user_id: str, password: str, actor: str) -> None:
        await self.get(eid, user_id)
        await self._dir.set_password_hash(eid, user_id, await self._pwd.hash(password))
        log.info("password set", enterprise_id=eid, user_id=user_id, actor=actor)

    async def delete_user(self, eid: str, user_id: str, actor: str) -> None:
        event = UserDeleted(
            enterprise_id=eid,
            producer=PRODUCER,
            actor=actor,
            subject=Subject(user_id=user_id),
            payload=UserDeletedPayload(user_id=user_id),
        )
        if not await self._dir.delete_user(eid, user_id, event):
            raise NotFound("no such user")
        await self._pub.publish(event)

    async def enroll_totp(self, eid: str, user_id: str, actor: str) -> TotpEnrolment:
        user = await self.get(eid, user_id)
        secret = secrets.token_bytes(20)  # 160 bits, RFC 4226 §4's recommended length
        await self._dir.set_totp(eid, user_id, secret)
        if not user.totp_enrolled:
            await self._save(replace(user, totp_enrolled=True), actor)
        return TotpEnrolment(b32_secret(secret), otpauth_uri(secret, self._issuer, user.username))

    async def remove_totp(self, eid: str, user_id: str, actor: str) -> User:
        user = await self.get(eid, user_id)
        await self._dir.set_totp(eid, user_id, None)
        return await self._save(replace(user, totp_enrolled=False), actor)

    async def save_group(self, group: Group, actor: str) -> Group:
        event = GroupUpserted(
            enterprise_id=group.enterprise_id,
            producer=PRODUCER,
            actor=actor,
            payload=GroupUpsertedPayload(group_id=group.group_id, name=group.name, description=group.description),
        )
        await self._dir.save_group(group, event)
        await self._pub.publish(event)
        return group

    async def delete_group(self, eid: str, group_id: str, actor: str) -> None:
        event = GroupDeleted(
            enterprise_id=eid, producer=PRODUCER, actor=actor, payload=GroupDeletedPayload(group_id=group_id)
        )
        if not await self._dir.delete_group(eid, group_id, event):
            raise NotFound("no such group")
        await self._pub.publish(event)


# ------------------------------------------------------------------------------ app profiles

CLIENT_TYPE_REASONS: dict[str, str] = {
    "confidential": (
        "the seed: Generate Client credentials creates a Client ID and Client secret that you give to "
        "your organization's Epic resource; PKCE (S256) is still required, so a stolen code cannot be "
        "redeemed with the secret alone (RFC 9700 §2.1.1)"
    ),
    "public": (
        "a native app on a shared phone cannot keep a secret (RFC 8252 §8.4): a public client with no "
        "secret, identified by its exact redirect URI and protected by PKCE (S256)"
    ),
}
"""Why an admin would choose each kind of client for a native app such as Epic Rover."""

EPIC_ROVER: dict[str, Any] = {
    "profile_name": "Epic Rover",
    "display_name": "Rover",
    "redirect_uris": ["com.epic.rover.oidc://callback", "https://mobile.epic.com/rover/OIDC/redirect/"],
    "post_logout_redirect_uris": [],
    "client_type": "confidential",  # the seed: "A Client ID and Client secret are created"
    "require_pkce": True,
    "claims": list(DEFAULT_CLAIMS),
    "custom_claims": [],
    "backchannel_logout_uri": None,
    "enabled": True,
}
TEMPLATES: dict[str, dict[str, Any]] = {"epic-rover": EPIC_ROVER}


def template_view(name: str) -> dict[str, Any]:
    """What "Add App Profile" pre-fills from a template, and the client types an admin may choose
    instead, each with its reason."""
    body = TEMPLATES[name]
    choices = [
        {"client_type": kind, "default": kind == body["client_type"], "reason": CLIENT_TYPE_REASONS[kind]}
        for kind in ("confidential", "public")
    ]
    return {"template": name, **body, "client_type_choices": choices}


def check_uris(client: Client) -> None:
    """Validate every URI of a profile; raises Invalid("invalid_redirect_uri")."""
    if not client.redirect_uris:
        raise Invalid("invalid_redirect_uri", "redirect_uris: at least one redirect URI is required")
    # Each refusal names the field and its position and the rule, not the URI itself.
    fields = [("redirect_uris", i, u) for i, u in enumerate(client.redirect_uris)]
    fields += [("post_logout_redirect_uris", i, u) for i, u in enumerate(client.post_logout_redirect_uris)]
    for field, i, uri in fields:
        try:
            validate_redirect_uri(uri)
        except InvalidUri as bad:
            raise Invalid("invalid_redirect_uri", f"{field}[{i}]: {bad.reason}") from None
    if client.backchannel_logout_uri:
        try:
            validate_backchannel_uri(client.backchannel_logout_uri)
        except InvalidUri as bad:
            raise Invalid("invalid_redirect_uri", f"backchannel_logout_uri: {bad.reason}") from None


def metadata(public_base_url: str, eid: str, client_id: str) -> dict[str, str]:
    """ "View IdP metadata": the issuer, its discovery URL and every endpoint."""
    issuer = issuer_for(public_base_url, eid)
    return {
        "client_id": client_id,
        "issuer": issuer,
        "discovery_url": f"{issuer}/.well-known/openid-configuration",
        **endpoints(issuer),
    }


def profile_upserted(profile: AppProfile, actor: str) -> AppProfileUpserted:
    c = profile.client
    payload = AppProfileUpsertedPayload(
        client_id=c.client_id,
        profile_name=c.profile_name,
        display_name=c.display_name,
        client_type=c.client_type,
        redirect_uris=c.redirect_uris,
        post_logout_redirect_uris=c.post_logout_redirect_uris,
        backchannel_logout_uri=c.backchannel_logout_uri,
        scopes=c.scopes,
        custom_claims=tuple(ClaimMappingModel(claim=m.claim, source=m.source) for m in c.custom_claims),
        enabled=c.enabled,
        template=profile.template,
        require_pkce=c.pkce_required,
        credentials_source=profile.credentials_source or "generated",
    )
    return AppProfileUpserted(
        enterprise_id=c.enterprise_id,
        producer=PRODUCER,
        actor=actor,
        subject=Subject(client_id=c.client_id),
        payload=payload,
    )


@dataclass(frozen=True)
class Credentials:
    """Shown once. `client_secret` is None for public clients."""

    client_id: str
    client_secret: str | None
    previous_secret_valid_until: float | None = None


class ProfileService:
    """SSO application profiles; every change announced on lanyard.app-profiles.v1."""

    def __init__(self, store: ProfileStore, publisher: Publisher, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._pub = publisher
        self._clock = clock

    async def get(self, eid: str, client_id: str) -> AppProfile:
        profile = await self._store.get_profile(eid, client_id)
        if profile is None:
            raise NotFound("no such app profile")
        return profile

    async def save(self, profile: AppProfile, actor: str) -> AppProfile:
        check_uris(profile.client)
        event = profile_upserted(profile, actor)
        await self._store.save_profile(profile, event)
        await self._pub.publish(event)
        return profile

    async def delete(self, eid: str, client_id: str, actor: str) -> None:
        event = AppProfileDeleted(
            enterprise_id=eid,
            producer=PRODUCER,
            actor=actor,
            subject=Subject(client_id=client_id),
            payload=AppProfileDeletedPayload(client_id=client_id),
        )
        if not await self._store.delete_profile(eid, client_id, event):
            raise NotFound("no such app profile")
        await self._pub.publish(event)

    async def register_rp_credentials(self, profile: AppProfile, secret: str, actor: str) -> AppProfile:
        """Web App Login Configuration: a confidential profile whose client id and secret the RP
        chose. Same redirect-URI rules as any profile; the secret must be strong, is stored only
        as a hash and never shown again; a client id already taken is refused (Conflict)."""
        c = profile.client
        if c.client_type != "confidential":
            raise Invalid("invalid_request", "RP-supplied credentials make a confidential client")
        problem = rp_client_id_problem(c.client_id)
        if problem:
            raise Invalid("invalid_client_id", problem)
        weak = rp_secret_problem(secret, c.client_id)
        if weak:
            raise Invalid("weak_client_secret", f"the client secret is refused: {weak}")
        check_uris(c)
        profile = replace(profile, has_secret=True, credentials_source="rp_supplied")
        event = profile_upserted(profile, actor)
        await self._store.create_profile(profile, secret, event)
        await self._pub.publish(event)
        log.info("RP credentials registered", enterprise_id=c.enterprise_id, client_id=c.client_id)
        return profile

    async def replace_rp_secret(
        self, eid: str, client_id: str, secret: str, actor: str, grace_s: int = 0
    ) -> float | None:
        """The RP changed its secret: store the new one's hash (the old one works `grace_s` more)."""
        profile = await self.get(eid, client_id)
        if profile.credentials_source != "rp_supplied":
            raise Invalid(
                "generated_credentials", "this profile's secret is Lanyard's: rotate it with credentials/rotate"
            )
        weak = rp_secret_problem(secret, client_id)
        if weak:
            raise Invalid("weak_client_secret", f"the client secret is refused: {weak}")
        return await self._store_secret(eid, client_id, secret, actor, True, grace_s)

    async def _store_secret(
        self, eid: str, client_id: str, secret: str, actor: str, rotate: bool, grace_s: int
    ) -> float | None:
        until = self._clock() + grace_s if rotate and grace_s > 0 else None
        event = ClientSecretRotated(
            enterprise_id=eid,
            producer=PRODUCER,
            actor=actor,
            subject=Subject(client_id=client_id),
            payload=ClientSecretRotatedPayload(
                client_id=client_id,
                previous_secret_valid_until=datetime.fromtimestamp(until, UTC) if until else None,
            ),
        )
        await self._store.set_secret(eid, client_id, secret, until, event)
        await self._pub.publish(event)
        log.info("client secret issued", enterprise_id=eid, client_id=client_id, rotated=rotate)
        return until

    async def issue_credentials(
        self, eid: str, client_id: str, actor: str, rotate: bool, grace_s: int = 0
    ) -> Credentials:
        """First issue (rotate=False; refused once a secret exists) or rotation of the secret."""
        profile = await self.get(eid, client_id)
        if profile.client.is_public:
            if rotate:
                raise Invalid("invalid_request", "public clients have no secret")
            return Credentials(client_id, None)
        if profile.credentials_source == "rp_supplied":
            raise Invalid(
                "rp_supplied_credentials",
                "the RP chose this client's secret: enter its new one at web-app-logins/{client_id}/secret",
            )
        if profile.has_secret and not rotate:
            raise Invalid("credentials_already_issued", "the secret was shown once already; rotate it instead")
        if rotate and not profile.has_secret:
            raise Invalid("invalid_request", "no secret to rotate; generate credentials first")
        secret = secrets.token_urlsafe(32)  # 256 bits
        until = await self._store_secret(eid, client_id, secret, actor, rotate, grace_s)
        return Credentials(client_id, secret, until)


# ----------------------------------------------------------------------------- org settings


async def apply_org_settings(store: OrgSettingsStore, event: OrgSettingsChanged) -> bool:
    """Store the org settings an OrgSettingsChanged event carries (newer events only)."""
    p = event.payload
    settings = OrgSettings(
        password_autofill_and_sso=p.password_autofill_and_sso, require_second_factor=p.require_second_factor
    )
    return await store.apply(event.enterprise_id, settings, event.event_id, event.occurred_at.timestamp())


# ------------------------------------------------------------------------------ the part


@dataclass
class DirectorySide:
    """The directory part as its routes (admin API, login page, Locker authn) see it: its use
    cases and the ports they read directly. Built once by `lanyard.idp.app.create_app`."""

    settings: IdpSettings
    enterprises: EnterpriseStore
    directory: Directory
    clients: ProfileStore
    keys: KeyStore
    authenticator: Authenticator
    directory_service: DirectoryService
    profiles: ProfileService
    issuer: TokenIssuer
    verifier: TokenVerifier
    org_settings: OrgSettingsStore
    browser_sessions: BrowserSessions
    pending_logins: PendingLogins
    outbox: Publisher
    """The outbox-backed publisher: what it publishes was staged with the change it announces."""
    idempotency: Idempotency

    @classmethod
    def verifier_for(cls, settings: IdpSettings, keys: KeyStore) -> TokenVerifier:
        """Admin tokens are verified against the local Keys port: no HTTP to ourselves."""
        return TokenVerifier(settings.public_base_url, StaticJwks(keys.jwks))
