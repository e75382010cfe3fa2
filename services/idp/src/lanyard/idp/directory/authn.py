"""Who a user is: argon2id passwords, password/badge/TOTP sign-ins with lockout (the login page,
the Locker authn API and the admin token endpoint share them), and the tokens the directory
signs for the people it authenticated (admin bearer tokens, checkout assertions)."""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from lanyard.contracts import Subject
from lanyard.contracts.events import (
    AuthChannel,
    AuthenticationFailed,
    AuthenticationFailedPayload,
    UserAuthenticated,
    UserAuthenticatedPayload,
)
from lanyard.contracts.factors import has_second_factor
from lanyard.idp.directory.domain import (
    PRODUCER,
    User,
    admin_roles,
    totp_match,
)
from lanyard.idp.directory.ports import (
    Directory,
    KeyStore,
    Lockouts,
    OrgSettingsView,
    Publisher,
)
from lanyard.runtime.logging import get_logger
from lanyard.runtime.signing import JwtSigner
from lanyard.runtime.tokens import (
    ADMIN_AUDIENCE,
    ADMIN_TOKEN_TYP,
    CHECKOUT_TYP,
    SESSION_AUDIENCE,
    issuer_for,
)

log = get_logger("lanyard.idp.directory.authn")
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
