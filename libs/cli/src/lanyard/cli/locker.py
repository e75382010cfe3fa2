"""`lanyard locker …`: the Locker app and its SSO extension on one shared iPhone, against any gateway.

The device's P-256 key, its id and the current device-session handle live in the device file
(see `lanyard.cli.config`); every Locker call is signed with that key, exactly as the app does.
The calls themselves are the harness's `Device` (the same code the end-to-end tests drive).

    enrol                  new key; the MDM's enrolment (an admin call) registers its public half
    checkout --user NAME   password (or --badge) plus TOTP → checkout assertion → device session
    face                   a face result signed by the device key (unlocks a LOCKED session)
    sso CLIENT_ID          authorize (code + PKCE) through the extension, token exchange, claims
    browse URL             a web view opens URL; the extension completes the issuer's authorize step
    heartbeat | status | checkin
"""

from __future__ import annotations

import asyncio
import getpass
import os
import time
from pathlib import Path
from typing import Any

import click
import httpx
from rich.console import Console

from lanyard.cli.config import (
    Target,
    admin_options,
    admin_session,
    device_file,
    read_device,
    target,
    target_options,
    write_private,
)
from lanyard.cli.output import Missing, Out, Refused, json_option, kv, runs
from lanyard.harness.admin import App, Person, _ok
from lanyard.harness.device import Device, browse, redeem, verified_claims


@click.group()
def locker() -> None:
    """Play the Locker app and its SSO extension (device key kept in a local file)."""


def device_option(f: Any) -> Any:
    """`--device-file` on a command."""
    return click.option("--device-file", help="Device state file (env LANYARD_DEVICE_FILE).")(f)


def _open(http: httpx.AsyncClient, t: Target, path: Path, *, needs_session: bool = True) -> Device:
    state = read_device(path)
    if state.get("base_url") != t.gateway or state.get("enterprise_id") != t.enterprise_id:
        raise Missing(f"{path} is a device of {state.get('enterprise_id')} at {state.get('base_url')}")
    device = Device.from_state(state, http)
    if needs_session and not device.handle:
        raise Missing("the device is not checked out: `lanyard locker checkout --user NAME` first")
    return device


def _save(device: Device, path: Path) -> None:
    write_private(path, device.state())


def _session_view(out: Out, view: dict[str, Any]) -> None:
    keys = (
        "device_session_id", "user_id", "state", "auth_mode", "face_allowed", "inactivity_timeout_s",
        "inactivity_deadline", "last_face_verification_at", "closed_reason", "closed_at",
    )  # fmt: skip
    out.emit(view, lambda c: c.print(kv({k: view.get(k) for k in keys if view.get(k) is not None})))


@locker.command()
@admin_options
@device_option
@click.option("--device-id", help="The device's id (default: a new iphone-… id).")
@click.option("--model", default="iPhone 15", show_default=True)
@click.option("--new", "fresh", is_flag=True, help="Replace an existing device file with a new device.")
@json_option
@runs
async def enrol(
    out: Out,
    gateway: str | None,
    enterprise: str | None,
    device_file: str | None,
    device_id: str | None,
    model: str,
    fresh: bool,
    token: str | None,
    admin_user: str | None,
    admin_totp: str | None,
) -> None:
    """Generate a device key, keep it in the device file, and enrol the device (plays the MDM:
    the enrolment is an admin call to the session service)."""
    t = target(gateway, enterprise)
    path = _device_path(device_file, t)
    if path.exists() and not fresh:
        raise Refused("already_enrolled", f"{path} holds an enrolled device; pass --new to replace it")
    async with httpx.AsyncClient(timeout=15) as http:
        admin = await admin_session(http, t, token, admin_user, admin_totp)
        device = Device(t.gateway, t.enterprise_id, http, device_id)
        enrolled = await admin.call(
            "POST",
            f"/session/e/{t.enterprise_id}/devices",
            json={"device_id": device.device_id, "model": model, "public_jwk": device.public_jwk},
        )
        _save(device, path)
    data = {"device_id": device.device_id, "jkt": enrolled.get("jkt"), "device_file": str(path)}
    out.emit(data, lambda c: c.print(f"enrolled [bold]{device.device_id}[/] (key {data['jkt']}); key in {path}"))


def _device_path(option: str | None, t: Target) -> Path:
    return device_file(option, t)


@locker.command()
@target_options
@device_option
@click.option("--user", "username", help="Username (with the password from --password, LANYARD_PASSWORD or a prompt).")
@click.option("--password", help="The user's password (prefer LANYARD_PASSWORD: options land in shell history).")
@click.option("--badge", help="Tap a badge instead of username and password.")
@click.option("--totp", help="The code on the user's authenticator app (default: the demo user's, or a prompt).")
@click.option("--wait", "wait_s", type=float, default=5.0, show_default=True, help="Seconds to wait for the grant.")
@json_option
@runs
async def checkout(
    out: Out,
    gateway: str | None,
    enterprise: str | None,
    device_file: str | None,
    username: str | None,
    password: str | None,
    badge: str | None,
    totp: str | None,
    wait_s: float,
) -> None:
    """Sign in (password or badge, plus TOTP) and check the device out; shows the session once
    the policy service granted it (mode, timeouts) or denied it."""
    t = target(gateway, enterprise)
    path = _device_path(device_file, t)
    if not (username or badge):
        raise click.UsageError("give --user NAME or --badge ID")
    demo = t.demo_user(username or "") or next(
        (u for u in ((t.demo or {}).get("users") or {}).values() if badge and u.get("badge_id") == badge), None
    )
    if username and not badge:
        password = password or os.environ.get("LANYARD_PASSWORD") or (demo or {}).get("password")
        if password is None:
            if not click.get_text_stream("stdin").isatty():
                raise Missing("no password: pass --password or set LANYARD_PASSWORD")
            password = getpass.getpass(f"password for {username}: ")
    person = Person("", username or "", password or "", (demo or {}).get("totp_secret"), badge)
    if not totp and not person.totp_secret and click.get_text_stream("stdin").isatty():
        totp = click.prompt("TOTP code (empty if none)", default="", show_default=False, err=True) or None
    async with httpx.AsyncClient(timeout=15) as http:
        device = _open(http, t, path, needs_session=False)
        # With no code to send, the IdP says whether it wants one (second_factor_required).
        with_totp = bool(totp or person.totp_secret)
        await device.check_out(person, totp=totp, badge=bool(badge), with_totp=with_totp, next_code_if_spent=True)
        _save(device, path)
        view = await _decided(device, wait_s)
    _session_view(out, view)
    if view.get("state") == "CLOSED":
        raise Refused("checkout_denied", f"the session was closed at once ({view.get('closed_reason')}): "
                      "ask `lanyard admin why-not USER`")  # fmt: skip


async def _decided(device: Device, wait_s: float) -> dict[str, Any]:
    """The session once the policy service decided (granted, or closed on a denial), or as it
    is after `wait_s`: the Locker app shows the checkout only once it knows the user's mode."""
    deadline = time.monotonic() + wait_s
    while True:
        view = await device.session()
        if view.get("entitlement_version") is not None or view.get("state") == "CLOSED" or time.monotonic() > deadline:
            return view
        await asyncio.sleep(0.05)


@locker.command()
@target_options
@device_option
@json_option
@runs
async def status(out: Out, gateway: str | None, enterprise: str | None, device_file: str | None) -> None:
    """The Locker app's view of its device session (state, timeouts, face recency)."""
    t = target(gateway, enterprise)
    async with httpx.AsyncClient(timeout=15) as http:
        view = await _open(http, t, _device_path(device_file, t)).session()
    _session_view(out, view)


@locker.command()
@target_options
@device_option
@json_option
@runs
async def heartbeat(out: Out, gateway: str | None, enterprise: str | None, device_file: str | None) -> None:
    """User activity in the Locker app (resets the inactivity timer)."""
    t = target(gateway, enterprise)
    async with httpx.AsyncClient(timeout=15) as http:
        view = _ok(await _open(http, t, _device_path(device_file, t)).heartbeat())
    _session_view(out, view)


@locker.command()
@target_options
@device_option
@click.option("--match", type=float, default=0.98, show_default=True, help="The face provider's match score.")
@click.option("--liveness", type=float, default=0.97, show_default=True, help="The provider's liveness score.")
@json_option
@runs
async def face(
    out: Out, gateway: str | None, enterprise: str | None, device_file: str | None, match: float, liveness: float
) -> None:
    """Face verification: a challenge, then a result signed by the device key (face mode, APA)."""
    t = target(gateway, enterprise)
    async with httpx.AsyncClient(timeout=15) as http:
        result = await _open(http, t, _device_path(device_file, t)).verify_face(match=match, liveness=liveness)
    out.emit(result)


@locker.command()
@target_options
@device_option
@json_option
@runs
async def checkin(out: Out, gateway: str | None, enterprise: str | None, device_file: str | None) -> None:
    """Check the device back in: every OIDC session of it is revoked and every app told."""
    t = target(gateway, enterprise)
    path = _device_path(device_file, t)
    async with httpx.AsyncClient(timeout=15) as http:
        device = _open(http, t, path)
        view = await device.check_in()
        device.handle = device.user_id = None
        _save(device, path)
    _session_view(out, view)


@locker.command()
@target_options
@device_option
@click.argument("client_id")
@click.option("--redirect-uri", help="The app's registered redirect URI (default: the demo app's).")
@click.option(
    "--client-secret", envvar="LANYARD_CLIENT_SECRET", help="For a confidential app (env LANYARD_CLIENT_SECRET)."
)
@click.option("--scope", default="openid profile email offline_access", show_default=True)
@json_option
@runs
async def sso(
    out: Out,
    gateway: str | None,
    enterprise: str | None,
    device_file: str | None,
    client_id: str,
    redirect_uri: str | None,
    client_secret: str | None,
    scope: str,
) -> None:
    """An app signs in through the SSO extension: authorize (code + PKCE) with the device
    session, then the app's token exchange; prints the verified claims of the tokens."""
    t = target(gateway, enterprise)
    known = t.demo_app(client_id) or {}
    client_id = known.get("client_id", client_id)
    redirect_uri = redirect_uri or known.get("redirect_uri")
    if not redirect_uri:
        raise click.UsageError("give --redirect-uri (one of the app profile's registered redirect URIs)")
    app = App(client_id, redirect_uri, client_secret or known.get("client_secret"))
    async with httpx.AsyncClient(timeout=15) as http:
        device = _open(http, t, _device_path(device_file, t))
        auth = await device.sso(app, scope=scope)
        if not auth.code:
            params = auth.params
            if "error" in params:
                extra = {k: v for k, v in params.items() if k.startswith("lanyard_")}
                raise Refused(params["error"], params.get("error_description", ""), None, **extra)
            raise Refused("no_code", f"the authorize step answered {auth.status} without a code or an error")
        tokens = await redeem(http, t.issuer, app, auth)
        id_claims = await verified_claims(http, t.issuer, tokens["id_token"])
        access_claims = await verified_claims(http, t.issuer, tokens["access_token"])
    data = {
        "client_id": client_id,
        "iss": auth.params.get("iss"),
        "id_token_claims": id_claims,
        "access_token_claims": access_claims,
        "token_type": tokens.get("token_type"),
        "expires_in": tokens.get("expires_in"),
        "scope": tokens.get("scope"),
        "refresh_token": bool(tokens.get("refresh_token")),
    }

    def human(c: Console) -> None:
        c.print(f"signed in to [bold]{client_id}[/] through the SSO extension (issuer {data['iss']})")
        c.print(kv(id_claims, title="ID token (signature verified against the JWKS)"))
        c.print(kv(access_claims, title="access token"))

    out.emit(data, human)


@locker.command(name="browse")
@target_options
@device_option
@click.argument("url")
@json_option
@runs
async def browse_cmd(out: Out, gateway: str | None, enterprise: str | None, device_file: str | None, url: str) -> None:
    """A web view on the device opens URL (e.g. a web app's /login): redirects are followed and
    the issuer's authorize step is completed by the SSO extension. Prints where it ended."""
    t = target(gateway, enterprise)
    async with httpx.AsyncClient(timeout=15) as http, httpx.AsyncClient(timeout=15) as browser:
        device = _open(http, t, _device_path(device_file, t))
        final = await browse(device, url, browser)
    data = {"url": str(final.request.url), "status": final.status_code}
    out.emit(data, lambda c: c.print(f"{final.status_code} at {final.request.url}"))
