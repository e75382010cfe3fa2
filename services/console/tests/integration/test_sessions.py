"""Console sessions and pending sign-ins on the real Redis: idle timeout, absolute end, one-time
sign-in state bound to the browser that started it, nothing usable stored in clear."""

import time

import pytest

from lanyard.console.adapters.identity import PendingSignIn, Tokens
from lanyard.console.adapters.redis_sessions import SessionStore
from lanyard.runtime.testing import eventually

pytestmark = pytest.mark.integration


def tokens() -> Tokens:
    return Tokens("at", time.time() + 300, "rt", "idt", "usr_1", "root", "Root", ("superadmin",))


async def test_a_session_ends_after_the_idle_timeout_and_use_keeps_it_alive(redis_client):
    store = SessionStore(redis_client, idle_timeout_s=2, session_max_s=3600, login_ttl_s=60)
    cookie, session = await store.create(tokens(), "acme")
    assert cookie not in str(await redis_client.keys("*")), "only a hash of the cookie is stored"
    for _ in range(3):  # used every second: still alive after longer than the idle timeout
        assert (await store.get(cookie)) is not None
        time.sleep(1)  # noqa: ASYNC251 - the idle clock is Redis's; nothing to poll for yet
    assert (await store.get(cookie)).roles == ("superadmin",)

    async def gone() -> bool:  # looks without using the session (a get would renew it)
        return not await redis_client.exists(session.key)

    await eventually(gone, 5, interval=0.2, what="the idle session expired")
    assert await store.get(cookie) is None


async def test_a_session_never_outlives_its_absolute_end(redis_client):
    store = SessionStore(redis_client, idle_timeout_s=3600, session_max_s=1, login_ttl_s=60)
    cookie, _ = await store.create(tokens(), "acme")

    async def gone() -> bool:
        return await store.get(cookie) is None

    await eventually(gone, 5, interval=0.2, what="the session ended at its absolute end")


async def test_a_sign_in_is_finished_once_and_only_by_the_browser_that_started_it(redis_client):
    store = SessionStore(redis_client, idle_timeout_s=60, session_max_s=60, login_ttl_s=60)
    pending = PendingSignIn("acme", "state-1", "nonce", "verifier", "/console/e/acme/")
    binding = await store.park_sign_in(pending)
    assert await store.take_sign_in("state-1", "another-browser") is None
    again = PendingSignIn("acme", "state-2", "nonce", "verifier", "/console/e/acme/")
    binding = await store.park_sign_in(again)
    assert await store.take_sign_in("state-2", binding) == again
    assert await store.take_sign_in("state-2", binding) is None, "a state is used once"
    assert await store.take_sign_in(None, binding) is None and await store.take_sign_in("x" * 500, binding) is None
