"""Issue 15, the rest of the seed, through the gateway with every service running: cloud trust by
the vendor's services principal, the readiness table, the Epic Rover template's confidential
client with PKCE, Web App Login Configuration, the Locker prerequisites at checkout (release,
SSO extension, SSO availability, Locker options), the MDM export — and the audit log recording
who did each."""

from __future__ import annotations

import plistlib
import uuid

import httpx
import pytest

from lanyard.harness.admin import App, Enterprise, _ok, open_enterprise
from lanyard.harness.device import Device, redeem
from lanyard.runtime.testing import eventually

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

RP_SECRET = "Xk2-Pq9_Vm4Lr7Ns1Tb8Wc3Hy6Jd0Fg5Ze-UoAi"


async def audit_records(ent: Enterprise, kind: str) -> list[dict]:
    return (await ent.call("GET", f"/audit/e/{ent.enterprise_id}/records", params={"type": kind}))["records"]


async def audited(ent: Enterprise, kind: str, what: str, match=None, **payload: object) -> dict:
    """The audit log's record of `kind` whose event payload has these values and for which `match`
    (given the payload) is true (polled, bounded)."""

    async def found() -> dict | None:
        for record in await audit_records(ent, kind):
            p = record["event"]["payload"]
            if all(p.get(k) == v for k, v in payload.items()) and (match is None or match(p)):
                return record
        return None

    return await eventually(found, 20, what=f"audit: {what}")


async def test_trust_by_services_readiness_rover_and_web_app_login_sso(stack, http):
    ent = await open_enterprise(stack.base_url, stack.env, http)
    nurse = await ent.add_user("nurse.ada")

    # --- cloud trust: the superadmin is refused, Services establish it; both audited with who
    code = await ent.policy("POST", "/cloud-connection/provisioning-code")
    refused = await http.post(
        f"{stack.base_url}/policy/e/{ent.enterprise_id}/cloud-connection/establish-trust",
        json={"enterprise_id": ent.enterprise_id, "code": code["code"]},
        headers={"Authorization": f"Bearer {ent.admin_token}"},
    )
    assert (refused.status_code, refused.json()["error"]) == (403, "services_only")
    rover = await ent.add_app(template="epic-rover")  # the seed's default: confidential, PKCE required
    assert rover.client_secret
    await ent.make_ready([nurse], [rover])
    view = await ent.policy("GET", "/cloud-connection")
    assert view["state"] == "established" and view["established_by"].startswith("services:svc_")
    established = await audited(ent, "policy.cloud_connection_changed.v1", "trust established", state="established")
    assert established["actor"] == view["established_by"]
    attempt = await audited(
        ent, "policy.cloud_connection_changed.v1", "the refused attempt",
        match=lambda p: (p.get("last_attempt") or {}).get("reason") == "services_only",
    )  # fmt: skip
    assert attempt["actor"] == attempt["event"]["payload"]["last_attempt"]["by"]
    assert attempt["event"]["payload"]["last_attempt"]["principal"] == "enterprise_admin"

    # --- the readiness table: every Required row passes, with the release checked
    report = await ent.policy("GET", "/readiness")
    assert report["ready"] is True, report
    rows = {r["check"]: r for r in report["checks"]}
    assert rows["maintained release"]["status"] == "pass" and report["release"] in rows["maintained release"]["detail"]
    assert {r["requirement"] for r in report["checks"]} == {"Required", "Optional"}

    # --- Web App Login Configuration: the RP's own client id and secret, then SSO into it
    rp_id = f"rp-{uuid.uuid4().hex[:8]}"
    registered = await ent.call(
        "POST",
        f"/e/{ent.enterprise_id}/admin/web-app-logins",
        json={"client_id": rp_id, "client_secret": RP_SECRET, "profile_name": "Intranet (RP credentials)",
              "display_name": "Intranet", "redirect_uris": ["https://intranet.example/oidc/cb"]},
    )  # fmt: skip
    assert registered["credentials_source"] == "rp_supplied" and registered["metadata"]["issuer"] == ent.issuer
    intranet = App(rp_id, "https://intranet.example/oidc/cb", RP_SECRET)
    await ent.policy("PUT", f"/app-deployments/{rp_id}", {"users": [nurse.user_id]})
    await audited(ent, "app_profile.upserted.v1", "the RP-supplied profile", client_id=rp_id)

    device = Device(stack.base_url, ent.enterprise_id, http)
    await ent.enrol_device(device.device_id, device.public_jwk)
    await device.check_out(nurse)

    async def code_for(app: App):
        attempt = await device.sso(app)
        return attempt if attempt.code else None

    rp_auth = await eventually(lambda: code_for(intranet), 15, what="SSO into the RP-supplied app")
    tokens = await redeem(http, ent.issuer, intranet, rp_auth)
    assert tokens["id_token"] and tokens["access_token"]
    # The confidential Rover: its secret and PKCE both (the harness's SSO always sends a challenge).
    rover_auth = await eventually(lambda: code_for(rover), 15, what="SSO into the confidential Rover")
    assert (await redeem(http, ent.issuer, rover, rover_auth))["access_token"]
    no_pkce = await http.get(
        f"{ent.issuer}/authorize",
        params={"response_type": "code", "client_id": rover.client_id, "redirect_uri": rover.redirect_uri,
                "scope": "openid", "state": "s"},
        follow_redirects=False,
    )  # fmt: skip
    assert "error=invalid_request" in no_pkce.headers["location"]


async def test_locker_prerequisites_options_and_the_mdm_export(stack, http):
    ent = await open_enterprise(stack.base_url, stack.env, http)
    nurse = await ent.add_user("nurse.bea")
    colleague = await ent.add_user("nurse.cat")
    app = await ent.add_app(name="Charts", client_type="confidential", redirect_uri="https://charts.example/cb")
    await ent.make_ready([nurse, colleague], [app])
    options = await ent.policy("PUT", "/locker-options", {"hide_password_autofill_prompt": True})
    assert options["version"] == 1 and options["applied"] is True

    # --- an outdated Locker is refused with an error it can show; the refusal is audited
    old = Device(stack.base_url, ent.enterprise_id, http, locker_version="4.2.1")
    await ent.enrol_device(old.device_id, old.public_jwk)
    refused = await old.try_check_out(nurse)
    assert (refused.status_code, refused.json()["error"]) == (403, "locker_update_required")
    assert refused.json()["minimum_locker_version"] == "4.3"
    record = await audited(ent, "session.checkout_refused.v1", "the refused checkout", device_id=old.device_id)
    assert record["actor"] == nurse.user_id and record["event"]["payload"]["locker_version"] == "4.2.1"
    metrics = (await http.get(f"{stack.service_url('session')}/metrics")).text
    assert 'lanyard_checkouts_refused_total{reason="locker_update_required"}' in metrics

    # --- an up-to-date Locker without the SSO extension checks out, and is told what SSO can do
    # (another nurse: a TOTP code works once, and the first nurse just used this one's step)
    bare = Device(stack.base_url, ent.enterprise_id, http, sso_extension_installed=False)
    await ent.enrol_device(bare.device_id, bare.public_jwk)
    await bare.check_out(colleague)
    answer = bare.checkout_answer
    assert answer["sso"]["available"] is False
    assert [r["code"] for r in answer["sso"]["reasons"]] == ["sso_extension_missing"]
    assert "locker_options" in answer

    async def options_delivered() -> dict | None:
        view = await bare.session()
        return view if (view["locker_options"] or {}).get("version") == 1 else None

    view = await eventually(options_delivered, 20, what="Locker options on the status read")
    assert view["locker_options"]["hide_password_autofill_prompt"] is True
    assert view["sso_extension_installed"] is False and view["locker_version"] == "4.3.0"

    # --- readiness shows both devices' problems (and is therefore not ready)
    async def device_rows() -> dict | None:
        report = await ent.policy("GET", "/readiness")
        rows = {r["check"]: r for r in report["checks"]}
        locker = rows["Locker for iOS 4.3 or later on the devices"]
        extension = rows["SSO Extension profile deployed from the MDM"]
        return report if locker["status"] == "fail" and extension["status"] == "fail" else None

    report = await eventually(device_rows, 20, what="device rows in readiness")
    assert report["ready"] is False
    rows = {r["check"]: r for r in report["checks"]}
    assert old.device_id in rows["Locker for iOS 4.3 or later on the devices"]["detail"]
    assert bare.device_id in rows["SSO Extension profile deployed from the MDM"]["detail"]

    # --- the MDM profile names the origin (every enterprise of this host); the host lists the apps
    raw = await http.get(
        f"{ent.issuer}/admin/sso-extension.mobileconfig", headers={"Authorization": f"Bearer {ent.admin_token}"}
    )
    (payload,) = plistlib.loads(_bytes(raw))["PayloadContent"]
    assert (payload["Type"], payload["URLs"]) == ("Redirect", [stack.base_url])
    other = await open_enterprise(stack.base_url, stack.env, http)
    again = await http.get(
        f"{other.issuer}/admin/sso-extension.mobileconfig", headers={"Authorization": f"Bearer {other.admin_token}"}
    )
    assert _bytes(again) == _bytes(raw)  # one profile for the host, whichever enterprise exports it
    aasa = _ok(await http.get(f"{stack.base_url}/.well-known/apple-app-site-association"))
    assert aasa["authsrv"]["apps"] == [f"{payload['TeamIdentifier']}.{payload['ExtensionIdentifier']}"]


def _bytes(response: httpx.Response) -> bytes:
    assert response.status_code == 200, response.text
    return response.content
