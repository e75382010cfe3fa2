"""The demo enterprise `make run` seeds on first start, through the gateway and the admin APIs.

St Mungo's Hospital, set up as its admins and Imprivata-style Services would (the seed's
readiness table, row by row): a superadmin; a group "Ward 4B" with three clinicians, each with a
password, a badge and TOTP —

- nurse.jane, face mode (an APA seat; short inactivity timeout so the lock shows quickly),
- dr.oliver, passcode mode (inactivity checks the device in after 15 minutes),
- nurse.sam, an agency nurse whose own policy has SSO off, so `why-not` has something to say;

an SSO and an APA licence, the cloud connection, Epic Rover from its template and the
confidential demo web app (rover-demo, with a back-channel logout URI) both deployed to the
ward, and the org settings the seed asks for (Password Autofill and SSO on, second factor on).

Idempotent and resumable: the secrets are written to the demo file (0600, under the gitignored
.var/) as soon as they exist, every step first looks at what is already there, and a complete
seed is never repeated. `bootstrap` is the one step that is not an HTTP call: no API exists
before the enterprise does.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from lanyard.cli.config import load_demo, write_private
from lanyard.cli.output import Refused
from lanyard.harness.admin import ApiError, Enterprise, bootstrap, known_everywhere, sign_in

ENTERPRISE_ID = "st-mungos"
ENTERPRISE_NAME = "St Mungo's Hospital"
ROVER_DEMO_URL = "http://127.0.0.1:8490"
CONSOLE_ADMIN = "console.admin"
"""The demo superadmin who signs in to the browser console (password + TOTP)."""

CLINICIANS: dict[str, dict[str, Any]] = {
    "nurse.jane": {"display_name": "Jane Doe, RN", "badge_id": "badge-1001", "policy": "ward-4b-face"},
    "dr.oliver": {"display_name": "Dr Oliver Wood", "badge_id": "badge-1002", "policy": "ward-4b-passcode"},
    "nurse.sam": {"display_name": "Sam Agency, RN", "badge_id": "badge-1003", "policy": "agency-no-sso"},
}


def policies(users: dict[str, str], group_id: str, inactivity_s: int) -> dict[str, dict[str, Any]]:
    """The user policies, by id. A policy naming a user beats one through a group, so Jane's face
    policy and Sam's no-SSO policy win over the ward's passcode policy."""
    return {
        "ward-4b-face": {
            "name": "Ward 4B: face authentication",
            "sso_enabled": True,
            "auth_mode": "face",
            "users": [users["nurse.jane"]],
            "inactivity_timeout_s": inactivity_s,
            "max_session_s": 12 * 3600,
            "face_recency_s": 300,
        },
        "ward-4b-passcode": {
            "name": "Ward 4B: device passcode",
            "sso_enabled": True,
            "auth_mode": "passcode",
            "groups": [group_id],
            "inactivity_timeout_s": 900,
            "max_session_s": 12 * 3600,
        },
        "agency-no-sso": {
            "name": "Agency staff: no single sign-on",
            "sso_enabled": False,
            "users": [users["nurse.sam"]],
        },
    }


async def enterprise_exists(http: httpx.AsyncClient, gateway: str, enterprise_id: str) -> bool:
    """True when the enterprise's discovery document answers (unknown enterprises are 404)."""
    response = await http.get(f"{gateway}/e/{enterprise_id}/.well-known/openid-configuration")
    if response.status_code >= 500:
        raise ApiError(response)
    return response.status_code == 200


async def seed(
    gateway: str,
    path: Path,
    *,
    enterprise_id: str = ENTERPRISE_ID,
    rover_demo_url: str = ROVER_DEMO_URL,
    inactivity_s: int = 10,
    env: dict[str, str] | None = None,
) -> tuple[dict[str, Any], bool]:
    """Seed (or finish seeding) the demo enterprise; (the demo file's content, whether anything
    was done). Refused when the enterprise exists but its secrets are not in `path`."""
    gateway = gateway.rstrip("/")
    state = load_demo(path) or {}
    if state.get("enterprise_id") not in (None, enterprise_id) or state.get("gateway") not in (None, gateway):
        state = {}  # a demo file of another enterprise or gateway: start this one afresh
    async with httpx.AsyncClient(timeout=30) as http:
        exists = await enterprise_exists(http, gateway, enterprise_id)
        if exists and state.get("complete"):
            return state, False
        if exists and not state.get("superadmin"):
            raise Refused(
                "demo_secrets_missing",
                f"enterprise {enterprise_id} exists but {path} does not hold its demo secrets; "
                "stop the stack and remove .var/ to start over, or run with DEMO=0",
            )
        if not exists:
            # A fresh stack (or wiped data): whatever the file says about an older run is void.
            state = {}
        issuer = f"{gateway}/e/{enterprise_id}"
        state.update(
            gateway=gateway,
            enterprise_id=enterprise_id,
            enterprise_name=ENTERPRISE_NAME,
            issuer=issuer,
            discovery_url=f"{issuer}/.well-known/openid-configuration",
            rover_demo_url=rover_demo_url,
            complete=False,
        )
        state.setdefault("superadmin", {"username": "admin", "password": secrets.token_urlsafe(18)})
        state.setdefault("users", {})
        state.setdefault("apps", {})
        write_private(path, state)  # before bootstrap: the password must survive a crash after it
        if not exists:
            admin = state["superadmin"]
            done = bootstrap(
                env or {}, enterprise_id, admin["username"], admin["password"], ENTERPRISE_NAME, check=False
            )
            if done.returncode != 0:
                text = (done.stderr or done.stdout).decode(errors="replace").strip().splitlines()
                raise Refused("bootstrap_failed", text[-1] if text else f"exit {done.returncode}")
        ent = await sign_in(
            gateway, enterprise_id, state["superadmin"]["username"], state["superadmin"]["password"], http
        )
        ent.env = env or {}  # Services (a services principal, issued by the operator command) establish trust
        # Policy and audit accept the new enterprise's tokens once its directory event reached them.
        await known_everywhere(gateway, http, enterprise_id, ent.admin_token)
        await _seed_directory(ent, state, path)
        await _seed_apps(ent, state, path, rover_demo_url)
        await _seed_policy(ent, state, inactivity_s)
        state["complete"] = True
        state["seeded_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        write_private(path, state)
    return state, True


async def _seed_directory(ent: Enterprise, state: dict[str, Any], path: Path) -> None:
    eid = ent.enterprise_id
    groups = (await ent.call("GET", f"/e/{eid}/admin/groups"))["groups"]
    group = next((g for g in groups if g["name"] == "Ward 4B"), None)
    group_id = group["group_id"] if group else await ent.add_group("Ward 4B")
    state["group_id"] = group_id
    existing = {u["username"]: u for u in (await ent.call("GET", f"/e/{eid}/admin/users"))["users"]}
    await _seed_console_admin(ent, state, path, existing)
    for username, spec in CLINICIANS.items():
        known = state["users"].get(username)
        if known and username in existing and known.get("totp_secret"):
            continue
        if username in existing:  # created by a run that stopped before saving: new secrets
            user_id = existing[username]["user_id"]
            password = secrets.token_urlsafe(12)
            await ent.call("PUT", f"/e/{eid}/admin/users/{user_id}/password", json={"password": password})
            enrolment = await ent.call("POST", f"/e/{eid}/admin/users/{user_id}/totp")
            secret, uri = enrolment["secret"], enrolment["otpauth_uri"]
        else:
            person = await ent.add_user(
                username,
                password=secrets.token_urlsafe(12),
                groups=(group_id,),
                display_name=spec["display_name"],
                badge_id=spec["badge_id"],
                email=f"{username}@st-mungos.example",
            )
            user_id, password, secret, uri = person.user_id, person.password, person.totp_secret, person.otpauth_uri
        state["users"][username] = {
            "user_id": user_id,
            "password": password,
            "totp_secret": secret,
            "otpauth_uri": uri,
            "badge_id": spec["badge_id"],
            "display_name": spec["display_name"],
            "policy": spec["policy"],
        }
        write_private(path, state)


async def _seed_console_admin(ent: Enterprise, state: dict[str, Any], path: Path, existing: dict[str, Any]) -> None:
    """A second superadmin, with TOTP, for the browser console: its sign-in is the IdP's login page
    (password + TOTP, as the org requires a second factor). The bootstrap superadmin keeps no TOTP
    so the CLI's admin commands can sign in with the password alone."""
    if state.get("console_admin", {}).get("totp_secret"):
        return
    eid = ent.enterprise_id
    password = secrets.token_urlsafe(18)
    if CONSOLE_ADMIN in existing:  # created by a run that stopped before saving: new secrets
        user_id = existing[CONSOLE_ADMIN]["user_id"]
        await ent.call("PUT", f"/e/{eid}/admin/users/{user_id}/password", json={"password": password})
    else:
        user = await ent.call(
            "POST",
            f"/e/{eid}/admin/users",
            json={"username": CONSOLE_ADMIN, "display_name": "Console Admin", "password": password,
                  "roles": ["superadmin"]},
        )  # fmt: skip
        user_id = user["user_id"]
    enrolment = await ent.call("POST", f"/e/{eid}/admin/users/{user_id}/totp")
    state["console_admin"] = {
        "username": CONSOLE_ADMIN,
        "password": password,
        "totp_secret": enrolment["secret"],
        "otpauth_uri": enrolment["otpauth_uri"],
    }
    write_private(path, state)


async def _seed_apps(ent: Enterprise, state: dict[str, Any], path: Path, rover_demo_url: str) -> None:
    eid = ent.enterprise_id
    base = f"/e/{eid}/admin/app-profiles"
    profiles = {p["profile_name"]: p for p in (await ent.call("GET", base))["app_profiles"]}
    wanted = {
        "rover": ("Epic Rover", {"template": "epic-rover"}, None),
        "rover-demo": (
            "Rover demo (web)",
            None,
            {
                "profile_name": "Rover demo (web)",
                "display_name": "Rover demo",
                "client_type": "confidential",
                "redirect_uris": [f"{rover_demo_url}/callback"],
                "post_logout_redirect_uris": [f"{rover_demo_url}/"],
                "backchannel_logout_uri": f"{rover_demo_url}/backchannel-logout",
            },
        ),
    }
    for short, (profile_name, params, body) in wanted.items():
        known = state["apps"].get(short)
        profile = profiles.get(profile_name)
        if profile is None:
            profile = await ent.call("POST", base, params=params, json=body)
        elif known and known.get("client_id") == profile["client_id"]:
            continue
        client_id = profile["client_id"]
        if profile.get("has_secret"):  # credentials issued by a run that stopped before saving
            creds = await ent.call("POST", f"{base}/{client_id}/credentials/rotate")
        else:
            creds = await ent.call("POST", f"{base}/{client_id}/credentials")
        state["apps"][short] = {
            "client_id": client_id,
            "profile_name": profile_name,
            "client_type": profile["client_type"],
            "redirect_uri": profile["redirect_uris"][0],
            "client_secret": creds.get("client_secret"),
            "backchannel_logout_uri": profile.get("backchannel_logout_uri"),
        }
        write_private(path, state)


async def _seed_policy(ent: Enterprise, state: dict[str, Any], inactivity_s: int) -> None:
    """Licences, cloud trust, user policies, deployments and org settings: upserts, so a
    resumed seed simply writes them again."""
    await ent.load_licences(seats=50, apa_seats=5)
    cloud = await ent.policy("GET", "/cloud-connection")
    if cloud.get("state") != "established":
        await ent.connect_cloud()
    users = {name: u["user_id"] for name, u in state["users"].items()}
    for policy_id, body in policies(users, state["group_id"], inactivity_s).items():
        await ent.policy("PUT", f"/user-policies/{policy_id}", body)
    for app in state["apps"].values():
        await ent.deploy(app["client_id"], [], [state["group_id"]])
    await ent.set_org_settings()


def banner(state: dict[str, Any]) -> list[str]:
    """What `make run` prints once the stack is up: where things are, the demo credentials, and
    the commands to try next."""
    gw, eid = state["gateway"], state["enterprise_id"]
    admin = state["superadmin"]
    lines = [
        f"Lanyard is up: gateway {gw}",
        f"  enterprise   {eid} ({state.get('enterprise_name', eid)})",
        f"  issuer       {state['issuer']}",
        f"  discovery    {state['discovery_url']}",
        f"  rover-demo   {state['rover_demo_url']}/   (the demo web app; its page shows sign-ins and logouts)",
        f"  OpenAPI      {gw}/_openapi/<idp|session|policy|audit>.json",
        "",
        f"  superadmin   {admin['username']} / {admin['password']}   (the CLI's admin commands use it)",
    ]
    console = state.get("console_admin")
    if console:
        lines += [
            f"  console      {gw}/console/   sign in as {console['username']} / {console['password']} + TOTP",
            f"  {'':<12} TOTP {console['otpauth_uri']}",
        ]
    for name, user in state["users"].items():
        lines.append(f"  {name:<12} password {user['password']}  badge {user['badge_id']}  policy {user['policy']}")
        lines.append(f"  {'':<12} TOTP {user['otpauth_uri']}")
    for short, app in state["apps"].items():
        secret = f"  secret {app['client_secret']}" if app.get("client_secret") else ""
        lines.append(f"  app {short:<11} client_id {app['client_id']}  redirect {app['redirect_uri']}{secret}")
    lines += [
        "",
        "  (secrets in .var/demo.json; `lanyard` picks them up from there)",
        "  next, in another terminal:",
        "    make demo                                   # the whole story, with a timeline",
        "    .venv/bin/lanyard admin readiness",
        "    .venv/bin/lanyard admin why-not nurse.sam",
        "    .venv/bin/lanyard locker enrol && .venv/bin/lanyard locker checkout --user dr.oliver",
        "    .venv/bin/lanyard locker sso rover && .venv/bin/lanyard locker checkin",
    ]
    return lines
