"""One running IdP per test module on the real Redis and Kafka, and an admin client for it."""

from __future__ import annotations

import base64
import re
import time
import uuid

import httpx
import pytest_asyncio

from lanyard.contracts import topics
from lanyard.idp.app import create_app
from lanyard.idp.directory.authn import Passwords
from lanyard.idp.directory.domain import hotp
from lanyard.idp.directory.service import bootstrap
from lanyard.idp.settings import IdpSettings
from lanyard.runtime.testing import TopicProbe, eventually


class Idp:
    """The enterprise `acme` with its superadmin `root`, an HTTP client and a topic probe."""

    eid = "acme"
    root_password = "correct horse battery staple"
    base = "http://127.0.0.1:8480"

    def __init__(self, app, client: httpx.AsyncClient, probe: TopicProbe) -> None:
        self.app = app
        self.http = client
        self.probe = probe
        self.side = app.state.directory_side
        self.root_token = ""

    def auth(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.root_token}"}

    async def token(self, username: str, password: str, totp: str | None = None) -> httpx.Response:
        body = {"username": username, "password": password} | ({"totp": totp} if totp else {})
        return await self.http.post(f"/e/{self.eid}/admin/token", data=body)

    async def user(self, username: str, password: str = "pa55word-long", **extra) -> dict:
        body = {"username": username, "display_name": username.title(), "password": password} | extra
        r = await self.http.post(f"/e/{self.eid}/admin/users", json=body, headers=self.auth(self.root_token))
        assert r.status_code == 201, r.text
        return r.json()

    async def enroll(self, user_id: str) -> bytes:
        r = await self.http.post(f"/e/{self.eid}/admin/users/{user_id}/totp", headers=self.auth(self.root_token))
        assert r.status_code == 201
        secret = r.json()["secret"]
        return base64.b32decode(secret + "=" * (-len(secret) % 8))

    @staticmethod
    def code(secret: bytes, offset: int = 0) -> str:
        """The TOTP code of `secret` now (`offset` steps of 30 s away)."""
        return hotp(secret, int(time.time()) // 30 + offset)

    @staticmethod
    def csrf(html: str) -> str:
        """The CSRF token of a login page."""
        return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def running(kafka_bootstrap, redis_url):
    """One IdP for the whole module (starting one costs consumer-group joins); each test uses
    its own users and a fresh HTTP client, so tests do not depend on each other."""
    from lanyard.runtime.redis import create_redis

    r = create_redis(redis_url)
    await r.flushall()
    await r.aclose()
    settings = IdpSettings(consumer_group=f"test-idp-{uuid.uuid4().hex[:8]}", public_base_url=Idp.base)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        probe = await TopicProbe(kafka_bootstrap, topics.DIRECTORY, topics.APP_PROFILES, topics.OIDC_EVENTS).start()
        side = app.state.directory_side
        await bootstrap(
            side.enterprises, side.keys, side.directory, Passwords(), side.outbox,
            Idp.eid, "Acme", "root", Idp.root_password,
        )  # fmt: skip
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=Idp.base) as client:

            async def ready() -> bool:
                return (await client.get("/health/ready")).status_code == 200

            # Stopping while consumers are still joining their groups can stall; start settled.
            await eventually(ready, 60, what="idp ready")
        yield app, probe
        await probe.stop()


@pytest_asyncio.fixture(loop_scope="module")
async def idp(running):
    app, probe = running
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=Idp.base) as client:
        env = Idp(app, client, probe)
        r = await env.token("root", env.root_password)
        assert r.status_code == 200, r.text
        env.root_token = r.json()["access_token"]
        yield env
