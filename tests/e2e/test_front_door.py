"""Issue 14, the front door, on the whole stack through the gateway: the demo seed (idempotent),
the `lanyard` CLI driving a checkout, an SSO and a checkin by hand, the admin commands, `make
demo`'s script as a subprocess against rover-demo (a separate process with its own OIDC library),
and what the gateway serves besides the services (OpenAPI, apple-app-site-association)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import plistlib
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from lanyard.cli import apidocs
from lanyard.cli.main import cli
from lanyard.contracts import topics
from lanyard.harness.admin import known_everywhere, totp_now
from lanyard.harness.stack import Stack
from lanyard.runtime.testing import consumer_lag, eventually, free_port

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

INACTIVITY_S = 3  # the face policy's timeout: the demo waits this long for the lock


@pytest.fixture(scope="module")
def demo(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The demo enterprise seeded through the CLI, and rover-demo running beside the stack."""
    work = tmp_path_factory.mktemp("front-door")
    demo_file = work / "demo.json"
    port = free_port()
    env = {
        **stack.env,
        "LANYARD_GATEWAY": stack.base_url,
        "LANYARD_DEMO_FILE": str(demo_file),
        "LANYARD_DEVICE_FILE": str(work / "device.json"),
    }
    args = [
        "demo", "seed", "--gateway", stack.base_url, "--enterprise-id", f"st-mungos-{uuid.uuid4().hex[:6]}",
        "--rover-demo-url", f"http://127.0.0.1:{port}", "--inactivity", str(INACTIVITY_S), "--quiet", "--json",
    ]  # fmt: skip
    seeded = CliRunner(env=env).invoke(cli, args)
    assert seeded.exit_code == 0, seeded.output
    assert json.loads(seeded.stdout)["seeded"] is True
    log = (work / "rover-demo.log").open("wb")
    rover_demo = subprocess.Popen(
        [sys.executable, "-m", "lanyard.rover_demo", "--demo-file", str(demo_file), "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert rover_demo.poll() is None, (work / "rover-demo.log").read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "rover-demo did not start"
            time.sleep(0.1)
        yield {"env": env, "file": demo_file, "state": json.loads(demo_file.read_text())}
    finally:
        rover_demo.terminate()
        rover_demo.wait(10)
        log.close()


def lanyard(demo: dict[str, Any], *args: str) -> tuple[int, Any]:
    """Run a `lanyard` command in-process with --json; (exit code, parsed stdout)."""
    result = CliRunner(env=demo["env"]).invoke(cli, [*args, "--json"])
    try:
        body = json.loads(result.stdout) if result.stdout.strip() else None
    except ValueError:
        pytest.fail(f"not JSON: {result.stdout!r} {result.stderr!r}")
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, body


def test_seed_is_idempotent_and_makes_the_enterprise_ready(demo):
    state = demo["state"]
    assert demo["file"].stat().st_mode & 0o077 == 0, "the demo file holds secrets: owner only"
    assert set(state["users"]) == {"nurse.jane", "dr.oliver", "nurse.sam"}
    assert all(u["otpauth_uri"].startswith("otpauth://totp/") for u in state["users"].values())
    code, again = lanyard(
        demo, "demo", "seed", "--gateway", state["gateway"], "--enterprise-id", state["enterprise_id"]
    )
    assert code == 0 and again["seeded"] is False
    code, report = lanyard(demo, "admin", "readiness")
    assert code == 0 and report["ready"] is True, report
    code, why = lanyard(demo, "admin", "why-not", "nurse.sam")
    assert code == 0 and why["allowed"] is False and why["reason"] == "policy_sso_disabled"
    code, why = lanyard(demo, "admin", "why-not", "nurse.jane", "--client", state["apps"]["rover"]["client_id"])
    assert code == 0 and why["allowed"] is True and why["grant"]["auth_mode"] == "face"

    # The console's demo superadmin signs in with password and TOTP, never with the password alone.
    console = state["console_admin"]
    token_url = f"{state['gateway']}/e/{state['enterprise_id']}/admin/token"
    form = {"username": console["username"], "password": console["password"]}
    alone = httpx.post(token_url, data=form)
    assert alone.status_code in (400, 401) and alone.json()["error"] == "second_factor_required", alone.text
    signed_in = httpx.post(token_url, data={**form, "totp": totp_now(console["totp_secret"])})
    assert signed_in.status_code == 200, signed_in.text
    payload = signed_in.json()["access_token"].split(".")[1]
    roles = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["roles"]
    assert "superadmin" in roles


def test_cli_drives_checkout_sso_and_checkin_by_hand(demo):
    oliver = demo["state"]["users"]["dr.oliver"]
    code, enrolled = lanyard(demo, "locker", "enrol")
    assert code == 0 and enrolled["device_id"].startswith("iphone-")
    assert lanyard(demo, "locker", "enrol")[0] == 1, "a second enrol without --new is refused"

    code, refused = lanyard(demo, "locker", "checkout", "--user", "dr.oliver", "--totp", "000000")
    assert code == 1 and refused["error"] == "invalid_grant", refused  # the product's own error

    code, session = lanyard(demo, "locker", "checkout", "--user", "dr.oliver")
    assert code == 0 and session["state"] == "ACTIVE" and session["auth_mode"] == "passcode", session
    code, tokens = lanyard(demo, "locker", "sso", "rover")
    assert code == 0, tokens
    assert tokens["id_token_claims"]["sub"] == oliver["user_id"]
    assert tokens["access_token_claims"]["dsid"] == session["device_session_id"]
    code, live = lanyard(demo, "admin", "sessions")
    assert code == 0 and session["device_session_id"] in {s["device_session_id"] for s in live}
    assert lanyard(demo, "locker", "heartbeat")[0] == 0
    # The README's web sign-in: rover-demo's /login through the extension, no password typed.
    rover_demo = demo["state"]["rover_demo_url"]
    code, page = lanyard(demo, "locker", "browse", f"{rover_demo}/login")
    assert code == 0 and page["status"] == 200 and page["url"] == f"{rover_demo}/", page
    sid = tokens["id_token_claims"]["sid"]

    def sign_in() -> dict[str, Any]:
        found = httpx.get(f"{rover_demo}/api/sign-ins", timeout=10).json()["sign_ins"]
        return next(s for s in found if s["sid"] == sid)

    assert sign_in()["username"] == "dr.oliver" and sign_in()["logged_out_at"] is None

    code, closed = lanyard(demo, "locker", "checkin")
    assert code == 0 and closed["state"] == "CLOSED" and closed["closed_reason"] == "user"

    async def logged_out() -> bool:
        return sign_in()["logged_out_at"] is not None

    asyncio.run(eventually(logged_out, 30, 0.1, what="rover-demo received the back-channel logout"))
    assert "back-channel logout" in sign_in()["logout_reason"]
    code, missing = lanyard(demo, "locker", "sso", "rover")
    assert code == 4 and missing["error"] == "missing_state", "no checkout left on the device"

    nowhere = f"http://127.0.0.1:{free_port()}"
    code, down = lanyard(demo, "admin", "readiness", "--gateway", nowhere, "--enterprise", "x", "--token", "t")
    assert code == 3 and down["error"] == "unreachable"


def test_cli_face_mode_refusal_shows_the_products_error(demo):
    device = str(demo["file"].parent / "face-device.json")
    assert lanyard(demo, "locker", "enrol", "--device-file", device)[0] == 0
    code, session = lanyard(demo, "locker", "checkout", "--device-file", device, "--badge", "badge-1001")
    assert code == 0 and session["auth_mode"] == "face", session
    code, refused = lanyard(demo, "locker", "sso", "rover", "--device-file", device)
    assert code == 1 and refused["error"] == "interaction_required"
    assert refused["lanyard_action"] == "face_verification"
    code, face = lanyard(demo, "locker", "face", "--device-file", device)
    assert code == 0 and face["verified"] is True
    code, tokens = lanyard(demo, "locker", "sso", "rover", "--device-file", device)
    assert code == 0 and "hwk" in tokens["id_token_claims"]["amr"], tokens
    code, _ = lanyard(demo, "locker", "checkin", "--device-file", device)
    assert code == 0


def test_cli_admin_users_profiles_and_audit(demo, kafka_bootstrap):
    code, user = lanyard(demo, "admin", "users", "add", "nurse.kim", "--badge", "badge-9001")
    assert code == 0 and user["otpauth_uri"].startswith("otpauth://totp/") and user["password"]
    code, users = lanyard(demo, "admin", "users", "list")
    assert "nurse.kim" in {u["username"] for u in users}
    code, profile = lanyard(demo, "admin", "app-profiles", "add", "--template", "epic-rover")
    # The seed: "A Client ID and Client secret are created" (confidential, PKCE still required).
    assert code == 0 and profile["display_name"] == "Rover" and profile["client_type"] == "confidential"
    assert profile["client_secret"] and profile["require_pkce"] is True
    code, native = lanyard(demo, "admin", "app-profiles", "add", "--template", "epic-rover", "--public")
    assert code == 0 and native["client_type"] == "public" and native["client_secret"] is None
    code, meta = lanyard(demo, "admin", "app-profiles", "metadata", profile["client_id"])
    assert code == 0 and meta["issuer"] == demo["state"]["issuer"]
    code, bad = lanyard(demo, "admin", "app-profiles", "add", "--name", "X", "--redirect-uri", "http://evil.example/cb")
    assert code == 1 and bad["error"] == "invalid_redirect_uri"
    code, deployed = lanyard(demo, "admin", "deploy", profile["client_id"], "--user", "nurse.kim")
    assert code == 0 and deployed["users"] == [user["user_id"]]

    # The whole-chain check reads the live log file: let the audit service catch up first.
    async def audit_caught_up():
        return await consumer_lag(kafka_bootstrap, "lanyard-audit", [t.name for t in topics.TOPICS]) == 0

    asyncio.run(eventually(audit_caught_up, 60, 0.2, what="the audit service consumed every topic"))
    code, verdict = lanyard(demo, "admin", "audit-verify", "--db", demo["env"]["LANYARD_AUDIT_DB_PATH"])
    assert code == 0 and verdict["ok"] is True and verdict["records"] > 0 and verdict["chain"]["ok"], verdict


STORY = [
    "readiness (policy service)",
    "MDM enrols a shared iPhone",
    "checkout: nurse.jane, password + TOTP",
    "entitlement granted (policy → session)",
    "face verification (signed by the device key)",
    "SSO into Epic Rover (authorize + token)",
    "SSO into rover-demo (web view, authlib)",
    "inactivity lock (session timer)",
    "while LOCKED: Rover asks again",
    "face unlock",
    "SSO into Rover after the unlock",
    "checkin (Locker app)",
    "→ Rover's access token: introspection",
    "→ Rover's refresh token",
    "→ rover-demo: its own introspection",
    "→ rover-demo: back-channel logout",
    "after checkin: Rover asks for SSO",
]
"""`make demo`'s timeline, step by step (what a user watching it sees)."""


def test_make_demo_plays_the_whole_story(demo):
    """`make demo` is `lanyard demo play`: run it as a process, as make does."""
    env = {**os.environ, **demo["env"]}
    done = subprocess.run(
        [str(Path(sys.executable).with_name("lanyard")), "demo", "play", "--json"],
        env=env,
        capture_output=True,
        timeout=120,
    )
    timeline = json.loads(done.stdout)
    assert "steps" in timeline, (timeline, done.stderr.decode()[-2000:])
    failed = [s for s in timeline["steps"] if not s["ok"]]
    assert done.returncode == 0 and timeline["ok"] and not failed, (failed, done.stderr.decode()[-2000:])
    steps = {s["step"]: s for s in timeline["steps"]}
    assert list(steps) == STORY, "every step of the story, in order, each with its effect observed"
    assert "LOCKED" in steps["inactivity lock (session timer)"]["observed"]
    assert steps["→ rover-demo: back-channel logout"]["latency_ms"] is not None
    assert "inactive" in steps["→ rover-demo: its own introspection"]["observed"]
    assert steps["after checkin: Rover asks for SSO"]["observed"].startswith("login_required")
    page = httpx.get(demo["state"]["rover_demo_url"] + "/", timeout=10).text
    assert "Logged out at" in page and "back-channel logout" in page, "rover-demo's page shows when and why"


def test_gateway_serves_openapi_and_the_apple_association(demo, stack):
    for service in apidocs.SERVICES:
        served = httpx.get(f"{stack.base_url}/_openapi/{service}.json", timeout=10).json()
        assert served == json.loads((apidocs.DOCS / "openapi" / f"{service}.json").read_text()), service
    aasa = httpx.get(f"{stack.base_url}/.well-known/apple-app-site-association", timeout=10)
    assert aasa.status_code == 200 and aasa.headers["content-type"] == "application/json"
    code, exported = lanyard(demo, "admin", "mobileconfig")
    assert code == 0
    profile = plistlib.loads(exported["mobileconfig"].encode())
    sso = profile["PayloadContent"][0]
    # The origin, not the issuer: one profile for every enterprise of the host (docs/mdm.md).
    assert sso["Type"] == "Redirect" and sso["URLs"] == [stack.base_url]
    assert "apple-app-site-association" in profile["PayloadDescription"]
    # The extension the profile installs is the app the host's association file vouches for.
    assert aasa.json() == {"authsrv": {"apps": [f"{sso['TeamIdentifier']}.{sso['ExtensionIdentifier']}"]}}


def test_cli_admin_bootstrap_login_force_checkin_and_enrolment_display(demo, stack):
    new_id = f"hosp-{uuid.uuid4().hex[:6]}"
    boss = {**demo["env"], "LANYARD_BOOTSTRAP_PASSWORD": "a-long-bootstrap-passphrase"}
    made = CliRunner(env=boss).invoke(
        cli, ["admin", "bootstrap", "--enterprise-id", new_id, "--name", "New", "--superadmin", "boss", "--json"]
    )
    assert made.exit_code == 0, made.output
    assert json.loads(made.stdout)["issuer"] == f"{stack.base_url}/e/{new_id}"
    again = CliRunner(env=boss).invoke(
        cli, ["admin", "bootstrap", "--enterprise-id", new_id, "--name", "New", "--superadmin", "boss", "--json"]
    )
    assert again.exit_code == 1 and json.loads(again.stdout)["error"] == "enterprise_exists"

    as_boss = {**demo["env"], "LANYARD_ADMIN_PASSWORD": "a-long-bootstrap-passphrase"}
    login = CliRunner(env=as_boss).invoke(cli, ["admin", "login", "-e", new_id, "--admin", "boss", "--json"])
    assert login.exit_code == 0, login.output
    token = json.loads(login.stdout)["access_token"]

    async def known() -> None:  # the policy service hears of a new enterprise from the IdP's event
        async with httpx.AsyncClient(timeout=10) as http:
            await known_everywhere(stack.base_url, http, new_id, token)

    asyncio.run(known())
    code, report = lanyard(demo, "admin", "readiness", "-e", new_id, "--token", token)
    assert code == 1 and report["ready"] is False, "a bare enterprise is not ready: exit 1 with the table"
    assert {c["check"] for c in report["checks"] if c["status"] == "fail"} >= {"Single Sign On licensed"}

    # Force checkin: an admin ends someone's live device session; the Locker sees it closed.
    device = str(demo["file"].parent / "forced-device.json")
    assert lanyard(demo, "locker", "enrol", "--device-file", device)[0] == 0
    code, session = lanyard(demo, "locker", "checkout", "--device-file", device, "--user", "dr.oliver")
    assert code == 0, session
    code, closed = lanyard(demo, "admin", "force-checkin", session["device_session_id"])
    assert code == 0 and closed["state"] == "CLOSED" and closed["closed_reason"] == "admin", closed
    code, seen = lanyard(demo, "locker", "status", "--device-file", device)
    assert code == 0 and seen["state"] == "CLOSED" and seen["closed_reason"] == "admin"
    live = {s["device_session_id"] for s in lanyard(demo, "admin", "sessions")[1]}
    assert session["device_session_id"] not in live

    # TOTP enrolment for people: the otpauth URI and a QR code an authenticator app can scan.
    shown = CliRunner(env=demo["env"]).invoke(cli, ["admin", "users", "add", "nurse.qr"])
    assert shown.exit_code == 0, shown.output
    assert "otpauth://totp/" in shown.stdout and "█" in shown.stdout, "the QR code is drawn in the terminal"
    code, again = lanyard(demo, "admin", "users", "totp", "nurse.qr")
    assert code == 0 and again["otpauth_uri"].startswith("otpauth://totp/") and again["totp_secret"]

    # Credentials: generated once at creation, rotated on demand; the template shows what it pre-fills.
    code, template = lanyard(demo, "admin", "app-profiles", "template", "epic-rover")
    assert code == 0 and "com.epic.rover.oidc://callback" in template["redirect_uris"]
    code, profile = lanyard(demo, "admin", "app-profiles", "add", "--template", "epic-rover")
    assert code == 0 and profile["client_secret"]
    code, rotated = lanyard(
        demo, "admin", "app-profiles", "credentials", profile["client_id"], "--rotate", "--grace", "60"
    )
    assert code == 0 and rotated["client_secret"] not in (None, profile["client_secret"])
    assert rotated["previous_secret_valid_until"] > time.time(), "the old secret works for the grace period"
    code, twice = lanyard(demo, "admin", "app-profiles", "credentials", profile["client_id"])
    assert code == 1 and twice["error"] == "credentials_already_issued", "shown once; after that only rotated"


def test_cli_admin_groups_policies_and_licences(demo):
    assert lanyard(demo, "admin", "users", "add", "nurse.lee")[0] == 0
    code, why = lanyard(demo, "admin", "why-not", "nurse.lee")
    assert code == 0 and why["allowed"] is False and why["reason"] == "no_policy", why

    code, group = lanyard(demo, "admin", "groups", "add", "Night shift", "--description", "22:00-07:00")
    assert code == 0 and group["group_id"].startswith("grp_")
    code, members = lanyard(demo, "admin", "groups", "members", "Night shift", "--add", "nurse.lee")
    assert code == 0 and [m["username"] for m in members["members"]] == ["nurse.lee"]
    code, listed = lanyard(demo, "admin", "groups", "list")
    night = next(g for g in listed if g["name"] == "Night shift")
    assert night["members"] == 1 and night["description"] == "22:00-07:00"

    # A policy through the group: the "why not" names it.
    code, made = lanyard(
        demo, "admin", "policies", "set", "night", "--name", "Night shift", "--no-sso", "--group", "Night shift"
    )
    assert code == 0 and made["groups"] == [group["group_id"]] and made["applied"] is True, made
    code, why = lanyard(demo, "admin", "why-not", "nurse.lee")
    assert why["reason"] == "policy_sso_disabled" and "night" in why["detail"], why
    # One option changed; the rest of the policy stays as it was.
    code, changed = lanyard(demo, "admin", "policies", "set", "night", "--sso", "--auth-mode", "face")
    assert code == 0, changed
    code, shown = lanyard(demo, "admin", "policies", "show", "night")
    assert (shown["name"], shown["sso_enabled"], shown["auth_mode"], shown["groups"]) == (
        "Night shift", True, "face", [group["group_id"]]
    )  # fmt: skip
    code, why = lanyard(demo, "admin", "why-not", "nurse.lee")
    assert why["reason"] != "policy_sso_disabled", why
    code, refused = lanyard(demo, "admin", "policies", "set", "brand-new")
    assert code == 1 and refused["error"] == "invalid_request" and "name" in refused["error_description"]
    assert lanyard(demo, "admin", "policies", "delete", "night")[0] == 0
    assert "night" not in {p["policy_id"] for p in lanyard(demo, "admin", "policies", "list")[1]}
    code, gone = lanyard(demo, "admin", "groups", "delete", "Night shift")
    assert code == 0 and gone["deleted"] == group["group_id"]

    # Licences: the SSO licence gone fails readiness (exit 1); loaded again, it passes.
    code, before = lanyard(demo, "admin", "licences", "list")
    sso = next(item for item in before["licences"] if item["kind"] == "sso")
    code, more = lanyard(demo, "admin", "licences", "set", "apa", "--seats", "7")
    assert code == 0 and more["seats"] == 7
    assert lanyard(demo, "admin", "licences", "delete", "sso")[0] == 0
    code, report = lanyard(demo, "admin", "readiness")
    assert code == 1 and "Single Sign On licensed" in {c["check"] for c in report["checks"] if c["status"] == "fail"}
    code, back = lanyard(demo, "admin", "licences", "set", "sso", "--seats", str(sso["seats"]), "--days", "365")
    assert code == 0 and back["seats"] == sso["seats"], back
    code, report = lanyard(demo, "admin", "readiness")
    assert code == 0 and report["ready"] is True, report


def _key_differences(example: Any, real: Any, where: str = "") -> list[str]:
    """Where an example's keys differ from a real answer's (dicts compared both ways, lists by
    their first items)."""
    if isinstance(example, dict) and isinstance(real, dict):
        problems = [] if set(example) == set(real) else [f"{where or '.'}: {sorted(example)} vs {sorted(real)}"]
        for key in set(example) & set(real):
            problems += _key_differences(example[key], real[key], f"{where}.{key}")
        return problems
    if isinstance(example, list) and isinstance(real, list) and example and real:
        return _key_differences(example[0], real[0], f"{where}[0]")
    return []


def test_openapi_examples_have_the_shape_of_real_answers(demo, stack):
    """The examples in the served documents are what the services answer (the same members),
    for the main admin reads, and their request examples are accepted as they stand."""
    state = demo["state"]
    token = lanyard(demo, "admin", "login")[1]["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    eid = state["enterprise_id"]
    jane, rover = state["users"]["nurse.jane"]["user_id"], state["apps"]["rover"]["client_id"]
    device = str(demo["file"].parent / "shape-device.json")
    assert lanyard(demo, "locker", "enrol", "--device-file", device)[0] == 0
    assert lanyard(demo, "locker", "checkout", "--device-file", device, "--user", "dr.oliver")[0] == 0
    asked = {
        "policy": {
            "/policy/e/{enterprise_id}/user-policies": {},
            "/policy/e/{enterprise_id}/user-policies/{item_id}": {"item_id": "ward-4b-face"},
            "/policy/e/{enterprise_id}/licences": {},
            "/policy/e/{enterprise_id}/org-settings": {},
            "/policy/e/{enterprise_id}/cloud-connection": {},
            "/policy/e/{enterprise_id}/readiness": {},
            "/policy/e/{enterprise_id}/seats": {},
            "/policy/e/{enterprise_id}/readiness/users/{user_id}": {"user_id": jane, "?client_id": rover},
            "/policy/e/{enterprise_id}/locker-options": {},
        },
        "session": {"/session/e/{enterprise_id}/device-sessions": {}, "/session/e/{enterprise_id}/devices": {}},
        "idp": {
            "/e/{enterprise_id}/admin/users": {},
            "/e/{enterprise_id}/admin/users/{user_id}": {"user_id": jane},
            "/e/{enterprise_id}/admin/groups": {},
            "/e/{enterprise_id}/admin/app-profiles": {},
            "/e/{enterprise_id}/admin/app-profiles/{client_id}": {"client_id": rover},
            "/e/{enterprise_id}/admin/app-profiles/{client_id}/metadata": {"client_id": rover},
        },
        "audit": {
            "/audit/e/{enterprise_id}/records": {"?type": "session.device_checked_in.v1"},
            "/audit/e/{enterprise_id}/verification": {},
        },
    }
    problems = []
    for service, paths in asked.items():
        doc = httpx.get(f"{stack.base_url}/_openapi/{service}.json", timeout=10).json()
        for path, params in paths.items():
            example = doc["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["example"]
            url = path.replace("{enterprise_id}", eid)
            for name, value in params.items():
                url = url if name.startswith("?") else url.replace("{" + name + "}", value)
            query = {k[1:]: v for k, v in params.items() if k.startswith("?")}
            real = httpx.get(stack.base_url + url, params=query, headers=headers, timeout=10)
            assert real.status_code == 200, (url, real.text)
            problems += [f"{service} GET {path} {p}" for p in _key_differences(example, real.json())]
    assert not problems, problems

    policy_doc = httpx.get(f"{stack.base_url}/_openapi/policy.json", timeout=10).json()
    for path, item_id in (("/user-policies/{item_id}", "example-policy"), ("/licences/{item_id}", "sso")):
        put = policy_doc["paths"]["/policy/e/{enterprise_id}" + path]["put"]
        body = put["requestBody"]["content"]["application/json"]["example"]
        if item_id == "sso":  # the example's window, moved to include today, so readiness stays green
            body = {**body, "valid_from": "2026-01-01T00:00:00Z", "valid_until": "2036-01-01T00:00:00Z"}
        url = f"{stack.base_url}/policy/e/{eid}{path.replace('{item_id}', item_id)}"
        answer = httpx.put(url, json=body, headers=headers, timeout=10)
        assert answer.status_code == 200, (path, answer.text)
        assert not _key_differences(put["responses"]["200"]["content"]["application/json"]["example"], answer.json())
    httpx.delete(f"{stack.base_url}/policy/e/{eid}/user-policies/example-policy", headers=headers, timeout=10)
    assert lanyard(demo, "locker", "checkin", "--device-file", device)[0] == 0
