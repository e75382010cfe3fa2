"""`make demo` (`lanyard demo play`): the whole story against the running stack, as a timeline.

A fresh shared iPhone is enrolled, nurse.jane (face mode) checks it out, and two apps sign in
through the SSO extension: Epic Rover (a public native app, played here with the harness) and
rover-demo (a web app with its own OIDC library, reached through a web view). The device then
sits idle until the inactivity timer locks it; SSO and refresh are refused; a face verification
unlocks it; she checks it in, and each app's view is polled until revocation shows: Rover's
refresh refused and its access token inactive, rover-demo's own introspection inactive and its
back-channel logout endpoint called. Each step's latency is measured here (wall clock, this
machine); an effect that does not show within its bound fails the step, and the command exits 1.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from lanyard.harness.admin import App, Person, sign_in
from lanyard.harness.device import Device, browse, introspect, redeem, refresh, verified_claims


@dataclass
class Step:
    """One line of the timeline."""

    at_ms: float
    step: str
    latency_ms: float | None
    observed: str
    ok: bool = True


@dataclass
class Timeline:
    """The story as it happened."""

    started: float = field(default_factory=time.perf_counter)
    steps: list[Step] = field(default_factory=list)

    def add(self, step: str, latency_ms: float | None, observed: str, ok: bool = True) -> Step:
        """Record a step (time since the start, the step's own latency, what was seen)."""
        entry = Step(round((time.perf_counter() - self.started) * 1000, 1), step, _r(latency_ms), observed, ok)
        self.steps.append(entry)
        return entry

    @property
    def ok(self) -> bool:
        """Every step happened as it should."""
        return bool(self.steps) and all(s.ok for s in self.steps)

    def as_dict(self) -> dict[str, Any]:
        """For --json."""
        return {"ok": self.ok, "steps": [asdict(s) for s in self.steps]}

    def render(self, console: Console) -> None:
        """The timeline as a table."""
        table = Table(title="Lanyard demo: checkout → SSO → lock → face unlock → checkin", title_justify="left")
        for name, justify in (
            ("t+ms", "right"),
            ("step", "left"),
            ("latency", "right"),
            ("", "left"),
            ("observed", "left"),
        ):
            table.add_column(name, justify=justify, overflow="fold")  # type: ignore[arg-type]
        for s in self.steps:
            latency = "" if s.latency_ms is None else f"{s.latency_ms:.1f} ms"
            mark = "[green]✓[/]" if s.ok else "[bold red]✗[/]"
            table.add_row(f"{s.at_ms:.0f}", s.step, latency, mark, s.observed)
        console.print(table)
        console.print("[dim]latency: each step's own time; for the → rows, from the moment the checkin was sent[/]")
        console.print("[bold green]every effect observed[/]" if self.ok else "[bold red]some effects are missing[/]")


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _ms(since: float) -> float:
    return (time.perf_counter() - since) * 1000


async def poll(check: Callable[[], Awaitable[Any]], timeout_s: float, interval_s: float = 0.005) -> Any:
    """The first truthy answer of `check` within the bound, else None."""
    deadline = time.monotonic() + timeout_s
    while True:
        answer = await check()
        if answer:
            return answer
        if time.monotonic() >= deadline:
            return None
        await asyncio.sleep(interval_s)


class Missing(Exception):
    """A step whose effect never showed: the story cannot go on."""


async def play(demo: dict[str, Any], *, user: str = "nurse.jane", effect_timeout_s: float = 10.0) -> Timeline:
    """Play the story with the demo file's enterprise; the timeline (check `.ok`)."""
    tl = Timeline()
    try:
        await _story(tl, demo, user, effect_timeout_s)
    except Missing as gone:
        tl.add(str(gone), None, "stopped here", ok=False)
    return tl


async def _story(tl: Timeline, demo: dict[str, Any], username: str, bound: float) -> None:
    gw, eid, issuer, rd = demo["gateway"], demo["enterprise_id"], demo["issuer"], demo["rover_demo_url"]
    u = demo["users"][username]
    person = Person(u["user_id"], username, u["password"], u["totp_secret"], u.get("badge_id"))
    rover_cfg = demo["apps"]["rover"]
    rover = App(rover_cfg["client_id"], rover_cfg["redirect_uri"], rover_cfg.get("client_secret"))
    web_cfg = demo["apps"]["rover-demo"]
    web = App(web_cfg["client_id"], web_cfg["redirect_uri"], web_cfg["client_secret"])

    async with httpx.AsyncClient(timeout=10) as http, httpx.AsyncClient(timeout=10) as browser:
        admin = demo["superadmin"]
        ent = await sign_in(gw, eid, admin["username"], admin["password"], http)
        t = time.perf_counter()
        report = await ent.policy("GET", "/readiness")
        passed = sum(1 for c in report["checks"] if c["status"] == "pass")
        tl.add("readiness (policy service)", _ms(t), f"{passed}/{len(report['checks'])} checks pass", report["ready"])
        try:
            up = (await browser.get(f"{rd}/health")).status_code == 200
        except httpx.HTTPError:
            up = False
        if not up:
            raise Missing(f"rover-demo is not answering at {rd} (make run starts it)")

        device = Device(gw, eid, http)
        t = time.perf_counter()
        await ent.enrol_device(device.device_id, device.public_jwk)
        tl.add("MDM enrols a shared iPhone", _ms(t), f"{device.device_id}, P-256 device key")

        t = time.perf_counter()
        handle = await device.check_out(person, next_code_if_spent=True)
        tl.add(f"checkout: {username}, password + TOTP", _ms(t), f"device session {handle[:10]}… ({u['policy']})")

        t = time.perf_counter()

        async def granted() -> Any:
            view = await device.session()
            return view if view.get("entitlement_version") is not None else None

        view = await poll(granted, bound)
        if not view:
            raise Missing("no entitlement reached the session service")
        tl.add(
            "entitlement granted (policy → session)",
            _ms(t),
            f"{view['auth_mode']} mode, inactivity {view['inactivity_timeout_s']} s, "
            f"face allowed: {view['face_allowed']}",
        )
        face_mode = view["auth_mode"] == "face"

        if face_mode:
            t = time.perf_counter()
            result = await device.verify_face(person)
            tl.add(
                "face verification (signed by the device key)",
                _ms(t),
                f"verified: {result['verified']}",
                result["verified"],
            )

        async def code_for(app: App) -> Any:
            attempt = await device.sso(app)
            return attempt if attempt.code else None

        t = time.perf_counter()
        auth = await poll(lambda: code_for(rover), 5, 0.02)
        if not auth:
            raise Missing("Rover got no code through the SSO extension")
        rover_tokens = await redeem(http, issuer, rover, auth)
        rover_claims = await verified_claims(http, issuer, rover_tokens["id_token"])
        tl.add(
            "SSO into Epic Rover (authorize + token)",
            _ms(t),
            f"Rover: ID token sub {rover_claims['sub']}, amr {','.join(rover_claims.get('amr', []))}, "
            f"sid {rover_claims['sid'][:8]}…",
        )

        t = time.perf_counter()
        page = await browse(device, f"{rd}/login", browser)
        me = (await browser.get(f"{rd}/api/me")).json()
        signed_in = page.status_code == 200 and me.get("signed_in") and me.get("sub") == person.user_id
        same = me.get("sid") == rover_claims["sid"]
        tl.add(
            "SSO into rover-demo (web view, authlib)",
            _ms(t),
            f"rover-demo: signed in as {me.get('name')} (ID token validated); same SSO session as Rover: {same}; "
            f"its introspection: {'active' if (me.get('introspection') or {}).get('active') else 'INACTIVE'}",
            bool(signed_in and same),
        )
        last_activity = time.perf_counter()

        if face_mode:
            timeout_s = view["inactivity_timeout_s"]

            async def locked() -> Any:
                return (await device.session())["state"] == "LOCKED"

            if not await poll(locked, timeout_s + bound, 0.1):
                raise Missing(f"the session did not lock after {timeout_s} s without activity")
            tl.add(
                "inactivity lock (session timer)", _ms(last_activity), f"LOCKED after {timeout_s} s without activity"
            )

            t = time.perf_counter()
            refused = await device.sso(rover)
            stale = await refresh(http, issuer, rover, rover_tokens["refresh_token"])
            ok = refused.params.get("error") == "interaction_required" and stale.status_code >= 400
            tl.add(
                "while LOCKED: Rover asks again",
                _ms(t),
                f"SSO: {refused.params.get('error')} ({refused.params.get('lanyard_action')}); "
                f"refresh: {stale.status_code} {_error_of(stale)}",
                ok,
            )

            t = time.perf_counter()
            result = await device.verify_face(person)
            tl.add(
                "face unlock",
                _ms(t),
                f"unlocked: {result['unlocked']}, state {result['state']}",
                bool(result["unlocked"]),
            )

            t = time.perf_counter()
            auth = await poll(lambda: code_for(rover), 5, 0.02)
            if not auth:
                raise Missing("no SSO after the face unlock")
            rover_tokens = await redeem(http, issuer, rover, auth)
            tl.add("SSO into Rover after the unlock", _ms(t), "code + tokens again, no typing")

        active = (await introspect(http, issuer, web, rover_tokens["access_token"]))["active"]
        if not active:
            raise Missing("Rover's access token is not active before the checkin")

        t_send, wall_send = time.perf_counter(), time.time()
        closed = await device.check_in()
        tl.add("checkin (Locker app)", _ms(t_send), f"session {closed['state']}, reason {closed['closed_reason']}")
        await _revocation(tl, http, browser, device, issuer, rover, web, rover_tokens, rd, t_send, wall_send, bound)


async def _revocation(
    tl: Timeline,
    http: httpx.AsyncClient,
    browser: httpx.AsyncClient,
    device: Device,
    issuer: str,
    rover: App,
    web: App,
    rover_tokens: dict[str, Any],
    rd: str,
    t_send: float,
    wall_send: float,
    bound: float,
) -> None:
    """Every effect of the checkin, each polled from the moment the checkin was sent."""

    async def measured(check: Callable[[], Awaitable[Any]]) -> tuple[Any, float]:
        answer = await poll(check, bound)
        return answer, _ms(t_send)

    async def rover_inactive() -> Any:
        return (await introspect(http, issuer, web, rover_tokens["access_token"]))["active"] is False

    async def rover_refresh_refused() -> Any:
        answer = await refresh(http, issuer, rover, rover_tokens["refresh_token"])
        return answer if answer.status_code >= 400 else None

    async def web_introspection_inactive() -> Any:
        me = (await browser.get(f"{rd}/api/me")).json()
        seen = me.get("introspection") or {}
        return me if seen.get("active") is False else None

    async def web_logged_out() -> Any:
        me = (await browser.get(f"{rd}/api/me", params={"introspect": "0"})).json()
        return me if me.get("logged_out_at") else None

    (inactive, t1), (refused, t2), (web_seen, t3), (logout, t4) = await asyncio.gather(
        measured(rover_inactive), measured(rover_refresh_refused), measured(web_introspection_inactive),
        measured(web_logged_out),
    )  # fmt: skip
    tl.add("→ Rover's access token: introspection", t1, "active: false" if inactive else "STILL ACTIVE", bool(inactive))
    tl.add(
        "→ Rover's refresh token",
        t2,
        f"refused: {refused.status_code} {_error_of(refused)}" if refused else "STILL ACCEPTED",
        bool(refused),
    )
    if web_seen:
        app_ms = (web_seen["introspection"]["inactive_since_epoch"] - wall_send) * 1000
        tl.add(
            "→ rover-demo: its own introspection",
            app_ms,
            f"inactive since {web_seen['introspection']['inactive_since']}",
        )
    else:
        tl.add("→ rover-demo: its own introspection", t3, "STILL ACTIVE", False)
    if logout:
        app_ms = (logout["logged_out_at_epoch"] - wall_send) * 1000
        tl.add(
            "→ rover-demo: back-channel logout",
            app_ms,
            f"arrived {logout['logged_out_at']}: logout token verified, sid matches",
        )
    else:
        tl.add("→ rover-demo: back-channel logout", t4, f"NOT RECEIVED within {bound:.0f} s", False)
    t = time.perf_counter()
    after = await device.sso(rover)
    error = after.params.get("error")
    tl.add(
        "after checkin: Rover asks for SSO",
        _ms(t),
        f"{error}: {after.params.get('error_description', '')}",
        error == "login_required",
    )


def _error_of(response: httpx.Response) -> str:
    try:
        return str(response.json().get("error", ""))
    except ValueError:
        return ""
