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


def test_services_principal_create_list_revoke_and_the_mdm_profile(kafka_bootstrap, redis_url, capsys):
    assert main(["services-principal", "create", "--name", "Imprivata Services (CLI)", "--scope", "read"]) == 0
    out = capsys.readouterr()
    lines = dict(line.split(": ", 1) for line in out.out.splitlines())
    principal, secret = lines["principal id"], lines["secret"]
    assert principal.startswith("svc_") and len(secret) >= 43 and lines["scopes"] == "read"
    assert "shown once" in out.err

    async def stored() -> tuple[str | None, str | None]:
        r = create_redis(redis_url)
        record = await r.get(f"idp:_services:principal:{principal}")
        digest = await r.get(f"idp:_services:principal-secret:{principal}")
        await r.aclose()
        return record, digest

    record, digest = asyncio.run(stored())
    assert secret not in record and secret not in (digest or "") and len(digest) == 64  # a hash, never the secret
    assert main(["services-principal", "list"]) == 0
    listed = capsys.readouterr().out
    assert principal in listed and "active" in listed and secret not in listed
    assert main(["services-principal", "revoke", "--principal-id", principal]) == 0
    assert asyncio.run(stored())[1] is None
    assert main(["services-principal", "revoke", "--principal-id", "svc_nobody"]) == 1
    assert main(["services-principal", "create", "--name", "   "]) == 2

    assert main(["mdm-profile"]) == 0
    profile = capsys.readouterr().out
    assert "com.apple.extensiblesso" in profile and "<string>http://127.0.0.1:8480</string>" in profile
