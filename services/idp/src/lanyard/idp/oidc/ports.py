"""The oidc part's ports: what the OpenID Provider consumes.

`Ports` gathers what the other parts offer it (the directory's `Enterprises`, `Users`,
`Clients`, `Keys`, `OrgSettingsView`, `BrowserSessions`; the devices part's `DeviceSessions`
and `BackchannelLogouts`) and the bus; `GrantStore` is its own storage (codes, grants, refresh
families, interactions, logout confirmations), implemented by `adapters.redis_oidc`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from lanyard.idp.devices.ports import BackchannelLogouts, DeviceSessions
from lanyard.idp.directory.ports import BrowserSessions, Clients, Enterprises, Keys, OrgSettingsView, Publisher, Users
from lanyard.idp.oidc.domain import Grant, RevokedGrant


@dataclass(frozen=True)
class Ports:
    """Everything the protocol side consumes (implemented by the directory and devices sides)."""

    enterprises: Enterprises
    users: Users
    clients: Clients
    keys: Keys
    org_settings: OrgSettingsView
    browser_sessions: BrowserSessions
    device_sessions: DeviceSessions
    backchannel: BackchannelLogouts
    publisher: Publisher


class GrantStore(Protocol):
    """Codes, grants and refresh-token families, by enterprise. Secrets are kept as hashes."""

    async def create_code(
        self, eid: str, code: str, record: dict[str, Any], grant: Grant, code_ttl_s: int, grant_ttl_s: int
    ) -> bool:
        """Store a new grant (state issued) and its code; False when its session was revoked."""
        ...

    async def consume_code(self, eid: str, code: str) -> tuple[bool, dict[str, Any] | None, Grant | None, str | None]:
        """(won, record, grant as it stood, its user's status) of one redemption; a replay or
        unknown code does not win. The status is '' for no such user, None when the store does
        not read the directory (the caller asks `Users`)."""
        ...

    async def activate_grant(self, eid: str, grant: Grant, refresh_token: str, ttl_s: int) -> bool: ...

    async def grant_state(self, eid: str, gid: str) -> str | None: ...

    async def grant_fields(self, eid: str, gid: str, *fields: str) -> list[str | None]: ...

    async def grant_fields_and_view(
        self, eid: str, gid: str, fields: tuple[str, ...], dsid: str, view_fields: tuple[str, ...]
    ) -> tuple[list[str | None], dict[str, str | None] | None]:
        """`grant_fields` plus some fields of the device session's view in the same read (None
        when the store cannot read the view)."""
        ...

    async def get_grant(self, eid: str, gid: str) -> Grant | None: ...

    async def read_refresh(self, eid: str, refresh_token: str) -> tuple[dict[str, str], Grant] | None: ...

    async def read_refresh_and_view(
        self, eid: str, refresh_token: str
    ) -> tuple[dict[str, str], Grant, dict[str, str] | None, str | None] | None:
        """`read_refresh` plus the grant's device-session view fields in the same read (None
        when the grant has no device session or the store cannot read the view) and its user's
        status ('' for no such user; None when the store does not read the directory)."""
        ...

    async def rotate_refresh(self, eid: str, old: str, new: str, grant: Grant, ttl_s: int, grace_s: float) -> str: ...

    async def revoke_grant(self, eid: str, gid: str) -> tuple[str, Grant] | None: ...

    async def revoke_sid(self, eid: str, sid: str, marker_ttl_s: int) -> list[RevokedGrant]: ...

    async def revoke_device_session(
        self, eid: str, dsid: str, marker_ttl_s: int, first_only: bool = False
    ) -> list[RevokedGrant] | None:
        """Revoke every grant of a device session and refuse new ones; with `first_only`, None
        (nothing touched) when it was revoked before."""
        ...

    async def put_interaction(self, eid: str, ix_id: str, record: dict[str, Any], ttl_s: int) -> None: ...

    async def get_interaction(self, eid: str, ix_id: str) -> dict[str, Any] | None: ...

    async def drop_interaction(self, eid: str, ix_id: str) -> None: ...

    async def put_logout(self, eid: str, token: str, sid: str, ttl_s: int) -> None: ...

    async def take_logout(self, eid: str, token: str) -> str | None: ...
