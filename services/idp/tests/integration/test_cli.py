"""`python -m lanyard.idp bootstrap` and `keys rotate` against the real Redis and Kafka."""

from __future__ import annotations

import asyncio
import json

import pytest

from lanyard.idp.cli import main
from lanyard.runtime.redis import create_redis

pytestmark = pytest.mark.integration


def test_bootstrap_is_refused_the_second_time_and_keys_rotate(kafka_bootstrap, redis_url, monkeypatch, capsys):
    async def flush() -> None:
        r = create_redis(redis_url)
        await r.flushall()
        await r.aclose()

    async def ring() -> dict:
        r = create_redis(redis_url)
        raw = await r.get("idp:cli-ent:keys")
        await r.aclose()
        return json.loads(raw)["ring"]

    asyncio.run(flush())
    monkeypatch.setenv("LANYARD_BOOTSTRAP_PASSWORD", "a long enough password")
    args = ["bootstrap", "--enterprise-id", "cli-ent", "--name", "CLI", "--superadmin", "root"]
    assert main(args) == 0
    assert "created enterprise cli-ent" in capsys.readouterr().out
    before = asyncio.run(ring())
    assert main(args) == 1  # refuses to overwrite
    assert "exists already" in capsys.readouterr().err
    assert asyncio.run(ring()) == before
    assert main(["keys", "rotate", "--enterprise-id", "cli-ent"]) == 0
    assert asyncio.run(ring())["version"] == before["version"] + 1
    assert main(["keys", "rotate", "--enterprise-id", "nobody"]) == 1
