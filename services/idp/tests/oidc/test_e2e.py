"""End to end: the real IdP (create_app with the directory and devices sides' real adapters,
real Kafka and Redis) under uvicorn on a free port, driven by two independent relying-party
libraries — authlib's OAuth2 client and pyoidc (`oic`) — through code + PKCE, ID-token
signature checks against the JWKS, refresh, UserInfo, introspection, revocation and
RP-initiated logout. A scripted browser (httpx) signs in at the real login page (password +
TOTP)."""

from __future__ import annotations

import asyncio
import re
import secrets
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest
import uvicorn
from joserfc import jwt
from joserfc.jwk import KeySet

from lanyard.idp.app import create_app
from lanyard.idp.directory.domain import AppProfile, Client, hotp, totp_step
from lanyard.idp.settings import IdpSettings

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery staple 42"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Running:
    base: str
    eid: str
    issuer: str
    client_id: str
    secret: str
    redirect_uri: str
    logout_uri: str
    username: str
    totp_secret: bytes
    loop: asyncio.AbstractEventLoop
    app: Any

    def run(self, coro: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)


@pytest.fixture
def idp(kafka_bootstrap, redis_url):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    settings = IdpSettings(consumer_group=f"e2e-{uuid.uuid4().hex[:8]}", public_base_url=base, http_port=port)
    app = create_app(settings)
    holder: dict[str, Any] = {}

    async def capture() -> None:
        holder["loop"] = asyncio.get_running_loop()

    app.state.runtime.on_start.append(capture)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not (server.started and "loop" in holder):
        assert time.monotonic() < deadline, "idp did not start"
        assert thread.is_alive(), "idp crashed at start-up"
        time.sleep(0.05)
    loop = holder["loop"]
    eid = "e2e" + uuid.uuid4().hex[:6]

    async def seed() -> tuple[str, str, bytes, str]:
        from lanyard.idp.directory.authn import Passwords
        from lanyard.idp.directory.service import bootstrap

        side = app.state.directory_side
        admin = await bootstrap(
            side.enterprises, side.keys, side.directory, Passwords(), side.outbox, eid, "E2E", "clinician", PASSWORD
        )
        enrolment = await side.directory_service.enroll_totp(eid, admin.user_id, "e2e")
        import base64

        raw = base64.b32decode(enrolment.secret + "=" * (-len(enrolment.secret) % 8))
        client = Client(
            eid,
            "rp-" + secrets.token_hex(4),
            "E2E RP",
            "E2E RP",
            "confidential",
            ("http://127.0.0.1/cb",),
            post_logout_redirect_uris=("http://127.0.0.1:9/bye",),
        )
        await side.profiles.save(AppProfile(client), "e2e")
        creds = await side.profiles.issue_credentials(eid, client.client_id, "e2e", rotate=False)
        return client.client_id, creds.client_secret, raw, admin.username

    running = Running(
        base, eid, f"{base}/e/{eid}", "", "", "http://127.0.0.1:53111/cb", "http://127.0.0.1:9/bye", "", b"", loop, app
    )
    running.client_id, running.secret, running.totp_secret, running.username = running.run(seed())
    yield running
    server.should_exit = True
    thread.join(30)


def sign_in(idp: Running, authorize_url: str, browser: httpx.Client) -> str:
    """Follow the authorization request through the login page; returns the callback URL."""
    r = browser.get(authorize_url)
    assert r.status_code == 303, r.text
    login = urljoin(authorize_url, r.headers["location"])
    page = browser.get(login)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    nxt = re.search(r'name="next" value="([^"]*)"', page.text).group(1)
    code = hotp(idp.totp_secret, totp_step(time.time()))
    r = browser.post(
        f"{idp.base}/e/{idp.eid}/login",
        data={"username": idp.username, "password": PASSWORD, "totp": code, "csrf_token": csrf, "next": nxt},
    )
    assert r.status_code == 303, r.text
    r = browser.get(urljoin(idp.base, r.headers["location"]))  # the resume path
    assert r.status_code == 303 and r.headers["location"].startswith(idp.redirect_uri), r.headers.get("location")
    return r.headers["location"]


def verify_id_token(idp: Running, token: str, nonce: str) -> dict[str, Any]:
    keys = KeySet.import_key_set(httpx.get(f"{idp.issuer}/jwks").json())
    decoded = jwt.decode(token, keys, algorithms=["RS256", "ES256"])
    claims = decoded.claims
    assert decoded.header["kid"] and claims["iss"] == idp.issuer and claims["aud"] == idp.client_id
    assert claims["nonce"] == nonce and claims["exp"] > time.time()
    return claims


def test_e2e_authlib_client(idp):
    import warnings

    from authlib.deprecate import AuthlibDeprecationWarning

    with warnings.catch_warnings():
        # authlib 1.9 announces its httpx integration's move to httpx2 at import; it works as is.
        # authlib.deprecate installs an "always" filter when first imported, ahead of any filter
        # set before it, so ours is set after that import to take precedence.
        warnings.simplefilter("ignore", AuthlibDeprecationWarning)
        from authlib.integrations.httpx_client import OAuth2Client

    meta = httpx.get(f"{idp.issuer}/.well-known/openid-configuration").json()
    assert meta["issuer"] == idp.issuer
    rp = OAuth2Client(  # closed at the end of the test (no socket left to the GC)
        idp.client_id,
        idp.secret,
        scope="openid profile email offline_access",
        redirect_uri=idp.redirect_uri,
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_basic",
    )
    verifier = secrets.token_urlsafe(48)
    nonce = secrets.token_urlsafe(8)
    url, state = rp.create_authorization_url(meta["authorization_endpoint"], code_verifier=verifier, nonce=nonce)
    with httpx.Client() as browser:
        callback = sign_in(idp, url, browser)
        q = {k: v[0] for k, v in parse_qs(urlsplit(callback).query).items()}
        assert q["state"] == state and q["iss"] == idp.issuer
        token = rp.fetch_token(meta["token_endpoint"], authorization_response=callback, code_verifier=verifier)
        claims = verify_id_token(idp, token["id_token"], nonce)
        assert claims["amr"] == ["pwd", "otp"]
        info = rp.get(meta["userinfo_endpoint"]).json()
        assert info["sub"] == claims["sub"] and info["preferred_username"] == idp.username
        old_refresh = token["refresh_token"]
        new = rp.refresh_token(meta["token_endpoint"], refresh_token=old_refresh)
        assert new["refresh_token"] != old_refresh
        intro = rp.post(
            meta["introspection_endpoint"], data={"token": new["access_token"]}, auth=(idp.client_id, idp.secret)
        )
        assert intro.json()["active"] is True
        rp.revoke_token(meta["revocation_endpoint"], new["refresh_token"], token_type_hint="refresh_token")
        intro = httpx.post(
            meta["introspection_endpoint"], data={"token": new["access_token"]}, auth=(idp.client_id, idp.secret)
        )
        assert intro.json() == {"active": False}
        # RP-initiated logout; afterwards prompt=none fails
        r = browser.get(
            meta["end_session_endpoint"],
            params={"id_token_hint": token["id_token"], "post_logout_redirect_uri": idp.logout_uri, "state": "bye"},
        )
        assert r.status_code == 303 and r.headers["location"] == idp.logout_uri + "?state=bye"
        url, _ = rp.create_authorization_url(meta["authorization_endpoint"], code_verifier=verifier, prompt="none")
        r = browser.get(url)
        assert parse_qs(urlsplit(r.headers["location"]).query)["error"] == ["login_required"]
    rp.close()


def test_e2e_pyoidc_client(idp):
    from oic.oic import Client as OicClient
    from oic.oic.message import AuthorizationResponse, RegistrationResponse
    from oic.utils.authn.client import CLIENT_AUTHN_METHOD

    rp = OicClient(client_authn_method=CLIENT_AUTHN_METHOD)
    rp.provider_config(idp.issuer)  # fetches discovery and the JWKS; checks the issuer
    rp.store_registration_info(
        RegistrationResponse(client_id=idp.client_id, client_secret=idp.secret, redirect_uris=[idp.redirect_uri])
    )
    state, nonce = secrets.token_urlsafe(8), secrets.token_urlsafe(8)
    pkce, verifier = rp.add_code_challenge()
    req = rp.construct_AuthorizationRequest(
        request_args={
            "client_id": idp.client_id,
            "response_type": "code",
            "scope": ["openid", "profile", "email", "offline_access"],
            "nonce": nonce,
            "redirect_uri": idp.redirect_uri,
            "state": state,
            **pkce,
        }
    )
    url = req.request(rp.authorization_endpoint)
    with httpx.Client() as browser:
        callback = sign_in(idp, url, browser)
        aresp = rp.parse_response(AuthorizationResponse, info=urlsplit(callback).query, sformat="urlencoded")
        assert aresp["state"] == state
        tresp = rp.do_access_token_request(
            state=state,
            request_args={"code": aresp["code"], "code_verifier": verifier, "redirect_uri": idp.redirect_uri},
            authn_method="client_secret_basic",
        )
        id_token = tresp["id_token"]  # pyoidc verified signature (JWKS), iss, aud, nonce, at_hash
        assert id_token["iss"] == idp.issuer and id_token["nonce"] == nonce
        verify_id_token(idp, tresp["id_token"].jwt, nonce)
        info = rp.do_user_info_request(state=state)
        assert info["sub"] == id_token["sub"]
        refreshed = rp.do_access_token_refresh(state=state, authn_method="client_secret_basic")
        assert refreshed["access_token"] != tresp["access_token"]
        intro = httpx.post(
            f"{idp.issuer}/introspect", data={"token": refreshed["access_token"]}, auth=(idp.client_id, idp.secret)
        ).json()
        assert intro["active"] is True and intro["client_id"] == idp.client_id
        r = httpx.post(
            f"{idp.issuer}/revoke", data={"token": refreshed["access_token"]}, auth=(idp.client_id, idp.secret)
        )
        assert r.status_code == 200
        intro = httpx.post(
            f"{idp.issuer}/introspect", data={"token": refreshed["access_token"]}, auth=(idp.client_id, idp.secret)
        ).json()
        assert intro == {"active": False}
        # refresh responses carry no new ID token (OIDC Core §12.2), so name the first one
        end = rp.construct_EndSessionRequest(
            state=state,
            request_args={
                "id_token_hint": tresp["id_token"].jwt,
                "post_logout_redirect_uri": idp.logout_uri,
                "state": "s2",
            },
        )
        r = browser.get(end.request(rp.end_session_endpoint))
        assert r.status_code == 303 and r.headers["location"] == idp.logout_uri + "?state=s2"
