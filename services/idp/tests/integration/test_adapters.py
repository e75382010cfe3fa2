"""One adapter suite, run against the in-memory fakes and the Redis adapters: both must behave
the same, because the OIDC and devices sides test against the fakes and run on Redis."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from joserfc import jwt

from lanyard.contracts.events import GroupUpserted, GroupUpsertedPayload
from lanyard.idp.adapters import memory
from lanyard.idp.adapters.redis_clients import RedisClients
from lanyard.idp.adapters.redis_directory import RedisDirectory, RedisEnterprises, RedisLockouts
from lanyard.idp.adapters.redis_keys import RedisKeys
from lanyard.idp.adapters.redis_sessions import RedisBrowserSessions, RedisOrgSettings
from lanyard.idp.directory.domain import AppProfile, Client, Enterprise, Group, LockoutPolicy, OrgSettings, User
from lanyard.idp.directory.ports import Conflict

pytestmark = pytest.mark.integration

EID = "acme"
POLICY = LockoutPolicy(max_failures=3, window_s=60, duration_s=120)


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "redis"])
def kind(request):
    return request.param


@pytest.fixture
def clock():
    return Clock()


async def _redis(request):
    """A flushed client on the real Redis (only for the "redis" variant, so the memory variant
    runs without infrastructure)."""
    from lanyard.runtime.redis import create_redis

    client = create_redis(request.getfixturevalue("redis_url"))
    await client.flushall()
    _clients.append(client)
    return client


_clients: list = []


@pytest.fixture(autouse=True)
async def _close_clients():
    yield
    while _clients:
        await _clients.pop().aclose()


@pytest.fixture
async def adapters(kind, request, clock):
    if kind == "memory":
        return {
            "enterprises": memory.MemoryEnterprises(),
            "directory": memory.MemoryDirectory(),
            "lockouts": memory.MemoryLockouts(POLICY),
            "clients": memory.MemoryClients(clock),
            "keys": memory.MemoryKeys(600, clock),
            "org": memory.MemoryOrgSettings(),
            "sessions": memory.MemoryBrowserSessions(clock),
        }
    r = await _redis(request)
    return {
        "enterprises": RedisEnterprises(r),
        "directory": RedisDirectory(r),
        "lockouts": RedisLockouts(r, POLICY),
        "clients": RedisClients(r),
        "keys": RedisKeys(r, 600, check_s=0, clock=clock),
        "org": RedisOrgSettings(r, cache_s=0),
        "sessions": RedisBrowserSessions(r, 3600, clock),
    }


def user(uid: str = "u1", username: str = "Alice", badge: str | None = None) -> User:
    return User(EID, uid, username, "Alice A", email="a@example.org", groups=("g1",), badge_id=badge)


async def test_enterprise_is_created_once(adapters):
    store = adapters["enterprises"]
    assert await store.get(EID) is None
    await store.create(Enterprise(EID, "Acme", datetime.now(UTC)))
    assert (await store.get(EID)).name == "Acme"
    with pytest.raises(Conflict):
        await store.create(Enterprise(EID, "Other", datetime.now(UTC)))
    assert (await store.get(EID)).name == "Acme"


async def test_users_by_id_username_and_badge(adapters):
    d = adapters["directory"]
    await d.save_user(user(badge="B-1"), None)
    assert (await d.get(EID, "u1")).groups == ("g1",)
    assert (await d.by_username(EID, "alice")).user_id == "u1"
    assert (await d.by_badge(EID, "B-1")).user_id == "u1"
    assert await d.by_username("other-enterprise", "alice") is None
    with pytest.raises(Conflict):
        await d.save_user(user("u2", "ALICE"), None)
    with pytest.raises(Conflict):
        await d.save_user(user("u2", "bob", badge="B-1"), None)
    await d.save_user(user("u1", "alice2", badge="B-2"), None)  # rename frees the old name and badge
    assert await d.by_username(EID, "alice") is None
    assert await d.by_badge(EID, "B-1") is None
    await d.save_user(user("u2", "alice"), None)
    assert [u.user_id for u in await d.list_users(EID)] == ["u1", "u2"]
    assert await d.delete_user(EID, "u1", None)
    assert not await d.delete_user(EID, "u1", None)
    assert await d.get(EID, "u1") is None
    assert await d.by_username(EID, "alice2") is None


async def test_groups(adapters):
    d = adapters["directory"]
    await d.save_group(Group(EID, "g1", "Nurses"), None)
    assert (await d.get_group(EID, "g1")).name == "Nurses"
    assert [g.group_id for g in await d.list_groups(EID)] == ["g1"]
    assert await d.delete_group(EID, "g1", None)
    assert await d.get_group(EID, "g1") is None


async def test_credentials_and_totp_steps_are_single_use(adapters):
    d = adapters["directory"]
    await d.save_user(user(), None)
    assert await d.password_hash(EID, "u1") is None
    await d.set_password_hash(EID, "u1", "$argon2id$x")
    assert await d.password_hash(EID, "u1") == "$argon2id$x"
    assert await d.totp(EID, "u1") is None
    await d.set_totp(EID, "u1", b"0123456789")
    assert await d.totp(EID, "u1") == (b"0123456789", None)
    assert await d.consume_totp_step(EID, "u1", 100)
    assert not await d.consume_totp_step(EID, "u1", 100)
    assert not await d.consume_totp_step(EID, "u1", 99)
    assert await d.consume_totp_step(EID, "u1", 101)
    assert await d.totp(EID, "u1") == (b"0123456789", 101)
    await d.set_totp(EID, "u1", None)
    assert await d.totp(EID, "u1") is None


async def test_lockout_after_max_failures(adapters):
    lock = adapters["lockouts"]
    now = 1_000_000.0
    assert not (await lock.record_failure(EID, "alice", now)).locked(now)
    assert not (await lock.record_failure(EID, "alice", now + 1)).locked(now + 1)
    state = await lock.record_failure(EID, "alice", now + 2)
    assert state.locked(now + 3) and not state.locked(now + 2 + 120)
    assert (await lock.state(EID, "alice")).locked(now + 3)
    assert not (await lock.state(EID, "bob")).locked(now + 3)
    await lock.clear(EID, "alice")
    assert not (await lock.state(EID, "alice")).locked(now + 3)


def client(cid: str = "c1") -> Client:
    return Client(EID, cid, "Epic Rover", "Rover", "confidential", ("com.epic.rover.oidc://callback",))


async def test_profiles_and_secret_rotation_with_grace(adapters, clock):
    c = adapters["clients"]
    await c.save_profile(AppProfile(client(), template="epic-rover"), None)
    assert (await c.get(EID, "c1")).redirect_uris == ("com.epic.rover.oidc://callback",)
    assert (await c.get_profile(EID, "c1")).template == "epic-rover"
    assert not await c.verify_secret(EID, "c1", "anything")
    await c.set_secret(EID, "c1", "s1", None, None)
    assert (await c.get_profile(EID, "c1")).has_secret
    assert await c.verify_secret(EID, "c1", "s1")
    assert not await c.verify_secret(EID, "c1", "s2")
    assert not await c.verify_secret(EID, "c2", "s1")
    await c.set_secret(EID, "c1", "s2", clock.now + 60, None)
    assert await c.verify_secret(EID, "c1", "s1") and await c.verify_secret(EID, "c1", "s2")
    clock.now += 61
    if isinstance(c, RedisClients):  # Redis compares the grace period against wall-clock time
        await c.set_secret(EID, "c1", "s3", time.time() - 1, None)
        assert not await c.verify_secret(EID, "c1", "s2")
    else:
        assert not await c.verify_secret(EID, "c1", "s1")
    await c.set_secret(EID, "c1", "s4", None, None)
    assert not await c.verify_secret(EID, "c1", "s3") and await c.verify_secret(EID, "c1", "s4")
    assert [p.client.client_id for p in await c.list_profiles(EID)] == ["c1"]
    assert await c.delete_profile(EID, "c1", None)
    assert await c.get(EID, "c1") is None
    assert not await c.verify_secret(EID, "c1", "s4")


def kids(jwks: dict) -> set[str]:
    return {k["kid"] for k in jwks["keys"]}


async def test_keys_publish_next_before_use_and_keep_retired_until_expiry(adapters, clock):
    keys = adapters["keys"]
    assert await keys.jwks(EID) == {"keys": []}
    ring = await keys.create(EID)
    with pytest.raises(Conflict):
        await keys.create(EID)
    jwks = await keys.jwks(EID)
    assert len(jwks["keys"]) == 4 and all(k.get("kid") for k in jwks["keys"])
    assert all("d" not in k for k in jwks["keys"])  # public parts only
    assert {k["kty"] for k in jwks["keys"]} == {"RSA", "EC"}
    rs, es = await keys.signing_key(EID, "RS256"), await keys.signing_key(EID, "ES256")
    assert rs.kid == ring.active("RS256").kid and es.kid == ring.active("ES256").kid
    nxt = {e.kid for e in ring.entries if e.status == "next"}
    assert nxt <= kids(jwks)

    token = jwt.encode({"alg": "ES256", "kid": es.kid, "typ": "JWT"}, {"sub": "x"}, es)
    assert jwt.decode(token, await keys.verification_keys(EID)).claims == {"sub": "x"}

    rotated = await keys.rotate(EID)
    assert {rotated.active("RS256").kid, rotated.active("ES256").kid} == nxt  # next was published first
    assert (await keys.signing_key(EID, "ES256")).kid in nxt
    after = kids(await keys.jwks(EID))
    assert es.kid in after and rs.kid in after and len(after) == 6
    assert jwt.decode(token, await keys.verification_keys(EID)).claims == {"sub": "x"}

    clock.now += 601  # every token the retired keys signed has expired
    assert kids(await keys.jwks(EID)) == after - {es.kid, rs.kid}
    with pytest.raises(LookupError):
        await keys.rotate("nobody")


async def test_jwks_is_the_same_object_until_it_changes(adapters):
    keys = adapters["keys"]
    await keys.create(EID)
    first = await keys.jwks(EID)
    assert await keys.jwks(EID) is first
    await keys.rotate(EID)
    assert await keys.jwks(EID) is not first


async def test_org_settings_apply_only_newer(adapters):
    org = adapters["org"]
    assert await org.get(EID) == OrgSettings()
    assert await org.apply(EID, OrgSettings(require_second_factor=False), "e2", 200.0)
    assert not (await org.get(EID)).require_second_factor
    assert not await org.apply(EID, OrgSettings(require_second_factor=True), "e2", 200.0)  # redelivery
    assert not await org.apply(EID, OrgSettings(require_second_factor=True), "e1", 100.0)  # older
    assert not (await org.get(EID)).require_second_factor
    assert await org.get("other") == OrgSettings()


async def test_browser_sessions(adapters):
    s = adapters["sessions"]
    cookie, session = await s.create(EID, "u1", ("pwd", "otp"))
    found = await s.get(EID, cookie)
    assert found == session and found.amr == ("pwd", "otp")
    assert await s.get("other", cookie) is None
    assert await s.get(EID, "forged") is None and await s.get(EID, None) is None
    await s.end(EID, session.sid)
    assert await s.get(EID, cookie) is None


async def test_outbox_event_survives_until_published(redis_client):
    from lanyard.idp.adapters.outbox import OutboxPublisher

    r = redis_client
    d = RedisDirectory(r)
    event = GroupUpserted(enterprise_id=EID, producer="idp", payload=GroupUpsertedPayload(group_id="g1", name="Nurses"))
    await d.save_group(Group(EID, "g1", "Nurses"), event)
    sink = memory.MemoryPublisher()
    now = time.time()
    assert await OutboxPublisher(r, sink, grace_s=5).relay(now) == 0  # the request path's grace period
    assert await OutboxPublisher(r, sink, grace_s=5).relay(now + 6) == 1  # a crash before publishing loses nothing
    assert [e.event_id for e in sink.events] == [event.event_id]
    assert await OutboxPublisher(r, sink, grace_s=5).relay(now + 100) == 0


async def test_an_unacknowledged_event_is_relayed_while_the_process_runs(redis_client):
    """The relay used to run only at start-up: an event whose publish failed waited for a restart."""
    from lanyard.idp.adapters.outbox import OutboxPublisher

    class Flaky(memory.MemoryPublisher):
        down = True

        async def publish(self, event):
            if self.down:
                raise ConnectionError("broker away")
            await super().publish(event)

    sink = Flaky()
    outbox = OutboxPublisher(redis_client, sink, grace_s=0, retry_s=0.5)
    event = GroupUpserted(
        enterprise_id=EID, producer="idp", payload=GroupUpsertedPayload(group_id="g2", name="Porters")
    )
    await RedisDirectory(redis_client).save_group(Group(EID, "g2", "Porters"), event)
    with pytest.raises(ConnectionError):
        await outbox.publish(event)  # the admin call fails; the event is kept
    now = time.time()
    with pytest.raises(ConnectionError):
        await outbox.relay(now)  # still down: put back for the next round, not for a 30 s lease
    sink.down = False
    assert await outbox.relay(now + 0.6) == 1
    assert [e.event_id for e in sink.events] == [event.event_id] and await outbox.outbox.size() == 0


async def test_a_code_and_a_refresh_token_are_read_with_their_users_status(redis_client):
    """The token endpoint's one read: the code (or refresh token), its grant and the user's
    status in one step, so a user disabled after the authorization redeems and refreshes nothing."""
    from lanyard.idp.adapters.redis_directory import user_key
    from lanyard.idp.adapters.redis_oidc import OidcStore
    from lanyard.idp.oidc.domain import Grant

    directory = RedisDirectory(redis_client)
    store = OidcStore(redis_client, user_key=user_key)
    unread = OidcStore(redis_client)  # not given the directory's key: the caller asks the directory

    async def issue(code: str, gid: str, uid: str = "u1") -> None:
        grant = Grant(gid=gid, state="issued", client_id="rp", user_id=uid, sid="sid-1", dsid=None, scope=("openid",),
                      auth_time=1, amr=("pwd",), acr="1", nonce=None, claims={})  # fmt: skip
        record = {"gid": gid, "sid": "sid-1", "client_id": "rp", "redirect_uri": "https://rp/cb"}
        assert await store.create_code(EID, code, record, grant, 60, 600)

    await directory.save_user(user(), None)
    await issue("code-1", "g1")
    won, record, grant, status = await store.consume_code(EID, "code-1")
    assert (won, record["gid"], grant.user_id, status) == (True, "g1", "u1", "active")
    assert await store.consume_code(EID, "code-1") == (False, record, None, None)  # a replay

    await directory.save_user(replace(user(), status="disabled"), None)
    await issue("code-2", "g2")
    assert (await store.consume_code(EID, "code-2"))[3] == "disabled"
    await issue("code-3", "g3", uid="nobody")
    assert (await store.consume_code(EID, "code-3"))[3] == ""
    await issue("code-4", "g4")
    assert (await unread.consume_code(EID, "code-4"))[3] is None
    assert await store.consume_code(EID, "never-issued") == (False, None, None, None)

    # A refresh reads the same status with its token (the grant of code-1, activated).
    assert await store.activate_grant(EID, grant, "rt-1", 600)
    assert (await store.read_refresh_and_view(EID, "rt-1"))[3] == "disabled"  # u1 was disabled above
    await directory.save_user(user(), None)
    assert (await store.read_refresh_and_view(EID, "rt-1"))[3] == "active"
    assert (await unread.read_refresh_and_view(EID, "rt-1"))[3] is None
