"""CachedClients: registrations (and unknown ids) are remembered for a while, secrets never are."""

from dataclasses import replace

from lanyard.idp.directory.ports import CachedClients, Client


class CountingClients:
    """A `Clients` that counts how often it is read."""

    def __init__(self) -> None:
        self.reads = 0
        self.secret_checks = 0
        self.by_id: dict[tuple[str, str], Client] = {}

    async def get(self, enterprise_id: str, client_id: str) -> Client | None:
        self.reads += 1
        return self.by_id.get((enterprise_id, client_id))

    async def verify_secret(self, enterprise_id: str, client_id: str, secret: str) -> bool:
        self.secret_checks += 1
        return secret == "s3cret"


def _client(uri: str) -> Client:
    return Client("e1", "portal", "Portal", "Portal", "confidential", ("https://portal.example/cb",), (), uri)


async def test_a_registration_is_read_once_then_remembered_until_its_ttl():
    now = [100.0]
    inner = CountingClients()
    inner.by_id[("e1", "portal")] = _client("https://portal.example/bcl")
    cached = CachedClients(inner, 10, ttl_s=5.0, clock=lambda: now[0])
    for _ in range(3):
        found = await cached.get("e1", "portal")
        assert found is not None and found.backchannel_logout_uri == "https://portal.example/bcl"
    assert inner.reads == 1
    inner.by_id[("e1", "portal")] = replace(inner.by_id[("e1", "portal")], backchannel_logout_uri="https://new/bcl")
    now[0] += 5.0  # the edit reaches the cache once the entry is ttl_s old
    found = await cached.get("e1", "portal")
    assert found is not None and found.backchannel_logout_uri == "https://new/bcl" and inner.reads == 2


async def test_unknown_ids_are_remembered_and_bounded():
    inner = CountingClients()
    cached = CachedClients(inner, 2, ttl_s=5.0)
    assert await cached.get("e1", "nobody") is None and await cached.get("e1", "nobody") is None
    assert inner.reads == 1
    for i in range(5):
        await cached.get("e1", f"made-up-{i}")
    assert len(cached) == 2


async def test_secrets_are_always_checked_by_the_store():
    inner = CountingClients()
    cached = CachedClients(inner, 10, ttl_s=5.0)
    assert await cached.verify_secret("e1", "portal", "s3cret")
    assert not await cached.verify_secret("e1", "portal", "wrong")
    assert inner.secret_checks == 2
