"""An enterprise set up the way a hospital's admins and Imprivata-style Services would: through
the public admin APIs only (IdP, policy, session), behind the gateway. Services are a vendor
services principal issued by the operator command (`python -m lanyard.idp services-principal
create`); only they establish cloud trust."""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from lanyard.idp.directory.domain import hotp, totp_step


def totp_now(b32_secret: str, at: float | None = None) -> str:
    """The current TOTP code for a secret (what the user's authenticator app shows)."""
    padded = b32_secret + "=" * (-len(b32_secret) % 8)
    return hotp(base64.b32decode(padded.upper()), totp_step(time.time() if at is None else at))


class ApiError(Exception):
    """A call that did not answer 2xx; `error` and `description` are the product's own
    (`{"error", "error_description"}`), or the status line when the body is not that shape."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(
            f"{response.request.method} {response.request.url.path} -> {response.status_code}: {response.text[:300]}"
        )
        self.response = response
        self.status = response.status_code
        body: Any = None
        try:
            body = response.json()
        except ValueError:
            pass
        self.body: dict[str, Any] = body if isinstance(body, dict) else {}
        self.error = str(self.body.get("error") or f"http_{response.status_code}")
        self.description = str(self.body.get("error_description") or response.reason_phrase or "")


def _ok(response: httpx.Response) -> Any:
    if response.status_code >= 300:
        raise ApiError(response)
    return response.json() if response.content else None


@dataclass
class Person:
    """A directory user with the secrets a real user would hold."""

    user_id: str
    username: str
    password: str
    totp_secret: str | None = None
    badge_id: str | None = None
    otpauth_uri: str | None = None

    def totp(self) -> str:
        """The code on the user's authenticator app right now."""
        assert self.totp_secret, "user has no TOTP enrolled"
        return totp_now(self.totp_secret)


@dataclass
class App:
    """An SSO application profile and its credentials (the secret is shown only once)."""

    client_id: str
    redirect_uri: str
    client_secret: str | None = None
    backchannel_logout_uri: str | None = None


@dataclass
class Enterprise:
    """Admin access to one enterprise through the gateway (and, for cloud trust, the vendor's
    services principal: `services_token`, obtained on first use when `env` is known)."""

    base_url: str
    enterprise_id: str
    admin_token: str
    http: httpx.AsyncClient
    people: dict[str, Person] = field(default_factory=dict)
    env: dict[str, str] | None = None
    services_token: str | None = None

    @property
    def issuer(self) -> str:
        """The enterprise's issuer URL."""
        return f"{self.base_url}/e/{self.enterprise_id}"

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """One admin API call (path from the gateway's root) with the admin's bearer token;
        the decoded JSON answer, or ApiError."""
        return _ok(await self.raw(method, path, **kwargs))

    async def raw(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The same call, answering the raw response (for non-JSON bodies such as exports)."""
        headers = {"Authorization": f"Bearer {self.admin_token}", **kwargs.pop("headers", {})}
        return await self.http.request(method, f"{self.base_url}{path}", headers=headers, **kwargs)

    # -- IdP: directory and app profiles
    async def add_user(
        self,
        username: str,
        *,
        password: str | None = None,
        totp: bool = True,
        groups: tuple[str, ...] = (),
        **attrs: Any,
    ) -> Person:
        """A user with a password (generated unless given), and (by default) TOTP enrolled."""
        password = password or f"pw-{uuid.uuid4().hex}"
        body = {
            "username": username,
            "display_name": attrs.pop("display_name", username.title()),
            "password": password,
            "groups": list(groups),
            **attrs,
        }
        user = await self.call("POST", f"/e/{self.enterprise_id}/admin/users", json=body)
        person = Person(user["user_id"], username, password, badge_id=attrs.get("badge_id"))
        if totp:
            enrolment = await self.call("POST", f"/e/{self.enterprise_id}/admin/users/{person.user_id}/totp")
            person.totp_secret, person.otpauth_uri = enrolment["secret"], enrolment.get("otpauth_uri")
        self.people[username] = person
        return person

    async def add_app(
        self,
        *,
        template: str | None = None,
        client_type: str | None = None,
        redirect_uri: str = "com.example.app.oidc://callback",
        backchannel_logout_uri: str | None = None,
        name: str | None = None,
        id_token_alg: str | None = None,
    ) -> App:
        """An OIDC app profile (optionally from a template, whose client type is the default) and
        its generated credentials. Without a template the app is public unless told otherwise."""
        path = f"/e/{self.enterprise_id}/admin/app-profiles"
        if template:
            body = await self.call("GET", f"{path}/templates/{template}")
            body = {
                k: v
                for k, v in body.items()
                if k
                in {
                    "profile_name",
                    "display_name",
                    "redirect_uris",
                    "post_logout_redirect_uris",
                    "claims",
                    "custom_claims",
                    "backchannel_logout_uri",
                    "client_type",
                    "require_pkce",
                    "enabled",
                }
            }
            if client_type is not None:
                body["client_type"] = client_type
        else:
            body = {
                "profile_name": name or f"app-{uuid.uuid4().hex[:6]}",
                "display_name": name or "App",
                "redirect_uris": [redirect_uri],
                "client_type": client_type or "public",
            }
        if backchannel_logout_uri:
            body["backchannel_logout_uri"] = backchannel_logout_uri
        if id_token_alg:
            body["id_token_signed_response_alg"] = id_token_alg
        profile = await self.call("POST", path, json=body)
        creds = await self.call("POST", f"{path}/{profile['client_id']}/credentials")
        return App(profile["client_id"], body["redirect_uris"][0], creds.get("client_secret"), backchannel_logout_uri)

    # -- policy: licences, policies, deployments, org settings, cloud connection
    async def policy(self, method: str, path: str, body: Any = None) -> Any:
        """Call the policy admin API."""
        return await self.call(method, f"/policy/e/{self.enterprise_id}{path}", json=body)

    async def add_group(self, name: str) -> str:
        """A directory group; returns its id."""
        return (await self.call("POST", f"/e/{self.enterprise_id}/admin/groups", json={"name": name}))["group_id"]

    async def load_licences(self, seats: int = 100_000, apa_seats: int | None = None, days: int = 365) -> None:
        """An SSO licence and an APA licence (face authentication), valid from yesterday."""
        now = datetime.now(UTC)
        window = {
            "valid_from": (now - timedelta(days=1)).isoformat(),
            "valid_until": (now + timedelta(days=days)).isoformat(),
        }
        await self.policy("PUT", "/licences/sso", {"kind": "sso", "seats": seats, **window})
        await self.policy("PUT", "/licences/apa", {"kind": "apa", "seats": apa_seats or seats, **window})

    async def deploy(self, client_id: str, users: list[str], groups: list[str] | tuple[str, ...] = ()) -> None:
        """Deploy an app to users and groups."""
        await self.policy("PUT", f"/app-deployments/{client_id}", {"users": users, "groups": list(groups)})

    async def set_org_settings(self, **settings: Any) -> None:
        """The MAM console's Admin > Check Out switches ("Password Autofill and SSO" on, second factor on)."""
        await self.policy(
            "PUT", "/org-settings", {"password_autofill_and_sso": True, "require_second_factor": True, **settings}
        )

    async def make_ready(
        self,
        people: list[Person],
        apps: list[App],
        groups: tuple[str, ...] = (),
        *,
        auth_mode: str = "passcode",
        inactivity_timeout_s: int = 900,
        max_session_s: int = 12 * 3600,
        face_recency_s: int = 300,
        seats: int = 100_000,
    ) -> None:
        """Everything the seed's readiness table asks for: licences, cloud trust, a policy
        enabled for SSO, the apps deployed, and 'Password Autofill and SSO' on."""
        await self.load_licences(seats)
        await self.connect_cloud()
        users = [p.user_id for p in people]
        await self.policy(
            "PUT",
            "/user-policies/clinicians",
            {
                "name": "Clinicians",
                "sso_enabled": True,
                "auth_mode": auth_mode,
                "users": users,
                "groups": list(groups),
                "inactivity_timeout_s": inactivity_timeout_s,
                "max_session_s": max_session_s,
                "face_recency_s": face_recency_s,
            },
        )
        for app in apps:
            await self.deploy(app.client_id, users, groups)
        await self.set_org_settings()

    async def connect_cloud(self) -> Any:
        """The seed's cloud connection: the superadmin generates the 5-minute code, Services enter
        the enterprise id and the code."""
        code = await self.policy("POST", "/cloud-connection/provisioning-code")
        if self.services_token is None:
            if self.env is None:
                raise RuntimeError("no services principal: pass services_token or env")
            self.services_token = await services_token(self.base_url, self.env, self.http)
        return _ok(
            await self.http.post(
                f"{self.base_url}/policy/e/{self.enterprise_id}/cloud-connection/establish-trust",
                json={"enterprise_id": self.enterprise_id, "code": code["code"]},
                headers={"Authorization": f"Bearer {self.services_token}"},
            )
        )

    # -- session: devices
    async def enrol_device(self, device_id: str, public_jwk: dict[str, Any]) -> Any:
        """Enrol a shared device with its public key (what the MDM does)."""
        return await self.call(
            "POST",
            f"/session/e/{self.enterprise_id}/devices",
            json={"device_id": device_id, "model": "iPhone 15", "public_jwk": public_jwk},
        )


def bootstrap(
    env: dict[str, str],
    enterprise_id: str,
    superadmin: str,
    password: str,
    name: str | None = None,
    *,
    check: bool = True,
) -> subprocess.CompletedProcess[bytes]:
    """`python -m lanyard.idp bootstrap`: the first enterprise and its superadmin (it writes the
    IdP's Redis and publishes to Kafka directly: there is no API before an enterprise exists)."""
    return subprocess.run(  # noqa: S603 - our own interpreter and module
        [
            sys.executable,
            "-m",
            "lanyard.idp",
            "bootstrap",
            "--enterprise-id",
            enterprise_id,
            "--name",
            name or enterprise_id,
            "--superadmin",
            superadmin,
        ],
        env={**os.environ, **env, "LANYARD_BOOTSTRAP_PASSWORD": password},
        check=check,
        capture_output=True,
        timeout=120,
    )


_PRINCIPALS: dict[tuple[str, ...], tuple[str, str]] = {}


def services_principal(env: dict[str, str]) -> tuple[str, str]:
    """`python -m lanyard.idp services-principal create`: (principal id, secret), one per stack."""
    key = tuple(sorted(env.items()))
    if key not in _PRINCIPALS:
        done = subprocess.run(
            [sys.executable, "-m", "lanyard.idp", "services-principal", "create", "--name", "Imprivata-style Services"],
            env={**os.environ, **env},
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
        )
        lines = dict(line.split(": ", 1) for line in done.stdout.splitlines() if ": " in line)
        _PRINCIPALS[key] = (lines["principal id"], lines["secret"])
    return _PRINCIPALS[key]


async def services_token(base_url: str, env: dict[str, str], http: httpx.AsyncClient) -> str:
    """A services principal's bearer token from the IdP's services realm."""
    for _attempt in range(2):
        principal, secret = services_principal(env)
        response = await http.post(
            f"{base_url}/idp/services/token", data={"grant_type": "client_credentials"}, auth=(principal, secret)
        )
        if response.status_code != 401:
            break
        _PRINCIPALS.pop(tuple(sorted(env.items())), None)  # the stack's Redis was reset: issue a new one
    return _ok(response)["access_token"]


async def sign_in(
    base_url: str,
    enterprise_id: str,
    username: str,
    password: str,
    http: httpx.AsyncClient,
    totp: str | None = None,
) -> Enterprise:
    """An admin signs in (POST /e/{eid}/admin/token); ApiError when refused."""
    form = {"username": username, "password": password}
    if totp:
        form["totp"] = totp
    token = _ok(await http.post(f"{base_url}/e/{enterprise_id}/admin/token", data=form))["access_token"]
    return Enterprise(base_url, enterprise_id, token, http)


async def open_enterprise(
    base_url: str, env: dict[str, str], http: httpx.AsyncClient, enterprise_id: str | None = None
) -> Enterprise:
    """Bootstrap a fresh enterprise and sign its superadmin in."""
    enterprise_id = enterprise_id or f"hosp-{uuid.uuid4().hex[:8]}"
    password = f"pw-{uuid.uuid4().hex}"
    bootstrap(env, enterprise_id, "superadmin", password)
    admin = await sign_in(base_url, enterprise_id, "superadmin", password, http)
    admin.env = env  # Services (an operator-issued services principal) establish its cloud trust
    await known_everywhere(base_url, http, enterprise_id, admin.admin_token)
    return admin


async def known_everywhere(
    base_url: str, http: httpx.AsyncClient, enterprise_id: str, token: str, timeout_s: float = 30
) -> None:
    """Wait until the policy and audit services have heard of a new enterprise: they verify tokens
    only for enterprises their read models know, and learn of one from the bootstrap's directory
    event on Kafka, a moment after the IdP created it."""
    headers = {"Authorization": f"Bearer {token}"}
    deadline = time.monotonic() + timeout_s
    for path in (f"/policy/e/{enterprise_id}/org-settings", f"/audit/e/{enterprise_id}/records?limit=1"):
        while True:
            r = await http.get(f"{base_url}{path}", headers=headers)
            if r.status_code != 401:
                _ok(r)
                break
            if time.monotonic() > deadline:
                raise ApiError(r)
            await asyncio.sleep(0.05)
