"""Fixtures for the OIDC tests: the provider over in-memory fakes and the real Redis."""

from __future__ import annotations

import importlib.util
import secrets
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI

from lanyard.idp.app import build_oidc
from lanyard.idp.devices.domain import DeviceLogin
from lanyard.idp.directory.domain import ClaimMapping, Client, User
from lanyard.idp.oidc.grants import s256
from lanyard.idp.oidc.ports import Ports
from lanyard.idp.settings import OidcConfig


def _load_fakes() -> Any:
    path = Path(__file__).with_name("fakes.py")
    spec = importlib.util.spec_from_file_location("lanyard_idp_oidc_test_fakes", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


fakes = _load_fakes()

EID = "acme"
OTHER_EID = "globex"
BASE = "https://sso.example.test"
CONF_REDIRECT = "https://rp.example.test/cb"
PUB_REDIRECTS = ("com.example.app:/oauth2redirect", "https://mobile.example.test/app/redirect/", "http://127.0.0.1/cb")
LOGOUT_REDIRECT = "https://rp.example.test/bye"
SECRET = "conf-secret-" + "x" * 20


@pytest.fixture(scope="session")
def shared_keys() -> Any:
    keys = fakes.FakeKeys()
    keys.keyset(EID), keys.keyset(OTHER_EID)
    return keys


@dataclass
class World:
    """One IdP over fakes; `http` talks to it in process."""

    app: FastAPI
    http: httpx.AsyncClient
    ports: Ports
    oidc: Any
    users: Any
    clients: Any
    browser: Any
    devices: Any
    backchannel: Any
    publisher: Any
    keys: Any
    config: OidcConfig
    issuer: str = f"{BASE}/e/{EID}"
    verifiers: dict[str, str] = field(default_factory=dict)
    eid: str = EID
    other_eid: str = OTHER_EID
    base: str = BASE
    secret: str = SECRET
    conf_redirect: str = CONF_REDIRECT
    pub_redirects: tuple[str, ...] = PUB_REDIRECTS
    logout_redirect: str = LOGOUT_REDIRECT

    @staticmethod
    def unsigned(token: str) -> str:
        """`token` re-encoded with `alg: none` and no signature (RFC 8725 §3.1 attack)."""
        import base64
        import json

        claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
        enc = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()  # noqa: E731
        return enc({"alg": "none", "typ": "JWT"}) + "." + enc(claims) + "."

    @staticmethod
    def q(r: httpx.Response) -> dict[str, str]:
        """The query parameters of a redirect's Location."""
        return redirect_query(r)

    def url(self, path: str, eid: str = EID) -> str:
        return f"/e/{eid}{path}"

    async def login(self, user_id: str = "u1", amr: tuple[str, ...] = ("pwd", "otp"), eid: str = EID) -> str:
        cookie, session = await self.browser.create(eid, user_id, amr)
        self.http.cookies.set(self.config.browser_cookie, cookie)
        return session.sid

    def logout_cookie(self) -> None:
        self.http.cookies.clear()

    def auth_params(self, client: str = "conf", pkce: bool = True, **extra: Any) -> dict[str, Any]:
        redirect = CONF_REDIRECT if client == "conf" else PUB_REDIRECTS[0]
        params: dict[str, Any] = {
            "response_type": "code",
            "client_id": client,
            "redirect_uri": redirect,
            "scope": "openid profile email offline_access",
            "state": "st-" + secrets.token_hex(4),
            "nonce": "n-" + secrets.token_hex(4),
        }
        if pkce:
            verifier = secrets.token_urlsafe(48)
            params["code_challenge"] = s256(verifier)
            params["code_challenge_method"] = "S256"
            self.verifiers[params["state"]] = verifier
        params.update(extra)
        return {k: v for k, v in params.items() if v is not None}

    async def authorize(self, params: Any, eid: str = EID, **kw: Any) -> httpx.Response:
        return await self.http.get(self.url("/authorize", eid), params=params, **kw)

    async def code(self, client: str = "conf", **extra: Any) -> tuple[str, dict[str, Any]]:
        params = self.auth_params(client, **extra)
        r = await self.authorize(params)
        assert r.status_code == 303, r.text
        q = redirect_query(r)
        assert "code" in q, q
        return q["code"], params

    async def redeem(self, code: str, params: dict[str, Any], client: str = "conf", **overrides: Any) -> httpx.Response:
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": params["redirect_uri"]}
        if params.get("state") in self.verifiers:
            form["code_verifier"] = self.verifiers[params["state"]]
        auth = None
        if client == "conf":
            auth = ("conf", SECRET)
        else:
            form["client_id"] = client
        form.update(overrides)
        form = {k: v for k, v in form.items() if v is not None}
        return await self.http.post(self.url("/token"), data=form, auth=auth)

    async def tokens(self, client: str = "conf", **extra: Any) -> dict[str, Any]:
        code, params = await self.code(client, **extra)
        r = await self.redeem(code, params, client)
        assert r.status_code == 200, r.text
        body = r.json()
        body["_params"] = params
        return body

    async def refresh(self, refresh_token: str, client: str = "conf", **form: Any) -> httpx.Response:
        data = {"grant_type": "refresh_token", "refresh_token": refresh_token, **form}
        if client == "conf":
            return await self.http.post(self.url("/token"), data=data, auth=("conf", SECRET))
        data["client_id"] = client
        return await self.http.post(self.url("/token"), data=data)

    async def introspect(self, token: str, auth: tuple[str, str] | None = ("conf", SECRET)) -> httpx.Response:
        return await self.http.post(self.url("/introspect"), data={"token": token}, auth=auth)


def redirect_query(r: httpx.Response) -> dict[str, str]:
    loc = r.headers["location"]
    return {k: v[0] for k, v in parse_qs(urlsplit(loc).query, keep_blank_values=True).items()}


@pytest.fixture
async def world(redis_client, shared_keys) -> World:
    users, clients = fakes.FakeUsers(), fakes.FakeClients()
    users.add(
        User(
            EID,
            "u1",
            "alice",
            "Alice Example",
            email="alice@example.test",
            employee_id="E1",
            groups=("nurses",),
            attributes={"department": "ICU"},
        )
    )
    users.add(User(EID, "u2", "bob", "Bob Example", email="bob@example.test"))
    clients.add(
        Client(
            EID,
            "conf",
            "Test RP",
            "Test RP",
            "confidential",
            (CONF_REDIRECT, "https://rp.example.test/cb?x=1"),
            post_logout_redirect_uris=(LOGOUT_REDIRECT,),
            backchannel_logout_uri="https://rp.example.test/bcl",
            custom_claims=(ClaimMapping("department", "department"),),
        ),
        SECRET,
    )
    clients.add(Client(EID, "conf2", "RP 2", "RP 2", "confidential", ("https://rp2.example.test/cb",)), SECRET + "2")
    clients.add(Client(EID, "pub", "Rover", "Rover", "public", PUB_REDIRECTS))
    clients.add(Client(OTHER_EID, "conf", "Other", "Other", "confidential", (CONF_REDIRECT,)), SECRET)
    browser, devices = fakes.FakeBrowserSessions(), fakes.FakeDeviceSessions()
    devices.add("h1", DeviceLogin(EID, "ds1", "dev1", "u1", int(time.time()), ("pwd", "otp"), "sid-ds1"))
    backchannel, publisher = fakes.FakeBackchannel(clients), fakes.FakePublisher()
    ports = Ports(
        enterprises=fakes.FakeEnterprises(EID, OTHER_EID),
        users=users,
        clients=clients,
        keys=shared_keys,
        org_settings=fakes.FakeOrgSettings(),
        browser_sessions=browser,
        device_sessions=devices,
        backchannel=backchannel,
        publisher=publisher,
    )
    config = OidcConfig(public_base_url=BASE)
    oidc = build_oidc(ports, redis_client, config)
    app = FastAPI()
    app.include_router(oidc.router)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://idp.internal")
    w = World(app, http, ports, oidc, users, clients, browser, devices, backchannel, publisher, shared_keys, config)
    yield w
    await http.aclose()
