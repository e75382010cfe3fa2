"""Every operation of every service's OpenAPI, fuzzed through the gateway (issue 17).

The schemas are the ones the gateway serves at `/_openapi/<service>.json`. For each operation, a
seeded generator draws path and query parameters (hostile strings included) and a body
(arbitrary JSON for the declared fields and others, or a form), sends it with a real superadmin's token, and the
answer must be: not a 5xx, within the client's timeout (no hang), no traceback, and neither the
admin's token nor password in the body. A second test lets Schemathesis generate the cases from
the same schemas (its hypothesis strategies for every parameter and body, the enterprise id held
to the real one so requests reach the handlers) and applies the same checks."""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from lanyard.harness.admin import bootstrap, known_everywhere, sign_in

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

SERVICES = ("idp", "session", "policy", "audit")
SKIP = ("/metrics", "/health/live", "/health/ready")
HOSTILE = ["", "..", "../../etc/passwd", "%00", "a" * 5000, "' OR 1=1 --", "<script>", "\u202e", "{{7*7}}", "-1", "0"]
ROUNDS = 12
"""Requests per operation (≈ 60 operations)."""
SCHEMATHESIS_EXAMPLES = 15
"""Schemathesis cases per operation: bounded so the test stays in tens of seconds."""


def text(rng: random.Random) -> str:
    if rng.random() < 0.4:
        return rng.choice(HOSTILE)
    return "".join(
        chr(rng.choice((rng.randint(32, 126), rng.randint(0x80, 0x2FFF)))) for _ in range(rng.randint(0, 30))
    )


def value(rng: random.Random, depth: int = 0) -> Any:
    """Arbitrary JSON: scalars of every type, hostile strings, nested lists and objects."""
    kind = rng.randint(0, 7 if depth < 3 else 4)
    if kind == 0:
        return None
    if kind == 1:
        return rng.random() < 0.5
    if kind == 2:
        return rng.choice((0, -1, 2**63, 10**30, rng.randint(-1000, 1000)))
    if kind == 3:
        return rng.uniform(-1e9, 1e9)
    if kind == 4:
        return text(rng)
    if kind in (5, 6):
        return [value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {text(rng): value(rng, depth + 1) for _ in range(rng.randint(0, 4))}


@pytest.fixture(scope="module")
def target(stack) -> Iterator[dict[str, Any]]:
    password = "pw-fuzz-superadmin-0123456789"
    enterprise_id = f"fuzz-{uuid.uuid4().hex[:8]}"
    bootstrap(stack.env, enterprise_id, "superadmin", password)

    async def admin_token() -> str:
        async with httpx.AsyncClient(timeout=15) as http:
            ent = await sign_in(stack.base_url, enterprise_id, "superadmin", password, http)
            await known_everywhere(stack.base_url, http, enterprise_id, ent.admin_token)
            return ent.admin_token

    token = asyncio.run(admin_token())
    operations = []
    schemas: dict[str, dict[str, Any]] = {}
    with httpx.Client(timeout=15) as http:
        for service in SERVICES:
            schema = http.get(f"{stack.base_url}/_openapi/{service}.json").json()
            for path, ops in schema["paths"].items():
                if path in SKIP:
                    continue
                for method, op in ops.items():
                    operations.append((service, method.upper(), path, op))
            schemas[service] = schema
    yield {
        "base": stack.base_url,
        "eid": enterprise_id,
        "token": token,
        "password": password,
        "ops": operations,
        "schemas": schemas,
    }


def body_for(op: dict[str, Any], rng: random.Random) -> tuple[str, Any]:
    """A form or a JSON body using the schema's field names (and a stranger one)."""
    content = (op.get("requestBody") or {}).get("content") or {}
    if "application/x-www-form-urlencoded" in content:
        names = list((content["application/x-www-form-urlencoded"].get("schema") or {}).get("properties") or {})
        names = names or ["grant_type", "username", "password", "totp", "refresh_token", "code"]
        return "form", {rng.choice(names): text(rng) for _ in range(rng.randint(0, 5))}
    schema = (content.get("application/json") or {}).get("schema") or {}
    names = list(schema.get("properties") or {}) or ["name", "id", "value"]
    if rng.random() < 0.2:
        return "json", value(rng)
    return "json", {rng.choice([*names, text(rng)]): value(rng) for _ in range(rng.randint(0, len(names) + 1))}


def fuzzed(op: dict[str, Any], path: str, eid: str, rng: random.Random) -> tuple[str, dict[str, Any]]:
    """(url path, query) with every path parameter filled and some query parameters."""
    url, query = path, {}
    for p in op.get("parameters", []):
        v = eid if p["name"] == "enterprise_id" else text(rng).replace("/", "_")
        if p["in"] == "path":
            url = url.replace("{" + p["name"] + "}", quote(v, safe="") or "x")
        elif p["in"] == "query" and rng.random() < 0.7:
            query[p["name"]] = v
    return url, query


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=20) as http:
        yield http


def test_no_operation_answers_5xx_hangs_or_leaks_on_fuzzed_input(target, client):
    rng = random.Random(17)  # a fixed seed replays a failure
    failures = []
    for _service, method, path, op in target["ops"]:
        for _ in range(ROUNDS):
            url, query = fuzzed(op, path, target["eid"], rng)
            kwargs: dict[str, Any] = {"params": query, "headers": {"Authorization": f"Bearer {target['token']}"}}
            if method in ("POST", "PUT", "PATCH"):
                kind, body = body_for(op, rng)
                if kind == "form":
                    kwargs["data"] = body
                else:
                    kwargs["content"] = json.dumps(body).encode()
                    kwargs["headers"]["content-type"] = "application/json"
            r = client.request(method, target["base"] + url, **kwargs)  # a hang raises ReadTimeout
            where = f"{method} {path} -> {r.status_code}"
            if r.status_code >= 500:
                failures.append((where, url[:120], r.text[:200]))
            assert "Traceback" not in r.text and 'File "' not in r.text, where
            assert target["token"] not in r.text and target["password"] not in r.text, where
    assert failures == []


def judged(response: Any, where: str, target: dict[str, Any]) -> str | None:
    """The shared verdict on one answer: a failure description, or None."""
    text = response.text
    assert "Traceback" not in text and 'File "' not in text, where
    assert target["token"] not in text and target["password"] not in text, where
    return f"{where} -> {response.status_code}: {text[:200]}" if response.status_code >= 500 else None


def fuzz_operation(operation: Any, service: str, target: dict[str, Any], failures: list[str]) -> int:
    """Schemathesis's cases for one operation, each sent through the gateway and judged; how many."""
    sent = 0
    headers = {"Authorization": f"Bearer {target['token']}"}

    def pinned(case: Any) -> Any:
        if case.path_parameters and "enterprise_id" in case.path_parameters:
            case.path_parameters["enterprise_id"] = target["eid"]
        return case

    @settings(
        max_examples=SCHEMATHESIS_EXAMPLES,
        deadline=None,
        derandomize=True,  # a failure replays
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy().map(pinned))
    def run(case: Any) -> None:
        nonlocal sent
        sent += 1
        response = case.call(base_url=target["base"], headers=headers, timeout=20)  # a hang raises
        failure = judged(response, f"{service} {operation.label}", target)
        if failure:
            failures.append(failure)

    run()
    return sent


def test_schemathesis_cases_from_every_schema_get_no_5xx_hang_or_leak(target):
    failures: list[str] = []
    operations = cases = 0
    for service, raw in target["schemas"].items():
        raw = {**raw, "paths": {p: ops for p, ops in raw["paths"].items() if p not in SKIP}}
        for result in schemathesis.openapi.from_dict(raw).get_all_operations():
            cases += fuzz_operation(result.ok(), service, target, failures)
            operations += 1
    print(f"schemathesis: {cases} cases over {operations} operations")
    assert operations >= 40  # every service's schema was read, not an empty one
    assert cases >= 5 * operations  # cases were generated and sent, not skipped
    assert failures == []
