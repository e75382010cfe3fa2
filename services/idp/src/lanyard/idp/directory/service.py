"""Use cases of the directory/administration side of the IdP. They take their ports as
parameters (see `ports.py`); `app.py` wires the Redis adapters in, unit tests the fakes.

Every state change that other services see is stored together with its event in an outbox
(one Redis transaction) and then published; the use case returns only after the broker acked.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from lanyard.contracts import Subject
from lanyard.contracts.events import (
    GroupDeleted,
    GroupDeletedPayload,
    GroupUpserted,
    GroupUpsertedPayload,
    OrgSettingsChanged,
    UserDeleted,
    UserDeletedPayload,
    UserUpserted,
    UserUpsertedPayload,
)
from lanyard.idp.directory.authn import Authenticator, Passwords, TokenIssuer
from lanyard.idp.directory.domain import (
    PRODUCER,
    USERNAME_PATTERN,
    Enterprise,
    Group,
    Invalid,
    KeyRing,
    NotFound,
    OrgSettings,
    User,
    b32_secret,
    otpauth_uri,
)
from lanyard.idp.directory.ports import (
    BrowserSessions,
    Directory,
    EnterpriseStore,
    KeyStore,
    OrgSettingsStore,
    PendingLogins,
    ProfileStore,
    Publisher,
)
from lanyard.idp.directory.profiles import ProfileService
from lanyard.idp.settings import IdpSettings
from lanyard.runtime.idempotency import Idempotency
from lanyard.runtime.logging import get_logger
from lanyard.runtime.text import UnsafeText, clean_text
from lanyard.runtime.tokens import (
    StaticJwks,
    TokenVerifier,
)

log = get_logger("lanyard.idp.directory.service")


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
