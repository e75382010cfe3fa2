"""The policy service against the real Kafka and Redis: admin API, entitlements, cloud trust, readiness.

One service instance serves the whole module (each test uses its own enterprise id); directory,
app-profile and device-session events are published here to stand in for the IdP and the
session service; entitlement events are read back from the topic.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import pytest_asyncio

from lanyard.contracts import events as ev
from lanyard.contracts import topics
from lanyard.policy.adapters.redis_store import LICENCE_CHECKS
from lanyard.policy.app import create_app
from lanyard.policy.settings import PolicySettings
from lanyard.runtime.kafka import EventPublisher
from lanyard.runtime.rebuild import RedisProjectionMarker
from lanyard.runtime.redis import create_redis
from lanyard.runtime.testing import TopicProbe, consumer_lag, eventually
from lanyard.runtime.tokens import TestIssuer

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

BASE = "http://127.0.0.1:8480"


@dataclass
class Clock:
    """Real time plus an offset the tests move forward."""

    offset: timedelta = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@dataclass
class World:
    client: httpx.AsyncClient
    publisher: EventPublisher
    probe: TopicProbe
    clock: Clock
    issuer: TestIssuer
    app: object
    redis_url: str
    tokens: dict[str, str] = field(default_factory=dict)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(kafka_bootstrap, redis_url):
    clock = Clock()
    issuer = TestIssuer(BASE)
    settings = PolicySettings(
        consumer_group=f"policy-it-{uuid.uuid4().hex[:6]}", licence_check_interval_s=0.1, public_base_url=BASE
    )
    app = create_app(settings, jwks=issuer.static_jwks(), clock=clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://policy") as client:

            async def ready():
                return (await client.get("/health/ready")).status_code == 200

            await eventually(ready, 30, what="policy ready")
            probe = await TopicProbe(kafka_bootstrap, topics.ENTITLEMENTS).start()
            try:
                yield World(client, app.state.runtime.publisher, probe, clock, issuer, app, redis_url)
            finally:
                await probe.stop()


@pytest.fixture(autouse=True)
def _reset_clock(world):
    world.clock.offset = timedelta(0)
    yield
    world.clock.offset = timedelta(0)


# --------------------------------------------------------------------------------- helpers


class Ent:
    """One enterprise of one test, with helpers to configure it and drive device sessions."""

    def __init__(self, world: World) -> None:
        self.w = world
        self.id = f"e-{uuid.uuid4().hex[:10]}"

    @classmethod
    async def open(cls, world: World) -> Ent:
        """An enterprise the service knows: its first superadmin published as the IdP's bootstrap does
        (tokens of enterprises the read model never heard of are refused before any key lookup)."""
        ent = cls(world)
        await ent.user("su-1", groups=())
        return ent

    def token(self, *roles: str, user: str = "admin-1") -> dict[str, str]:
        return {"authorization": f"Bearer {self.w.issuer.admin_token(self.id, user, *roles)}"}

    @property
    def su(self) -> dict[str, str]:
        return self.token("superadmin", user="su-1")

    @property
    def services(self) -> dict[str, str]:
        """A vendor services principal (belongs to no enterprise)."""
        return {"authorization": f"Bearer {self.w.issuer.services_token('svc-1')}"}

    def url(self, path: str) -> str:
        return f"/policy/e/{self.id}{path}"

    async def put(self, path: str, body: dict, expect: int = 200) -> dict:
        r = await self.w.client.put(self.url(path), json=body, headers=self.su)
        assert r.status_code == expect, r.text
        if expect == 200:
            assert r.json()["applied"] is True
        return r.json()

    async def delete(self, path: str) -> dict:
        r = await self.w.client.delete(self.url(path), headers=self.su)
        assert r.status_code == 200, r.text
        return r.json()

    async def emit(self, event: ev.Event, wait: bool = True) -> None:
        """Publish as another service would; wait until our projection applied it."""
        await self.w.publisher.publish(event)
        if wait:
            store = self.w.app.state.policy.store
            await eventually(lambda: store.was_applied(self.id, event.event_id), what=f"{event.type} applied")

    async def user(
        self, user_id: str, status: str = "active", groups: tuple[str, ...] = ("nurses",), totp: bool = True
    ) -> None:
        payload = ev.UserUpsertedPayload(
            user_id=user_id, username=user_id, display_name=user_id, groups=groups, status=status, totp_enrolled=totp
        )
        await self.emit(ev.UserUpserted(enterprise_id=self.id, producer="idp", payload=payload))

    async def group(self, group_id: str = "nurses") -> None:
        payload = ev.GroupUpsertedPayload(group_id=group_id, name=group_id)
        await self.emit(ev.GroupUpserted(enterprise_id=self.id, producer="idp", payload=payload))

    async def app_profile(self, client_id: str = "rover", enabled: bool = True) -> None:
        payload = ev.AppProfileUpsertedPayload(
            client_id=client_id,
            profile_name=client_id,
            display_name=client_id,
            client_type="public",
            redirect_uris=("com.epic.rover.oidc://callback",),
            enabled=enabled,
        )
        await self.emit(ev.AppProfileUpserted(enterprise_id=self.id, producer="idp", payload=payload))

    async def licence(self, licence_id: str = "sso-1", kind: str = "sso", seats: int = 10, days: float = 30) -> None:
        now = self.w.clock()
        start, end = now - timedelta(days=60), now + timedelta(days=days)
        body = {"kind": kind, "valid_from": start.isoformat(), "valid_until": end.isoformat(), "seats": seats}
        await self.put(f"/licences/{licence_id}", body)

    async def connect_cloud(self) -> dict:
        code = (await self.w.client.post(self.url("/cloud-connection/provisioning-code"), headers=self.su)).json()
        r = await self.w.client.post(
            self.url("/cloud-connection/establish-trust"),
            json={"enterprise_id": self.id, "code": code["code"]},
            headers=self.services,
        )
        assert r.status_code == 200, r.text
        return r.json()

    async def configure(self, **without: bool) -> None:
        """A fully working enterprise, minus what `without` names."""
        if not without.get("org"):
            await self.put("/org-settings", {"password_autofill_and_sso": True})
        if not without.get("cloud"):
            await self.connect_cloud()
        if not without.get("licence"):
            await self.licence()
        await self.group("nurses")
        await self.app_profile("rover")
        if not without.get("policy"):
            await self.put("/user-policies/p-nurses", {"name": "Nurses", "sso_enabled": True, "groups": ["nurses"],
                                                       "inactivity_timeout_s": 120, "max_session_s": 3600})  # fmt: skip
        if not without.get("deployment"):
            await self.put("/app-deployments/rover", {"groups": ["nurses"]})
        await self.user("alice")

    async def checkout(
        self, user_id: str = "alice", device_id: str | None = None, amr: tuple[str, ...] = ("pwd", "otp"),
        dsid: str | None = None,
    ) -> str:  # fmt: skip
        dsid = dsid or f"ds-{uuid.uuid4().hex[:10]}"
        payload = ev.DeviceCheckedOutPayload(
            device_session_id=dsid,
            device_id=device_id or f"dev-{dsid}",
            user_id=user_id,
            sequence=1,
            amr=amr,
            checked_out_at=datetime.now(UTC),
            device_jkt="jkt",
        )
        await self.w.publisher.publish(ev.DeviceCheckedOut(enterprise_id=self.id, producer="session", payload=payload))
        return dsid

    async def checkin(self, dsid: str, user_id: str = "alice", device_id: str | None = None) -> None:
        payload = ev.DeviceCheckedInPayload(
            device_session_id=dsid, device_id=device_id or f"dev-{dsid}", user_id=user_id, sequence=2, reason="user"
        )
        await self.w.publisher.publish(ev.DeviceCheckedIn(enterprise_id=self.id, producer="session", payload=payload))

    async def wait(self, kind: str, **where) -> ev.Event:
        found = await eventually(
            lambda: [e for e in self.w.probe.of_type(kind, **where) if e.enterprise_id == self.id],
            15,
            what=f"{kind} {where}",
        )
        return found[-1]

    def events(self, dsid: str) -> list[ev.Event]:
        return [
            e for e in self.w.probe.events if e.enterprise_id == self.id and e.payload.device_session_id == dsid
        ]  # fmt: skip


# ------------------------------------------------------------------------------ checkout


async def test_grant_on_checkout_then_revoke_on_checkin_and_closed_stays_closed(world):
    ent = await Ent.open(world)
    await ent.configure()
    dsid = await ent.checkout(device_id="dev-1")
    granted = await ent.wait("entitlement.granted.v1", device_session_id=dsid)
    p = granted.payload
    assert (p.version, p.apps, p.auth_mode, p.user_id, p.device_id) == (1, ("rover",), "passcode", "alice", "dev-1")
    assert (p.inactivity_timeout_s, p.max_session_s, p.face_allowed, p.policy_id) == (120, 3600, False, "p-nurses")
    assert granted.subject.device_session_id == dsid

    await ent.checkin(dsid, device_id="dev-1")
    revoked = await ent.wait("entitlement.revoked.v1", device_session_id=dsid)
    assert revoked.payload.reason == "checked_in"

    # A redelivered checkout after the checkin never grants again; a later session on the same
    # device (same partition, so it is handled after the replay) shows the replay was consumed.
    await ent.checkout(device_id="dev-1", dsid=dsid)
    later = await ent.checkout(device_id="dev-1")
    await ent.wait("entitlement.granted.v1", device_session_id=later)
    assert [e.type for e in ent.events(dsid)] == ["entitlement.granted.v1", "entitlement.revoked.v1"]


async def test_checkin_before_checkout_means_the_checkout_is_ignored(world):
    ent = await Ent.open(world)
    await ent.configure()
    dsid = f"ds-{uuid.uuid4().hex[:8]}"
    await ent.checkin(dsid, device_id="dev-x")
    await ent.checkout(device_id="dev-x", dsid=dsid)
    marker = await ent.checkout(device_id="dev-x")
    await ent.wait("entitlement.granted.v1", device_session_id=marker)
    assert ent.events(dsid) == []


DENIAL_SETUPS = {
    "unknown_user": {},
    "user_disabled": {},
    "sso_disabled_for_org": {"org": True},
    "second_factor_required": {},
    "cloud_not_connected": {"cloud": True},
    "no_sso_licence": {"licence": True},
    "sso_licence_expired": {"licence": True},
    "sso_seats_exceeded": {"licence": True},
    "no_policy": {"policy": True},
    "policy_sso_disabled": {},
    "face_requires_apa": {},
    "apa_seats_exceeded": {},
    "no_apps_deployed": {"deployment": True},
}


@pytest.mark.parametrize("reason", sorted(DENIAL_SETUPS))
async def test_each_denial_reason_on_checkout(world, reason):
    ent = await Ent.open(world)
    await ent.configure(**DENIAL_SETUPS[reason])
    user, amr = "alice", ("pwd", "otp")
    if reason == "unknown_user":
        user = "ghost"
    elif reason == "user_disabled":
        await ent.user("alice", status="disabled")
    elif reason == "second_factor_required":
        amr = ("pwd",)
    elif reason == "sso_licence_expired":
        await ent.licence(days=-1)
    elif reason == "sso_seats_exceeded":
        await ent.licence(seats=1)
        await ent.user("bob")
        first = await ent.checkout("bob")
        await ent.wait("entitlement.granted.v1", device_session_id=first)
    elif reason == "policy_sso_disabled":
        await ent.put("/user-policies/p-nurses", {"name": "Nurses", "sso_enabled": False, "groups": ["nurses"]})
    elif reason in ("face_requires_apa", "apa_seats_exceeded"):
        await ent.put("/user-policies/p-nurses", {"name": "N", "sso_enabled": True, "auth_mode": "face",
                                                  "groups": ["nurses"]})  # fmt: skip
    if reason == "apa_seats_exceeded":
        await ent.licence("apa-1", kind="apa", seats=1)
        await ent.user("bob")
        first = await ent.checkout("bob")
        await ent.wait("entitlement.granted.v1", device_session_id=first)
    dsid = await ent.checkout(user, amr=amr)
    denied = await ent.wait("entitlement.denied.v1", device_session_id=dsid)
    assert denied.payload.reason == reason
    assert denied.payload.user_id == user


async def test_an_apa_seat_is_taken_by_face_grants_and_freed_on_checkin(world):
    ent = await Ent.open(world)
    await ent.configure()
    await ent.licence("apa-1", kind="apa", seats=1)
    await ent.user("bob")
    alice = await ent.checkout("alice")
    assert (await ent.wait("entitlement.granted.v1", device_session_id=alice)).payload.face_allowed is True
    # Passcode mode: with the only APA seat taken, bob gets SSO without face verification.
    bob = await ent.checkout("bob")
    assert (await ent.wait("entitlement.granted.v1", device_session_id=bob)).payload.face_allowed is False

    await ent.put("/user-policies/p-nurses", {"name": "N", "sso_enabled": True, "auth_mode": "face",
                                              "groups": ["nurses"]})  # fmt: skip
    revoked = await ent.wait("entitlement.revoked.v1", device_session_id=bob)
    assert "apa_seats_exceeded" in revoked.payload.detail
    assert [e.type for e in ent.events(alice)][-1] == "entitlement.granted.v1"

    await ent.checkin(alice)
    await ent.wait("entitlement.revoked.v1", device_session_id=alice)
    again = await ent.checkout("bob")
    granted = await ent.wait("entitlement.granted.v1", device_session_id=again)
    assert granted.payload.auth_mode == "face" and granted.payload.face_allowed is True


async def test_a_burst_of_checkouts_gets_exactly_as_many_grants_as_there_are_seats(world):
    ent = await Ent.open(world)
    await ent.configure()
    await ent.licence(seats=3)
    users = [f"nurse{i}" for i in range(8)]
    for user in users:
        await ent.user(user)
    # All on one device, so they share a partition and arrive as batches of one enterprise.
    dsids = await asyncio.gather(*(ent.checkout(user, device_id="shared-cart") for user in users))

    def decided(dsid):
        found = [e for kind in ("entitlement.granted.v1", "entitlement.denied.v1")
                 for e in world.probe.of_type(kind, device_session_id=dsid)]  # fmt: skip
        return found[0] if found else None

    outcomes = {}
    for dsid in dsids:
        event = await eventually(lambda dsid=dsid: decided(dsid), 15, what=f"decision for {dsid}")
        outcomes[dsid] = "granted" if event.type == "entitlement.granted.v1" else event.payload.reason
    assert sorted(outcomes.values()) == ["granted"] * 3 + ["sso_seats_exceeded"] * 5


# ----------------------------------------------------------------------- configuration changes


async def _granted_session(ent: Ent) -> str:
    dsid = await ent.checkout()
    await ent.wait("entitlement.granted.v1", device_session_id=dsid)
    return dsid


CHANGES = ["policy", "deployment", "licence", "licence_seats", "org_settings", "user", "group", "app_profile"]


@pytest.mark.parametrize("change", CHANGES)
async def test_revocation_on_each_kind_of_configuration_change(world, change):
    ent = await Ent.open(world)
    await ent.configure()
    dsid = await _granted_session(ent)
    expected = {
        "policy": "policy_changed",
        "deployment": "app_undeployed",
        "licence": "licence_changed",
        "licence_seats": "licence_changed",
        "org_settings": "org_settings_changed",
        "user": "user_changed",
        "group": "user_changed",
        "app_profile": "app_undeployed",
    }[change]
    if change == "policy":
        await ent.put("/user-policies/p-nurses", {"name": "Nurses", "sso_enabled": True, "users": ["bob"]})
    elif change == "deployment":
        await ent.delete("/app-deployments/rover")
    elif change == "licence":
        await ent.licence(days=-1)
    elif change == "licence_seats":
        # Bob checked out after Alice: when seats shrink to one, the newest session loses access.
        await ent.user("bob")
        bob = await ent.checkout("bob")
        await ent.wait("entitlement.granted.v1", device_session_id=bob)
        await ent.licence(seats=1)
        revoked = await ent.wait("entitlement.revoked.v1", device_session_id=bob)
        assert revoked.payload.reason == expected
        assert "sso_seats_exceeded" in revoked.payload.detail
        assert [e.type for e in ent.events(dsid)] == ["entitlement.granted.v1"]
        return
    elif change == "org_settings":
        await ent.put("/org-settings", {"password_autofill_and_sso": False})
    elif change == "user":
        await ent.user("alice", status="disabled")
    elif change == "group":
        await ent.emit(
            ev.GroupDeleted(enterprise_id=ent.id, producer="idp", payload=ev.GroupDeletedPayload(group_id="nurses"))
        )
    elif change == "app_profile":
        await ent.app_profile("rover", enabled=False)
    revoked = await ent.wait("entitlement.revoked.v1", device_session_id=dsid)
    assert revoked.payload.reason == expected
    assert revoked.actor is None and revoked.payload.user_id == "alice"


async def test_added_access_updates_the_live_grant_with_a_new_version(world):
    ent = await Ent.open(world)
    await ent.configure()
    dsid = await _granted_session(ent)
    await ent.app_profile("epic")
    await ent.put("/app-deployments/epic", {"users": ["alice"]})
    v2 = await ent.wait("entitlement.granted.v1", device_session_id=dsid, version=2)
    assert v2.payload.apps == ("epic", "rover")
    await ent.put("/user-policies/p-nurses", {"name": "Nurses", "sso_enabled": True, "groups": ["nurses"],
                                              "inactivity_timeout_s": 60})  # fmt: skip
    v3 = await ent.wait("entitlement.granted.v1", device_session_id=dsid, version=3)
    assert v3.payload.inactivity_timeout_s == 60


async def test_licence_running_out_revokes_live_sessions_when_the_clock_passes_its_end(world):
    ent = await Ent.open(world)
    await ent.configure()
    dsid = await _granted_session(ent)
    world.clock.offset = timedelta(days=31)  # the licence of configure() ends after 30 days
    revoked = await ent.wait("entitlement.revoked.v1", device_session_id=dsid)
    assert revoked.payload.reason == "licence_changed"
    assert "sso_licence_expired" in revoked.payload.detail


# ------------------------------------------------------------------------------ admin API


async def test_config_changes_publish_events_with_the_admin_as_actor(world, kafka_bootstrap):
    ent = await Ent.open(world)
    probe = await TopicProbe(kafka_bootstrap, topics.POLICY_CONFIG).start()
    try:
        body = {"name": "Docs", "sso_enabled": True, "auth_mode": "face", "users": ["alice"], "priority": 5}
        r = await world.client.put(
            ent.url("/user-policies/p-docs"), json=body, headers=ent.token("admin", user="adm-7")
        )
        assert r.status_code == 200
        event = await probe.wait_for("policy.user_policy_upserted.v1", policy_id="p-docs")
        assert (event.actor, event.enterprise_id, event.payload.auth_mode) == ("adm-7", ent.id, "face")
        listed = (await world.client.get(ent.url("/user-policies"), headers=ent.token("auditor"))).json()
        assert [p["policy_id"] for p in listed["items"]] == ["p-docs"]
        await ent.delete("/user-policies/p-docs")
        await probe.wait_for("policy.user_policy_deleted.v1", policy_id="p-docs")
        r = await world.client.get(ent.url("/user-policies/p-docs"), headers=ent.su)
        assert r.status_code == 404
    finally:
        await probe.stop()


async def test_roles_and_bad_input(world):
    ent = await Ent.open(world)
    body = {"name": "N", "sso_enabled": True}
    assert (await world.client.put(ent.url("/user-policies/p"), json=body)).status_code == 401
    r = await world.client.put(ent.url("/user-policies/p"), json=body, headers=ent.token("auditor"))
    assert r.status_code == 403
    assert r.json()["error"] == "insufficient_role"
    other = Ent(world)  # a token of another enterprise is not valid here
    r = await world.client.get(ent.url("/user-policies"), headers=other.su)
    assert r.status_code == 401
    r = await world.client.put(ent.url("/user-policies/p"), json={**body, "bogus": 1}, headers=ent.su)
    assert (r.status_code, r.json()["error"]) == (400, "invalid_request")
    r = await world.client.put(
        ent.url("/licences/l1"),
        json={"kind": "sso", "valid_from": "2026-02-01T00:00:00Z", "valid_until": "2026-01-01T00:00:00Z", "seats": 1},
        headers=ent.su,
    )
    assert r.status_code == 400
    r = await world.client.put(ent.url("/licences/l1"), json={"kind": "gold"}, headers=ent.su)
    assert r.status_code == 400
    assert (await world.client.get(ent.url("/licences"), headers=ent.su)).json() == {"items": []}
    r = await world.client.post(
        ent.url("/cloud-connection/establish-trust"), json={"enterprise_id": ent.id, "code": "X"},
        headers=ent.token("admin"),
    )  # fmt: skip
    assert r.status_code == 403


async def test_second_factor_cannot_be_switched_off_for_a_new_enterprise(world):
    ent = await Ent.open(world)
    r = await world.client.put(ent.url("/org-settings"), json={"require_second_factor": False}, headers=ent.su)
    assert (r.status_code, r.json()["error"]) == (409, "setting_locked")
    await ent.put("/org-settings", {"password_autofill_and_sso": True})
    org = (await world.client.get(ent.url("/org-settings"), headers=ent.su)).json()
    assert org["require_second_factor"] is True
    assert org["require_second_factor_locked"] is True
    assert org["password_autofill_and_sso"] is True


# ------------------------------------------------------------------------ cloud connection


async def _new_code(world: World, ent: Ent) -> str:
    r = await world.client.post(ent.url("/cloud-connection/provisioning-code"), headers=ent.su)
    assert r.status_code == 201
    assert r.headers["cache-control"] == "no-store"
    return r.json()["code"]


async def _establish(
    world: World, ent: Ent, code: str, enterprise_id: str | None = None, headers: dict[str, str] | None = None
) -> httpx.Response:
    return await world.client.post(
        ent.url("/cloud-connection/establish-trust"),
        json={"enterprise_id": enterprise_id or ent.id, "code": code},
        headers=headers or ent.services,
    )


async def test_provisioning_code_is_single_use_and_counted(world, kafka_bootstrap):
    ent = await Ent.open(world)
    probe = await TopicProbe(kafka_bootstrap, topics.POLICY_CONFIG).start()
    try:
        code = await _new_code(world, ent)
        state = (await world.client.get(ent.url("/cloud-connection"), headers=ent.token("auditor"))).json()
        assert state["state"] == "code_issued"
        assert state["code_expires_at"] is not None

        wrong = await _establish(world, ent, "WRONGCODE123")
        assert (wrong.status_code, wrong.json()["error"], wrong.json()["failed_attempts"]) == (
            400, "invalid_provisioning_code", 1)  # fmt: skip
        assert (await _establish(world, ent, code, enterprise_id="e-other")).status_code == 400

        ok = await _establish(world, ent, code)
        assert ok.status_code == 200
        creds = ok.json()
        assert creds["state"] == "established" and len(creds["client_secret"]) >= 32

        again = await _establish(world, ent, code)
        assert again.status_code == 400 and again.json()["failed_attempts"] == 3
        state = (await world.client.get(ent.url("/cloud-connection"), headers=ent.su)).json()
        assert (state["state"], state["failed_attempts"], state["code_expires_at"]) == ("established", 3, None)
        event = await probe.wait_for("policy.cloud_connection_changed.v1", state="established")
        assert event.actor == "services:svc-1"
        assert creds["client_secret"] not in str([e.model_dump() for e in probe.events])
    finally:
        await probe.stop()


async def test_provisioning_code_expires_after_five_minutes_and_a_new_code_voids_the_old(world):
    ent = await Ent.open(world)
    code = await _new_code(world, ent)
    world.clock.offset = timedelta(minutes=5, seconds=1)
    expired = await _establish(world, ent, code)
    assert expired.status_code == 400
    assert "expired" in expired.json()["error_description"]
    world.clock.offset = timedelta(0)
    assert (await _establish(world, ent, code)).status_code == 400  # never works later

    first = await _new_code(world, ent)
    second = await _new_code(world, ent)
    assert (await _establish(world, ent, first)).status_code == 400
    world.clock.offset = timedelta(minutes=4, seconds=50)
    assert (await _establish(world, ent, second)).status_code == 200
    state = (await world.client.get(ent.url("/cloud-connection"), headers=ent.su)).json()
    assert (state["state"], state["failed_attempts"]) == ("established", 3)


# ------------------------------------------------------------------------------ readiness


async def test_readiness_of_a_half_configured_enterprise_api_and_cli(world):
    ent = await Ent.open(world)
    await ent.licence()
    await ent.app_profile("rover")
    await ent.group("nurses")
    await ent.user("alice")
    r = await world.client.get(ent.url("/readiness"), headers=ent.token("auditor"))
    assert r.status_code == 200
    report = r.json()
    assert report["ready"] is False
    statuses = {c["check"]: (c["status"], c["requirement"]) for c in report["checks"]}
    assert statuses == {
        "maintained release": ("pass", "Required"),
        "Single Sign On licensed": ("pass", "Required"),
        "cloud connection established": ("fail", "Required"),
        "OpenID Connect apps added and enabled": ("pass", "Required"),
        "apps deployed to users": ("fail", "Required"),
        "users assigned to a policy enabled for SSO": ("fail", "Required"),
        "Password Autofill and SSO is ON": ("fail", "Required"),
        "Require a second factor to unlock the device is ON": ("pass", "Required"),
        "Locker for iOS 4.3 or later on the devices": ("pass", "Required"),
        "SSO Extension profile deployed from the MDM": ("pass", "Required"),
        "users with SSO can check out (second factor enrolled)": ("pass", "Optional"),
    }
    assert report["release"] and report["release"] in report["checks"][0]["detail"]
    where = {c["check"]: c["where_to_fix"] for c in report["checks"]}
    assert where["cloud connection established"] == "Gear menu > Cloud connection"

    why = (await world.client.get(ent.url("/readiness/users/alice?client_id=rover"), headers=ent.su)).json()
    assert (why["allowed"], why["reason"]) == (False, "sso_disabled_for_org")

    await ent.put("/org-settings", {"password_autofill_and_sso": True})
    await ent.connect_cloud()
    await ent.put("/user-policies/p", {"name": "N", "sso_enabled": True, "groups": ["nurses"]})
    why = (await world.client.get(ent.url("/readiness/users/alice?client_id=rover"), headers=ent.su)).json()
    assert (why["allowed"], why["reason"]) == (False, "no_apps_deployed")
    await ent.put("/app-deployments/rover", {"users": ["alice"]})
    why = (await world.client.get(ent.url("/readiness/users/alice?client_id=rover"), headers=ent.su)).json()
    assert why["allowed"] is True and why["grant"]["apps"] == ["rover"]
    why = (await world.client.get(ent.url("/readiness/users/alice?client_id=epic"), headers=ent.su)).json()
    assert (why["allowed"], why["reason"]) == (False, "app_not_deployed")

    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "lanyard.policy", "readiness", "--enterprise", ent.id,
        env={**os.environ, "REDIS_URL": world.redis_url},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    text = out.decode()
    assert proc.returncode == 0, err.decode()
    assert "cloud connection established" in text and "Gear menu > Cloud connection" in text
    assert "Required" in text and "Optional" in text
    assert text.count("pass") == 11 and "fail" not in text


# ------------------------------------------------------- cloud trust by a services principal


async def test_only_a_services_principal_establishes_trust_and_every_attempt_is_announced(world, kafka_bootstrap):
    ent = await Ent.open(world)
    probe = await TopicProbe(kafka_bootstrap, topics.POLICY_CONFIG).start()
    try:
        # Only the enterprise's superadmin generates the code; an admin may not.
        r = await world.client.post(ent.url("/cloud-connection/provisioning-code"), headers=ent.token("admin"))
        assert r.status_code == 403
        r = await world.client.post(ent.url("/cloud-connection/provisioning-code"), headers=ent.services)
        assert r.status_code == 401  # a services principal is no admin of the enterprise
        code = await _new_code(world, ent)

        # The superadmin holding the right code is refused: only Services enter it. Audited.
        refused = await _establish(world, ent, code, headers=ent.su)
        assert (refused.status_code, refused.json()["error"]) == (403, "services_only")
        attempt = await eventually(
            lambda: [e for e in probe.of_type("policy.cloud_connection_changed.v1")
                     if e.enterprise_id == ent.id and e.payload.last_attempt is not None],
            10, what="the refused attempt announced",
        )  # fmt: skip
        first = attempt[0]
        assert (first.actor, first.payload.last_attempt.by, first.payload.last_attempt.principal) == (
            "su-1", "su-1", "enterprise_admin")  # fmt: skip
        assert (first.payload.last_attempt.outcome, first.payload.last_attempt.reason) == ("refused", "services_only")
        assert first.payload.failed_attempts == 0  # not a guess at the code

        # A services principal with only the read scope may look, not establish.
        reader = {"authorization": f"Bearer {world.issuer.services_token('svc-ro', 'read')}"}
        assert (await world.client.get(ent.url("/cloud-connection"), headers=reader)).status_code == 200
        r = await _establish(world, ent, code, headers=reader)
        assert (r.status_code, r.json()["error"]) == (403, "insufficient_scope")

        wrong = await _establish(world, ent, "WRONGCODE123")
        assert (wrong.status_code, wrong.json()["failed_attempts"]) == (400, 1)
        ok = await _establish(world, ent, code)
        assert ok.status_code == 200 and ok.json()["state"] == "established"

        # The superadmin sees the result: who established trust, when, and the last attempt.
        view = (await world.client.get(ent.url("/cloud-connection"), headers=ent.su)).json()
        assert (view["state"], view["established_by"], view["failed_attempts"]) == ("established", "services:svc-1", 1)
        assert view["established_at"] is not None
        assert view["last_attempt"]["outcome"] == "established"
        assert view["last_attempt"]["by"] == "services:svc-1" and view["last_attempt"]["principal"] == "services"
        mine = [e for e in probe.of_type("policy.cloud_connection_changed.v1") if e.enterprise_id == ent.id]
        outcomes = [(e.actor, e.payload.last_attempt.outcome if e.payload.last_attempt else None,
                     e.payload.last_attempt.reason if e.payload.last_attempt else None) for e in mine]  # fmt: skip
        assert outcomes == [
            ("su-1", None, None),
            ("su-1", "refused", "services_only"),
            ("services:svc-1", "refused", "wrong"),
            ("services:svc-1", "established", None),
        ]
        assert ok.json()["client_secret"] not in str([e.model_dump() for e in probe.events])
        # A later code keeps who established trust (each record is whole: the topic is compacted).
        await _new_code(world, ent)
        view = (await world.client.get(ent.url("/cloud-connection"), headers=ent.su)).json()
        assert (view["state"], view["established_by"]) == ("established", "services:svc-1")
    finally:
        await probe.stop()


async def test_a_services_principal_reads_views_of_any_enterprise_but_changes_nothing(world):
    ent = await Ent.open(world)
    for path in ("/readiness", "/cloud-connection", "/org-settings", "/locker-options", "/licences"):
        r = await world.client.get(ent.url(path), headers=ent.services)
        assert r.status_code == 200, (path, r.text)
    r = await world.client.put(ent.url("/org-settings"), json={"password_autofill_and_sso": True}, headers=ent.services)
    assert r.status_code == 401
    r = await world.client.put(ent.url("/locker-options"), json={}, headers=ent.services)
    assert r.status_code == 401


# ------------------------------------------------------------------------ Locker options


async def test_locker_options_are_validated_versioned_and_published(world, kafka_bootstrap):
    ent = await Ent.open(world)
    probe = await TopicProbe(kafka_bootstrap, topics.POLICY_CONFIG).start()
    try:
        defaults = (await world.client.get(ent.url("/locker-options"), headers=ent.token("auditor"))).json()
        assert defaults == {"version": 0, "hide_password_autofill_prompt": False, "show_sso_status_at_checkout": True}

        first = await ent.put("/locker-options", {"hide_password_autofill_prompt": True, "expected_version": 0})
        assert (first["version"], first["hide_password_autofill_prompt"]) == (1, True)
        event = await probe.wait_for("policy.locker_options_changed.v1", version=1)
        assert (event.actor, event.enterprise_id, event.payload.hide_password_autofill_prompt) == ("su-1", ent.id, True)
        second = await ent.put("/locker-options", {"hide_password_autofill_prompt": True,
                                                   "show_sso_status_at_checkout": False})  # fmt: skip
        assert second["version"] == 2
        current = (await world.client.get(ent.url("/locker-options"), headers=ent.su)).json()
        assert current == {"version": 2, "hide_password_autofill_prompt": True, "show_sso_status_at_checkout": False}

        # Refusals: a change against an older version, an unknown option, a wrong type, no role.
        stale = await world.client.put(ent.url("/locker-options"), json={"expected_version": 1}, headers=ent.su)
        assert (stale.status_code, stale.json()["error"]) == (409, "version_conflict")
        assert "version 2" in stale.json()["error_description"]
        unknown = await world.client.put(ent.url("/locker-options"), json={"hide_everything": True}, headers=ent.su)
        assert (unknown.status_code, unknown.json()["error"]) == (400, "invalid_request")
        assert "hide_everything" in unknown.json()["error_description"]
        typed = await world.client.put(ent.url("/locker-options"), json={"hide_password_autofill_prompt": "yes"},
                                       headers=ent.su)  # fmt: skip
        assert typed.status_code == 400
        auditor = await world.client.put(ent.url("/locker-options"), json={}, headers=ent.token("auditor"))
        assert auditor.status_code == 403
        assert (await world.client.get(ent.url("/locker-options"), headers=ent.su)).json()["version"] == 2
        assert len([e for e in probe.of_type("policy.locker_options_changed.v1") if e.enterprise_id == ent.id]) == 2
    finally:
        await probe.stop()


async def test_concurrent_locker_option_changes_get_distinct_versions(world):
    ent = await Ent.open(world)
    bodies = [{"hide_password_autofill_prompt": i % 2 == 0} for i in range(6)]
    answers = await asyncio.gather(
        *(world.client.put(ent.url("/locker-options"), json=b, headers=ent.su) for b in bodies)
    )
    versions = sorted(a.json()["version"] for a in answers)
    assert versions == [1, 2, 3, 4, 5, 6]
    winner = next(a.json() for a in answers if a.json()["version"] == 6)
    current = (await world.client.get(ent.url("/locker-options"), headers=ent.su)).json()
    assert current["hide_password_autofill_prompt"] is winner["hide_password_autofill_prompt"]


# ------------------------------------------------------------------- version prerequisites


async def test_the_minimum_locker_version_is_an_org_setting_no_lower_than_the_seeds(world):
    ent = await Ent.open(world)
    org = (await world.client.get(ent.url("/org-settings"), headers=ent.su)).json()
    assert org["minimum_locker_version"] == "4.3"
    await ent.put("/org-settings", {"password_autofill_and_sso": True, "minimum_locker_version": "4.5"})
    assert (await world.client.get(ent.url("/org-settings"), headers=ent.su)).json()["minimum_locker_version"] == "4.5"
    low = await world.client.put(ent.url("/org-settings"), json={"minimum_locker_version": "4.2"}, headers=ent.su)
    assert (low.status_code, low.json()["error"]) == (400, "invalid_setting")
    assert "cannot be below 4.3" in low.json()["error_description"]
    bad = await world.client.put(ent.url("/org-settings"), json={"minimum_locker_version": "latest"}, headers=ent.su)
    assert bad.status_code == 400


async def _device_checkout(ent: Ent, device_id: str, version: str | None, extension: bool | None) -> None:
    payload = ev.DeviceCheckedOutPayload(
        device_session_id=f"ds-{uuid.uuid4().hex[:10]}", device_id=device_id, user_id="alice", sequence=1,
        amr=("pwd", "otp"), checked_out_at=datetime.now(UTC), device_jkt="jkt", locker_version=version,
        sso_extension_installed=extension,
    )  # fmt: skip
    await ent.w.publisher.publish(ev.DeviceCheckedOut(enterprise_id=ent.id, producer="session", payload=payload))


async def test_readiness_counts_devices_below_the_minimum_or_without_the_sso_extension(world):
    ent = await Ent.open(world)
    await ent.configure()
    await _device_checkout(ent, "cart-1", "4.3.2", True)
    await _device_checkout(ent, "cart-2", "4.4", False)
    refused = ev.CheckoutRefusedPayload(
        device_id="cart-3", user_id="alice", reason="locker_update_required", locker_version="4.2.0",
        minimum_locker_version="4.3", sso_extension_installed=True,
    )  # fmt: skip
    await ent.w.publisher.publish(ev.CheckoutRefused(enterprise_id=ent.id, producer="session", payload=refused))

    async def rows():
        report = (await world.client.get(ent.url("/readiness"), headers=ent.su)).json()
        found = {c["check"]: c for c in report["checks"]}
        return (report, found) if " of 3 " in found["Locker for iOS 4.3 or later on the devices"]["detail"] else None

    report, found = await eventually(rows, 15, what="three device reports in readiness")
    locker = found["Locker for iOS 4.3 or later on the devices"]
    assert locker["status"] == "fail" and "1 of 3" in locker["detail"] and "cart-3" in locker["detail"]
    extension = found["SSO Extension profile deployed from the MDM"]
    assert extension["status"] == "fail" and extension["detail"].startswith("1 of 3 devices") and "cart-2" in (
        extension["detail"])  # fmt: skip
    assert report["ready"] is False


async def test_readiness_is_not_ready_while_password_autofill_and_sso_is_off_and_shows_blocked_users(world):
    ent = await Ent.open(world)
    await ent.configure(org=True)
    await ent.user("bob", totp=False)
    report = (await world.client.get(ent.url("/readiness"), headers=ent.su)).json()
    found = {c["check"]: c for c in report["checks"]}
    assert found["Password Autofill and SSO is ON"]["status"] == "fail"
    assert report["ready"] is False
    blocked = found["users with SSO can check out (second factor enrolled)"]
    assert (blocked["status"], blocked["requirement"]) == ("fail", "Optional") and "bob" in blocked["detail"]
    why = (await world.client.get(ent.url("/readiness/users/bob"), headers=ent.su)).json()
    assert (why["allowed"], why["reason"], why["checkout_blockers"]) == (
        False, "sso_disabled_for_org", ["second_factor_not_enrolled"])  # fmt: skip

    await ent.put("/org-settings", {"password_autofill_and_sso": True})
    report = (await world.client.get(ent.url("/readiness"), headers=ent.su)).json()
    assert report["ready"] is True  # the Optional blocker row informs, it does not block
    why = (await world.client.get(ent.url("/readiness/users/bob"), headers=ent.su)).json()
    assert (why["allowed"], why["reason"]) == (False, "second_factor_not_enrolled")
    alice = (await world.client.get(ent.url("/readiness/users/alice"), headers=ent.su)).json()
    assert alice["allowed"] is True and alice["checkout_blockers"] == []


async def test_seats_in_use_and_valid_per_licence_kind(world):
    ent = await Ent.open(world)
    await ent.configure()
    before = (await world.client.get(ent.url("/seats"), headers=ent.token("auditor"))).json()
    assert before == {"sso": {"in_use": 0, "valid": 10}, "apa": {"in_use": 0, "valid": 0}}
    dsid = await ent.checkout(device_id="dev-seat")
    await ent.wait("entitlement.granted.v1", device_session_id=dsid)
    after = (await world.client.get(ent.url("/seats"), headers=ent.su)).json()
    assert after["sso"] == {"in_use": 1, "valid": 10}
    assert (await world.client.get(ent.url("/seats"))).status_code == 401


# ------------------------------------------------------------------ front door (issue 12)


def assert_error(r, status: int, error: str = "invalid_request") -> str:
    assert r.status_code == status, r.text
    assert set(r.json()) == {"error", "error_description"} and r.json()["error"] == error, r.json()
    return r.json()["error_description"]


async def test_tokens_are_checked_only_for_enterprises_the_read_model_knows(world):
    ent = await Ent.open(world)
    assert (await world.client.get(ent.url("/user-policies"), headers=ent.su)).status_code == 200
    for i in range(20):  # a real token, presented at made-up enterprise ids
        r = await world.client.get(f"/policy/e/made-up-{i}-{ent.id}/user-policies", headers=ent.su)
        assert assert_error(r, 401, "invalid_token") == "unknown enterprise"
        assert r.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    nobody = await world.client.get(ent.url("/user-policies"))
    assert_error(nobody, 401, "unauthorized")
    assert nobody.headers["www-authenticate"] == "Bearer"


async def test_bodies_are_bounded_and_errors_never_repeat_the_value(world):
    ent = await Ent.open(world)
    deep = b'{"name": "N", "sso_enabled": true, "users": ' + b"[" * 2000 + b"]" * 2000 + b"}"
    r = await world.client.put(
        ent.url("/user-policies/p"), content=deep, headers={**ent.su, "content-type": "application/json"}
    )
    assert "nested deeper" in assert_error(r, 400)
    twice = b'{"name": "A", "name": "B", "sso_enabled": true}'
    r = await world.client.put(
        ent.url("/user-policies/p"), content=twice, headers={**ent.su, "content-type": "application/json"}
    )
    assert "repeats the key 'name'" in assert_error(r, 400)
    r = await world.client.put(ent.url("/user-policies/p"), json={"name": "Nurses\x1b[2J", "sso_enabled": True},
                               headers=ent.su)  # fmt: skip
    assert assert_error(r, 400) == "body.name: must not contain control characters"
    r = await world.client.put(ent.url("/user-policies/p"), json={"name": " Nurse\u0301s ", "sso_enabled": True},
                               headers=ent.su)  # fmt: skip
    assert r.json()["name"] == "Nurs\u00e9s"  # NFC, stripped
    secret_code = "S3CR3T-CODE-" + uuid.uuid4().hex
    typo = {"enterprise_id": ent.id, "code": secret_code, "cdoe": secret_code}
    r = await world.client.post(ent.url("/cloud-connection/establish-trust"), json=typo, headers=ent.su)
    assert "body.cdoe" in assert_error(r, 400) and secret_code not in r.text
    r = await world.client.put(ent.url("/licences/l1"), json={"kind": "sso", "seats": "many", "valid_from": "x",
                                                              "valid_until": "y"}, headers=ent.su)  # fmt: skip
    text = assert_error(r, 400)
    assert "body.seats" in text and "body.valid_from" in text and "many" not in text


async def test_retried_posts_replay_the_first_answer(world):
    ent = await Ent.open(world)
    key = {"Idempotency-Key": "code-1"}
    first = await world.client.post(ent.url("/cloud-connection/provisioning-code"), headers={**ent.su, **key})
    again = await world.client.post(ent.url("/cloud-connection/provisioning-code"), headers={**ent.su, **key})
    assert first.status_code == 201 and again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    assert again.headers["cache-control"] == "no-store"
    trust = {"enterprise_id": ent.id, "code": first.json()["code"]}
    key = {"Idempotency-Key": "trust-1"}
    # Services enter the code (the seed); a retry under the same key gets the same credentials.
    url, services = ent.url("/cloud-connection/establish-trust"), ent.services
    made = await world.client.post(url, json=trust, headers={**services, **key})
    retry = await world.client.post(url, json=trust, headers={**services, **key})
    assert made.status_code == 200 and retry.json() == made.json()  # not "code already used"
    fresh = await world.client.post(url, json=trust, headers=services)
    assert fresh.json()["error"] == "invalid_provisioning_code"  # without the key, the code is spent


# ------------------------------------------------------------------------ rebuild from Kafka


async def _projection(app, e: str) -> dict:
    """Everything the live path keeps for an enterprise, in a form two stores can be compared in
    (hash order differs between them)."""
    store, redis = app.state.policy.store, app.state.runtime.redis
    snap = await store.snapshot(e)
    return {
        "config": (
            set(snap.policies),
            set(snap.deployments),
            set(snap.licences),
            snap.org,
            snap.cloud_state,
            snap.app_profiles,
            snap.known_groups,
        ),
        "cloud": await store.cloud(e),
        "users": dict(await store.all_users(e)),
        "created_at": await store.created_at(e),
        "sessions": sorted(await store.live_sessions(e), key=lambda s: s.device_session_id),
        "seats": (dict(await store.seat_holders(e)), dict(await store.seat_holders(e, "apa"))),
        "devices": sorted(await store.devices(e), key=lambda d: d.device_id),
        "licence_check": await redis.zscore(LICENCE_CHECKS, e),
    }


async def test_a_lost_projection_is_rebuilt_from_kafka_as_the_live_path_left_it(world):
    ent = await Ent.open(world)
    await ent.configure()
    await ent.licence(seats=2)
    await ent.licence("apa-1", kind="apa", seats=5)
    await ent.put("/user-policies/p-nurses", {"name": "N", "sso_enabled": True, "auth_mode": "face",
                                              "groups": ["nurses"]})  # fmt: skip
    await ent.user("bob")
    await ent.user("carol")
    alice = await ent.checkout("alice")
    assert (await ent.wait("entitlement.granted.v1", device_session_id=alice)).payload.face_allowed is True
    bob = await ent.checkout("bob")
    await ent.wait("entitlement.granted.v1", device_session_id=bob)
    carol = await ent.checkout("carol")
    assert (await ent.wait("entitlement.denied.v1", device_session_id=carol)).payload.reason == "sso_seats_exceeded"
    await ent.checkin(bob, user_id="bob")
    await ent.wait("entitlement.revoked.v1", device_session_id=bob)
    live = world.app.state.policy.store
    await eventually(lambda: live.is_closed(ent.id, bob), what="bob's checkin applied")
    before = await _projection(world.app, ent.id)
    assert (
        before["seats"] == ({"alice": 1}, {"alice": 1}) and len(before["sessions"]) == 2
    )  # alice granted, carol ended

    # A second instance on an empty Redis database: what a flushed Redis leaves.
    url = world.redis_url.rsplit("/", 1)[0] + "/15"
    empty = create_redis(url)
    await empty.flushdb()
    settings = PolicySettings(redis_url=url, consumer_group=f"policy-it-{uuid.uuid4().hex[:6]}", public_base_url=BASE)
    other = create_app(settings, jwks=world.issuer.static_jwks(), clock=world.clock)
    try:
        assert not await RedisProjectionMarker(empty, "policy").complete()
        report = await other.state.rebuild.run()
        assert report is not None and report.enterprises >= 1 and report.granted >= 1, report
        rebuilt = other.state.policy.store
        assert await _projection(other, ent.id) == before
        assert await rebuilt.is_closed(ent.id, bob), "a checked-in session keeps its tombstone: never granted again"
        # The next checkout is decided against the same seats: one of two SSO seats is free.
        view = await rebuilt.checkout_view(ent.id, [("carol", "ds-next")])
        assert (view.seats.in_use, view.seats.apa_in_use) == (1, 1), view.seats
        assert await other.state.rebuild.run() is None, "the marker says complete: no second rebuild"
    finally:
        await other.state.runtime.redis.aclose()
        await empty.flushdb()
        await empty.aclose()


async def test_configuration_read_again_behind_a_commit_regresses_nothing_and_revokes_nothing(world, kafka_bootstrap):
    """Finding 11 of docs/reliability.md: a consumer that resumes behind its last commit (a
    commit refused while the broker was cut) reads older records of items again. Applied, they
    put an item back to an older state — a disabled user, trust "code issued" — and re-evaluated
    live sessions against it: a soak run saw 7 live sessions revoked. A second instance on the
    same Redis in a new consumer group reads every configuration record from the start."""
    ent = await Ent.open(world)
    await ent.configure(cloud=True)
    await ent.user("alice", status="disabled")
    await ent.user("alice")
    await ent.connect_cloud()
    dsid = await _granted_session(ent)
    group = f"policy-it-{uuid.uuid4().hex[:6]}"
    settings = PolicySettings(consumer_group=group, public_base_url=BASE)
    other = create_app(settings, jwks=world.issuer.static_jwks(), clock=world.clock)
    names = [t.name for t in (topics.POLICY_CONFIG, topics.DIRECTORY, topics.APP_PROFILES)]
    async with other.router.lifespan_context(other):

        async def read_everything() -> bool:
            return await consumer_lag(kafka_bootstrap, f"{group}.config", names) == 0

        await eventually(read_everything, 60, what="the second instance read all configuration")
    store = world.app.state.policy.store
    assert (await store.cloud(ent.id))["state"] == "established"
    assert (await store.get_item(ent.id, "users", "alice"))["status"] == "active"
    # One record more for alice's partition of the entitlements topic, so the probe has read
    # past anything the second instance could have published for her.
    await ent.put("/user-policies/p-nurses", {"name": "Nurses", "sso_enabled": True, "users": ["bob"]})
    await ent.wait("entitlement.revoked.v1", device_session_id=dsid)
    assert [(e.type, e.payload.reason if e.type.endswith("revoked.v1") else "") for e in ent.events(dsid)] == [
        ("entitlement.granted.v1", ""),
        ("entitlement.revoked.v1", "policy_changed"),
    ], "nothing revoked the session before the change that should"
