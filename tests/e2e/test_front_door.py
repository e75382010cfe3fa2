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
from lanyard.harness.admin import totp_now
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

    code, closed = lanyard(demo, "locker", "checkin")
    assert code == 0 and closed["state"] == "CLOSED" and closed["closed_reason"] == "user"
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
