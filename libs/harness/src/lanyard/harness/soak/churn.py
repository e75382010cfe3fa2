"""The churn driver: devices cycling through a clinician's shift, as the Locker app and the apps
on the device would, retrying what a real client retries, and writing down what they saw.

One cycle: check out (password + TOTP, device proof) → SSO into one or two apps (code + PKCE,
redeemed) → one or two refreshes → sometimes a face verification → check in (retried until
answered 200) → probe the session until every check refuses it (`ledger.CHECKS`). A success of a
check after that check had refused is a resurrection.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import httpx

from lanyard.harness.admin import ApiError, App, Enterprise, Person
from lanyard.harness.device import Device, introspect, redeem, refresh
from lanyard.harness.rp import unverified_claims
from lanyard.harness.soak.ledger import Grant, Ledger, Trace

T = TypeVar("T")
UNAVAILABLE = ("temporarily_unavailable", "server_error")
"""Authorization errors that say the IdP cannot answer now, not that the session is refused."""


class People:
    """Clinicians to sign in with: a TOTP step is single use, so each one signs in at most once
    per 30 s step."""

    def __init__(self, people: list[Person]) -> None:
        self._people = deque(people)
        self._step: dict[str, int] = {}

    async def take(self) -> Person:
        while True:
            step = int(time.time() // 30)
            for _ in range(len(self._people)):
                person = self._people[0]
                self._people.rotate(-1)
                if self._step.get(person.username, -1) < step:
                    self._step[person.username] = step
                    return person
            await asyncio.sleep(0.2)


class ErrorCounter(Protocol):
    """Where a refused attempt is counted (the soak's ledger, a benchmark's run)."""

    def error(self, what: str) -> None: ...


async def retrying(
    what: str, ledger: ErrorCounter, call: Callable[[], Awaitable[T | None]], deadline: float, pause_s: float = 0.1
) -> T:
    """Call until it returns something truthy (a Locker app or an app retrying), bounded."""
    while True:
        try:
            result = await call()
            if result:
                return result
        except (httpx.HTTPError, ApiError, KeyError, ValueError) as exc:
            status = exc.response.status_code if isinstance(exc, ApiError) else type(exc).__name__
            ledger.error(f"{what}: {status}")
        if time.time() > deadline:
            raise TimeoutError(f"{what} did not succeed in time")
        await asyncio.sleep(pause_s)


@dataclass
class Churn:
    """The driver's fixed parts: one enterprise, its apps, its people, the bound on a cycle."""

    http: httpx.AsyncClient
    ent: Enterprise
    apps: list[App]
    people: People
    ledger: Ledger
    bound_s: float = 180.0
    face_share: float = 0.3

    async def worker(self, device: Device, busy: Callable[[], bool], rng: random.Random) -> None:
        """Cycle while `busy()` says so (a cycle started is finished)."""
        while busy():
            try:
                await self.cycle(device, rng)
            except (TimeoutError, ApiError, httpx.HTTPError) as exc:
                self.ledger.note("cycle abandoned", f"{type(exc).__name__}: {exc}")
                self.ledger.error(f"cycle abandoned: {type(exc).__name__}")

    async def cycle(self, device: Device, rng: random.Random) -> Trace:
        ledger, deadline = self.ledger, time.time() + self.bound_s
        trace = Trace(n=len(ledger.traces), device_id=device.device_id, user="")

        async def check_out() -> bool:
            person = await self.people.take()
            trace.user = person.username
            try:
                await device.check_out(person)
            except ApiError as refused:
                if refused.response.status_code == 409:  # an earlier attempt went through, its answer lost
                    await self.end_live_session(device)
                raise
            return True

        await retrying("checkout", ledger, check_out, deadline)
        trace.handle, trace.checkout_at = device.handle or "", time.time()
        ledger.traces.append(trace)
        for app in rng.sample(self.apps, rng.choice((1, len(self.apps)))):
            trace.grants.append(await retrying("sso", ledger, lambda app=app: self.sso(device, app, trace), deadline))
        for _ in range(rng.choice((1, 2))):
            grant = rng.choice(trace.grants)
            await retrying("refresh", ledger, lambda grant=grant: self.refresh(grant, trace), deadline)
        if rng.random() < self.face_share:
            await retrying("face", ledger, lambda: device.verify_face(), deadline)
            trace.face_unlocks += 1

        async def check_in() -> bool:
            trace.checkin_sent = trace.checkin_sent or time.time()
            await device.check_in()
            return True

        await retrying("checkin", ledger, check_in, deadline, pause_s=0.2)
        trace.checkin_answered = time.time()
        while trace.revoked_at() is None:
            await self.probe(device, trace, after_checkin=True)
            if time.time() > deadline:
                raise TimeoutError(f"session {trace.n} not refused by every check in time")
            await asyncio.sleep(0.05)
        return trace

    async def sso(self, device: Device, app: App, trace: Trace) -> Grant | None:
        """SSO into `app`, the code redeemed and the new access token introspected (a resource
        server's first question); any refusal is written down with its OAuth error."""
        auth = await device.sso(app)
        if not auth.code:
            error, description = auth.params.get("error"), auth.params.get("error_description")
            self.ledger.refused("sso", trace, auth.status, error, description)
            return None
        try:
            tokens = await redeem(self.http, self.ent.issuer, app, auth)
        except ApiError as refused:
            self.ledger.refused("sso", trace, refused.status, refused.error, refused.description)
            return None
        self.ledger.succeeded("sso", trace)
        sid = unverified_claims(tokens["id_token"])["sid"]
        grant = Grant(app.client_id, sid, [tokens["access_token"]], [tokens["refresh_token"]])
        try:
            active = (await introspect(self.http, self.ent.issuer, app, tokens["access_token"]))["active"]
        except ApiError as refused:  # the tokens are the app's now: keep them, note the refusal
            self.ledger.refused("introspect", trace, refused.status, refused.error, refused.description)
        else:
            if not active:
                self.ledger.refused("introspect", trace, 200, "inactive", "a fresh access token introspected inactive")
        return grant

    def app(self, client_id: str) -> App:
        return next(a for a in self.apps if a.client_id == client_id)

    async def refresh(self, grant: Grant, trace: Trace) -> bool:
        response = await refresh(self.http, self.ent.issuer, self.app(grant.app), grant.refresh_tokens[-1])
        if response.status_code != 200:
            refused = ApiError(response)  # the OAuth error and its description, never the tokens
            self.ledger.refused("refresh", trace, response.status_code, refused.error, refused.description)
            return False
        self.keep(grant, response.json(), trace)
        trace.refreshes += 1
        return True

    def keep(self, grant: Grant, tokens: dict[str, Any], trace: Trace) -> None:
        """New tokens from a refresh join the grant (all of them must die at checkin)."""
        self.ledger.succeeded("refresh", trace)
        grant.access_tokens.append(tokens["access_token"])
        if tokens.get("refresh_token"):
            grant.refresh_tokens.append(tokens["refresh_token"])

    async def probe(self, device: Device, trace: Trace, *, after_checkin: bool) -> dict[str, bool] | None:
        """Ask every check whether the session still works; records first refusals and any
        success after a refusal (a resurrection). Returns check → accepted now, or None when an
        answer was inconclusive (a 5xx, a dropped connection: a service down is no verdict)."""
        try:
            accepted = await self._ask(device, trace)
        except (httpx.HTTPError, ApiError) as exc:
            status = exc.response.status_code if isinstance(exc, ApiError) else type(exc).__name__
            self.ledger.error(f"probe: {status}")
            return None
        if accepted is None:
            return None
        now = time.time()
        for check, ok in accepted.items():
            if ok and check in trace.refused_at:
                self.ledger.resurrections.append({"trace": trace.n, "check": check, "at": now})
            elif ok and after_checkin:
                trace.accepted_after_checkin.append((check, now))
            elif not ok and after_checkin:
                trace.refused_at.setdefault(check, now)
        return accepted

    async def _ask(self, device: Device, trace: Trace) -> dict[str, bool] | None:
        accepted: dict[str, bool] = {}
        for grant in trace.grants:
            app = self.app(grant.app)
            active = False
            for token in grant.access_tokens:
                active |= bool((await introspect(self.http, self.ent.issuer, app, token))["active"])
            accepted["introspect"] = accepted.get("introspect", False) or active
            r = await self.http.get(
                f"{self.ent.issuer}/userinfo", headers={"Authorization": f"Bearer {grant.access_tokens[-1]}"}
            )
            if r.status_code >= 500:
                return None
            accepted["userinfo"] = accepted.get("userinfo", False) or r.status_code == 200
            r = await refresh(self.http, self.ent.issuer, app, grant.refresh_tokens[-1])
            if r.status_code >= 500:
                return None
            if r.status_code == 200:
                self.keep(grant, r.json(), trace)
            accepted["refresh"] = accepted.get("refresh", False) or r.status_code == 200
        auth = await device.sso(self.apps[0])
        if auth.status >= 500 or auth.params.get("error") in UNAVAILABLE:
            return None
        accepted["sso"] = bool(auth.code)
        return accepted

    async def finish(self, devices: dict[str, Device]) -> None:
        """Check in every session a cycle abandoned before its checkin was answered (the Locker
        app would keep retrying), so the checker can hold all of them to the same rules."""
        for trace in [t for t in self.ledger.traces if not t.checkin_answered]:
            device = devices[trace.device_id]
            old = Device(device.base_url, device.enterprise_id, self.http, device.device_id, device.key, trace.handle)
            deadline = time.time() + self.bound_s
            trace.checkin_sent = time.time()
            try:
                await retrying("checkin", self.ledger, self._check_in_or_gone(old), deadline, pause_s=0.2)
            except TimeoutError:
                continue
            trace.checkin_answered = time.time()
            while trace.revoked_at() is None and time.time() < deadline:
                await self.probe(old, trace, after_checkin=True)
                await asyncio.sleep(0.05)

    def _check_in_or_gone(self, device: Device) -> Callable[[], Awaitable[bool]]:
        async def call() -> bool:
            try:
                await device.check_in()
            except ApiError as refused:
                if refused.response.status_code not in (404, 409):  # already closed (a forced checkin)
                    raise
            return True

        return call

    async def end_live_session(self, device: Device) -> None:
        """An admin force-checks-in the device's live session (the Locker app lost its handle)."""
        e = self.ent.enterprise_id
        live = await self.ent.call("GET", f"/session/e/{e}/device-sessions")
        for s in live["device_sessions"]:
            if s["device_id"] == device.device_id:
                await self.ent.call("POST", f"/session/e/{e}/device-sessions/{s['device_session_id']}/force-checkin")
