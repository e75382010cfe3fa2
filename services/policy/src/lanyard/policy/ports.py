"""The interfaces the policy service's use cases depend on; adapters implement them.

`ReadModel` is the Redis projection of the policy-config, directory and app-profile topics plus
the live device sessions; `CloudSecrets` keeps the provisioning code and the enterprise's
credentials, which never travel on Kafka; `EventSink` publishes (and returns after the ack).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from lanyard.contracts import Event
from lanyard.policy.domain import DeviceReport, DirectoryUser, LiveSession, LockerOptions, SeatCount, Snapshot

Clock = Callable[[], datetime]
SeatKind = Literal["sso", "apa"]


class EventSink(Protocol):
    """Publishes one event; returns only after the broker acknowledged it."""

    async def publish(self, event: Event) -> None: ...


@dataclass(frozen=True)
class CheckoutView:
    """Everything the checkout path reads for a run of one enterprise's checkouts, in one round trip."""

    users: Mapping[str, DirectoryUser | None]
    snapshot: Snapshot
    seats: SeatCount
    existing: Mapping[str, LiveSession]
    pending: Mapping[str, bytes]
    closed: frozenset[str]


class ReadModel(Protocol):
    """The service's Redis read model (see adapters.redis_store for the key layout)."""

    def lock(self, enterprise_id: str) -> AbstractAsyncContextManager[None]: ...

    # config projection
    async def apply(self, event: Event, offset: int | None = None) -> bool:
        """Project an event; a record older (by `offset`) than its item's last is refused (False)."""
        ...

    async def was_applied(self, enterprise_id: str, event_id: str) -> bool: ...
    async def snapshot(self, enterprise_id: str, complete: bool = True) -> Snapshot: ...
    async def created_at(self, enterprise_id: str) -> datetime | None: ...
    async def known(self, enterprise_id: str) -> bool:
        """Whether any event of the enterprise was projected (tokens are verified only for those)."""
        ...

    async def get_item(self, enterprise_id: str, kind: str, item_id: str) -> dict | None: ...
    async def list_items(self, enterprise_id: str, kind: str) -> list[dict]: ...
    async def cloud(self, enterprise_id: str) -> dict: ...
    async def locker_options(self, enterprise_id: str) -> LockerOptions: ...
    async def next_locker_options_version(self, enterprise_id: str, expected: int | None) -> tuple[int, int]:
        """(the version a change gets or -1 when `expected` is stale, the current version)."""
        ...

    # devices' Locker reports and the whole directory (readiness)
    async def record_devices(self, enterprise_id: str, reports: Sequence[DeviceReport]) -> None: ...
    async def devices(self, enterprise_id: str) -> list[DeviceReport]: ...
    async def all_users(self, enterprise_id: str) -> Mapping[str, DirectoryUser | None]: ...

    # sessions
    async def checkout_view(self, enterprise_id: str, checkouts: Sequence[tuple[str, str]]) -> CheckoutView:
        """The view for these (user id, device session id) checkouts."""
        ...

    async def session(self, enterprise_id: str, device_session_id: str) -> LiveSession | None: ...
    async def is_closed(self, enterprise_id: str, device_session_id: str) -> bool: ...
    async def save_session(
        self, enterprise_id: str, before: LiveSession | None, after: LiveSession, pending: bytes | None = None
    ) -> None:
        """Store the session's new record; with `pending`, also the wire form of the event that
        announces it, in the same transaction, until `clear_pending` (see Entitlements)."""
        ...

    async def save_sessions(
        self, enterprise_id: str, changes: Sequence[tuple[LiveSession | None, LiveSession, bytes | None]]
    ) -> None:
        """`save_session` for several (before, after, pending) at once, in one transaction."""
        ...

    async def clear_pending(self, enterprise_id: str, *device_session_ids: str) -> None: ...
    async def close_session(self, enterprise_id: str, device_session_id: str, before: LiveSession | None) -> None: ...
    async def live_sessions(self, enterprise_id: str, user_id: str | None = None) -> list[LiveSession]: ...
    async def users(self, enterprise_id: str, user_ids: Sequence[str]) -> Mapping[str, DirectoryUser | None]: ...
    async def seat_holders(self, enterprise_id: str, kind: SeatKind = "sso") -> Mapping[str, int]:
        """User → that user's live sessions holding a seat of `kind`."""
        ...

    async def user_seats(self, enterprise_id: str, user_id: str) -> SeatCount:
        """Seat use as one evaluation of this user sees it."""
        ...

    async def restore_sessions(
        self, enterprise_id: str, sessions: Sequence[LiveSession], closed: Mapping[str, int]
    ) -> None:
        """Write sessions rebuilt from Kafka with their seats, and tombstones (id → seconds left)."""
        ...

    # licence clock
    async def schedule_licence_check(self, enterprise_id: str, at: datetime | None) -> None: ...
    def due_licence_checks(self, now: datetime) -> AsyncIterator[str]: ...


CodeCheck = Literal["ok", "wrong", "used", "expired", "none"]


class CloudSecrets(Protocol):
    """Provisioning codes and enterprise credentials, stored hashed."""

    async def issue_code(self, enterprise_id: str, code_hash: str, expires_at: datetime) -> None: ...
    async def redeem_code(self, enterprise_id: str, code_hash: str, now: datetime) -> CodeCheck: ...
    async def count_failure(self, enterprise_id: str) -> int: ...
    async def failures(self, enterprise_id: str) -> int: ...
    async def code_expires_at(self, enterprise_id: str) -> datetime | None: ...
    async def store_credentials(self, enterprise_id: str, client_id: str, secret_hash: str, at: datetime) -> None: ...
