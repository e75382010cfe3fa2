"""What the churn observed: every device session it drove, every token it was handed, and when
each check first saw a token refused. Times are `time.time()` seconds (comparable with the
logout receiver's and the fault log's)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

CHECKS = ("introspect", "refresh", "userinfo", "sso")
"""How a checked-in session is probed: access token introspection inactive, refresh refused,
userinfo refused, a new SSO with the old device session refused."""


@dataclass
class Grant:
    """One app's tokens from one SSO (refreshes add access and refresh tokens)."""

    app: str
    sid: str
    access_tokens: list[str] = field(default_factory=list)
    refresh_tokens: list[str] = field(default_factory=list)
    issued_at: float = field(default_factory=time.time)


@dataclass
class Trace:
    """One device session from checkout to revocation, as the device and its apps saw it."""

    n: int
    device_id: str
    user: str
    handle: str = ""
    checkout_at: float = 0.0
    grants: list[Grant] = field(default_factory=list)
    refreshes: int = 0
    face_unlocks: int = 0
    checkin_sent: float = 0.0
    checkin_answered: float = 0.0
    refused_at: dict[str, float] = field(default_factory=dict)
    """check → when it first saw this session refused after the checkin was answered."""
    accepted_after_checkin: list[tuple[str, float]] = field(default_factory=list)
    """(check, when) for every success after the checkin answer (within the bound, not a violation)."""

    @property
    def sids(self) -> set[str]:
        return {g.sid for g in self.grants}

    def revoked_at(self) -> float | None:
        """When every check had seen it refused, or None."""
        required = CHECKS if self.grants else ("sso",)  # no app got tokens: only a new SSO to refuse
        if all(c in self.refused_at for c in required):
            return max(self.refused_at.values())
        return None


@dataclass(frozen=True)
class Refusal:
    """One refusal as the client saw it: the HTTP status and the OAuth `error` and
    `error_description` (RFC 6749 §5.2 for the token endpoint, §4.1.2.1 for an authorization
    redirect, which carries no status of its own: `status` is then that of the redirect)."""

    at: float
    what: str
    trace: int
    live: bool
    """The session was checked out and its checkin not yet sent."""
    status: int
    error: str | None
    description: str | None


@dataclass
class Ledger:
    """Everything observed in one soak."""

    traces: list[Trace] = field(default_factory=list)
    log: list[tuple[float, str, str]] = field(default_factory=list)
    """(when, what, detail) of notable observations (refusals, retries, fault steps)."""
    successes: list[tuple[float, str, int]] = field(default_factory=list)
    """(when, 'sso' | 'refresh', trace n) for every SSO code and refresh the IdP granted."""
    resurrections: list[dict[str, Any]] = field(default_factory=list)
    """A token that worked again after it had been seen refused (always a violation)."""
    errors: dict[str, int] = field(default_factory=dict)
    """Client-side refusals that were retried (counts by what and status)."""
    refusals: list[Refusal] = field(default_factory=list)
    """Every refresh, SSO and introspection the IdP refused (never the tokens themselves)."""

    def note(self, what: str, detail: str = "") -> None:
        self.log.append((time.time(), what, detail))

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1

    def refused(self, what: str, trace: Trace, status: int, error: str | None, description: str | None) -> None:
        """The IdP refused `what` for `trace`'s session; whether the session was live then is
        decided now (checked out, its checkin not yet sent)."""
        live = bool(trace.checkout_at) and not trace.checkin_sent
        self.refusals.append(Refusal(time.time(), what, trace.n, live, status, error, description))
        self.error(f"{what}: {status}" + (f" {error}" if error else ""))

    def succeeded(self, what: str, trace: Trace) -> None:
        self.successes.append((time.time(), what, trace.n))
