"""The query API: roles, tenant scoping, filters, pagination, access answers, gaps and exports."""

import csv
import io
import json

import httpx
import pytest

from lanyard.audit.adapters.sqlite_store import SqliteLog
from lanyard.audit.app import create_app
from lanyard.audit.domain import Position, entry_from_json
from lanyard.audit.settings import AuditSettings
from lanyard.harness.synthetic import generate_day
from lanyard.runtime.tokens import TestIssuer, TokenVerifier

BASE = "http://issuer.test"
EID = "ent-api"


@pytest.fixture(scope="module")
def issuer():
    return TestIssuer(BASE)


def positioned(events, partition):
    offsets: dict[str, int] = {}
    for e in events:
        offsets[e.topic.name] = offsets.get(e.topic.name, -1) + 1
        yield entry_from_json(json.loads(e.to_json()), Position(e.topic.name, partition, offsets[e.topic.name]))


@pytest.fixture(scope="module")
def filled(tmp_path_factory):
    """One log file for the whole module (every test here only reads)."""
    path = tmp_path_factory.mktemp("audit") / "audit.sqlite"
    day = generate_day(EID, devices=2, users=4, shifts=1)
    log = SqliteLog(path, "NORMAL")
    for entry in positioned(day.events, 0):
        log.append(entry)
    for entry in positioned(generate_day("ent-other", devices=1, users=2, shifts=1).events, 1):
        log.append(entry)
    log.close()
    return path, day


@pytest.fixture
async def env(filled, issuer):
    path, day = filled
    settings = AuditSettings(db_path=path, consume=False, public_base_url=BASE, max_page=50)
    app = create_app(settings, verifier=TokenVerifier(BASE, issuer.static_jwks()))
    store = app.state.store
    token = issuer.admin_token(EID, "auditor-1", "auditor")
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://audit", headers={"Authorization": f"Bearer {token}"}
    )
    yield client, issuer, day
    await client.aclose()
    await store.close()


async def test_only_auditors_and_superadmins_of_the_enterprise_may_read(env):
    client, issuer, _ = env
    url = f"/audit/e/{EID}/records"
    assert (await client.get(url, headers={"Authorization": ""})).status_code == 401
    admin = issuer.admin_token(EID, "a", "admin")
    assert (await client.get(url, headers={"Authorization": f"Bearer {admin}"})).status_code == 403
    superadmin = issuer.admin_token(EID, "s", "superadmin")
    assert (await client.get(url, headers={"Authorization": f"Bearer {superadmin}"})).status_code == 200
    foreign = issuer.admin_token("ent-other", "x", "auditor")
    assert (await client.get(url, headers={"Authorization": f"Bearer {foreign}"})).status_code == 401


async def test_records_page_by_cursor_and_stay_in_the_enterprise(env):
    client, _, day = env
    seen, after = [], 0
    while True:
        body = (await client.get(f"/audit/e/{EID}/records", params={"after": after, "limit": 50})).json()
        seen += body["records"]
        if body["next_cursor"] is None:
            break
        after = body["next_cursor"]
    assert len(seen) == len(day.events)
    assert {r["event_id"] for r in seen} == {e.event_id for e in day.events}
    assert all(r["enterprise_id"] == EID for r in seen)
    assert [r["seq"] for r in seen] == sorted(r["seq"] for r in seen)


async def test_filters_by_user_device_app_session_type_time_and_admin_actions(env):
    client, _, day = env
    s = day.sessions[0]
    url = f"/audit/e/{EID}/records"
    by_user = (await client.get(url, params={"user_id": s.user_id, "limit": 50})).json()["records"]
    assert by_user and all(r["user_id"] == s.user_id for r in by_user)
    params = {"device_id": s.device_id, "type": ["session.device_checked_out.v1", "session.device_checked_in.v1"]}
    by_device = (await client.get(url, params=params)).json()["records"]
    assert {r["type"] for r in by_device} == set(params["type"]) and all(
        r["device_id"] == s.device_id for r in by_device
    )
    window = {
        "device_session_id": s.device_session_id,
        "since": s.checked_out_at.isoformat(),
        "until": s.checked_in_at.isoformat(),
    }
    in_window = (await client.get(url, params=window)).json()["records"]
    assert in_window[0]["type"] == "session.device_checked_out.v1"
    assert "session.device_checked_in.v1" not in {r["type"] for r in in_window}
    by_app = (await client.get(url, params={"client_id": s.apps[0], "type": "entitlement.granted.v1"})).json()[
        "records"
    ]
    assert any(r["device_session_id"] == s.device_session_id for r in by_app)
    admin = (await client.get(url, params={"category": "admin"})).json()["records"]
    assert len(admin) == len(day.admin_events)
    assert all(r["admin_action"] and r["actor"].startswith("admin-") for r in admin)
    profile = next(r for r in admin if r["type"] == "app_profile.upserted.v1")
    assert profile["actor"] == "admin-super"


def assert_error(r, status: int, error: str = "invalid_request") -> str:
    assert r.status_code == status, r.text
    assert set(r.json()) == {"error", "error_description"} and r.json()["error"] == error, r.json()
    return r.json()["error_description"]


async def test_bad_input_is_a_clear_400_that_names_the_parameter_not_its_value(env):
    client, _, _ = env
    r = await client.get(f"/audit/e/{EID}/records", params={"since": "not a time, 0123-secret"})
    assert "query.since" in assert_error(r, 400) and "0123-secret" not in r.text
    too_big = await client.get(f"/audit/e/{EID}/records", params={"limit": 51})
    assert assert_error(too_big, 400) == "limit must be at most 50"
    assert "query.client_id: Field required" in assert_error(
        await client.get(f"/audit/e/{EID}/access", params={"device_id": "d"}), 400
    )
    r = await client.get(f"/audit/e/{EID}/export", params={"format": "xml-with-p4ssw0rd"})
    assert "query.format" in assert_error(r, 400) and "p4ssw0rd" not in r.text
    r = await client.get(f"/audit/e/{EID}/records", headers={"Authorization": ""})
    assert_error(r, 401, "unauthorized")  # was {"detail": {...}}
    assert r.headers["www-authenticate"] == "Bearer"


async def test_key_sets_are_looked_up_only_for_enterprises_in_the_log(filled, issuer):
    path, _ = filled
    fetched: list[str] = []
    keys = issuer.static_jwks()

    class CountingJwks:
        async def jwks(self, enterprise_id, *, refresh=False):
            fetched.append(enterprise_id)
            return await keys.jwks(enterprise_id, refresh=refresh)

    settings = AuditSettings(db_path=path, consume=False, public_base_url=BASE)
    app = create_app(settings, jwks=CountingJwks())
    token = issuer.admin_token(EID, "auditor-1", "auditor")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://audit", headers={"Authorization": f"Bearer {token}"}
    ) as client:
        for i in range(20):
            r = await client.get(f"/audit/e/made-up-{i}/records")
            assert assert_error(r, 401, "invalid_token") == "unknown enterprise"
        assert fetched == []
        assert (await client.get(f"/audit/e/{EID}/records")).status_code == 200 and fetched == [EID]
    await app.state.store.close()


async def test_who_had_access_to_an_app_on_a_device_at_a_time(env):
    client, _, day = env
    s = day.sessions[1]
    at = s.granted_at + (s.checked_in_at - s.granted_at) / 2
    params = {"client_id": s.apps[0], "device_id": s.device_id, "at": at.isoformat()}
    body = (await client.get(f"/audit/e/{EID}/access", params=params)).json()
    [access] = body["access"]
    assert (access["user_id"], access["device_session_id"]) == (s.user_id, s.device_session_id)
    kinds = [
        "session.device_checked_out.v1",
        "entitlement.granted.v1",
        "session.device_locked.v1",
        "session.face_verified.v1",
        "session.device_checked_in.v1",
        "entitlement.revoked.v1",
    ]
    evidence = (
        await client.get(f"/audit/e/{EID}/records", params={"device_session_id": s.device_session_id, "type": kinds})
    ).json()
    by_seq = {r["seq"]: r["type"] for r in evidence["records"]}
    assert {by_seq[seq] for seq in access["evidence_seqs"]} >= {
        "session.device_checked_out.v1",
        "entitlement.granted.v1",
    }
    not_granted = next(
        a for a in ("epic-rover", "epic-haiku", "vocera", "teams", "mobile-heartbeat") if a not in s.apps
    )
    params["client_id"] = not_granted
    assert (await client.get(f"/audit/e/{EID}/access", params=params)).json()["access"] == []


async def test_exports_stream_jsonl_and_csv_with_the_same_filters(env):
    client, _, day = env
    s = day.sessions[0]
    jsonl = await client.get(f"/audit/e/{EID}/export", params={"device_session_id": s.device_session_id})
    assert jsonl.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in jsonl.text.splitlines()]
    expected = [e.event_id for e in day.events if e.subject.device_session_id == s.device_session_id]
    assert [r["event_id"] for r in lines] == expected
    whole = await client.get(f"/audit/e/{EID}/export", params={"format": "csv"})
    rows = list(csv.DictReader(io.StringIO(whole.text)))
    assert len(rows) == len(day.events)
    assert json.loads(rows[0]["event"])["event_id"] == rows[0]["event_id"]


async def test_gaps_report_is_empty_for_a_complete_day(env):
    client, _, _ = env
    body = (await client.get(f"/audit/e/{EID}/gaps")).json()
    assert body == {"sequence_gaps": [], "offset_gaps": []}


async def test_verification_recomputes_the_chain_and_names_no_event(env, filled):
    client, issuer, _ = env
    r = await client.get(f"/audit/e/{EID}/verification")
    assert r.status_code == 200
    verdict = r.json()
    with_both = SqliteLog(filled[0], "NORMAL", create=False)
    try:
        assert verdict["ok"] is True and verdict["count"] == with_both.count() > 0
    finally:
        with_both.close()
    assert "broken_event_id" not in verdict
    admin = issuer.admin_token(EID, "admin-1", "admin")
    refused = await client.get(f"/audit/e/{EID}/verification", headers={"Authorization": f"Bearer {admin}"})
    assert refused.status_code == 403


async def test_verification_reports_a_tampered_record(tmp_path, issuer):
    path = tmp_path / "audit.sqlite"
    log = SqliteLog(path, "NORMAL")
    for entry in positioned(generate_day(EID, devices=1, users=2, shifts=1).events, 0):
        log.append(entry)
    log.close()
    import sqlite3

    with sqlite3.connect(path) as db:
        db.execute("UPDATE records SET event_json = replace(event_json, 'user', 'resu') WHERE seq = 3")
    settings = AuditSettings(db_path=path, consume=False, public_base_url=BASE)
    app = create_app(settings, verifier=TokenVerifier(BASE, issuer.static_jwks()))
    token = issuer.admin_token(EID, "su", "superadmin")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://audit") as client:
        r = await client.get(f"/audit/e/{EID}/verification", headers={"Authorization": f"Bearer {token}"})
    await app.state.store.close()
    assert r.status_code == 200 and r.json()["ok"] is False and r.json()["broken_seq"] == 3
