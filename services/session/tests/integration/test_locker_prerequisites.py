"""The seed's Locker prerequisites at checkout, on the real Kafka and Redis: the Locker app's
release against the enterprise's minimum (refused, announced, counted), the SSO extension it
reports, whether SSO is available on the session and why not, and the Locker options that travel
with every checkout answer and status read."""

import pytest

from lanyard.contracts import events as ev
from lanyard.runtime.testing import eventually

pytestmark = pytest.mark.integration

REFUSED = "session.checkout_refused.v1"


async def _configure(h, inst, *, sso: bool = True, minimum: str = "4.3", options_version: int | None = None) -> None:
    """Publish org settings (and Locker options) as the policy service would; wait until applied."""
    org = ev.OrgSettingsChanged(
        enterprise_id=h.eid, producer="policy",
        payload=ev.OrgSettingsChangedPayload(password_autofill_and_sso=sso, minimum_locker_version=minimum),
    )  # fmt: skip
    await h.publish(org)

    async def org_applied():
        stored = await inst.service.store.get_org_settings(h.eid)
        return stored.password_autofill_and_sso is sso and stored.minimum_locker_version == minimum

    await eventually(org_applied, 20, what="org settings consumed")
    if options_version is not None:
        await _options(h, inst, options_version, hide=True)


async def _options(h, inst, version: int, hide: bool) -> None:
    payload = ev.LockerOptionsChangedPayload(version=version, hide_password_autofill_prompt=hide)
    await h.publish(ev.LockerOptionsChanged(enterprise_id=h.eid, producer="policy", payload=payload))

    async def applied():
        return (await inst.service.store.get_locker_options(h.eid)).version >= version

    await eventually(applied, 20, what="Locker options consumed")


def _grant(h, dsid: str, device_id: str) -> ev.EntitlementGranted:
    payload = ev.EntitlementGrantedPayload(
        device_session_id=dsid, device_id=device_id, user_id="u-1", version=1, apps=("rover",),
        auth_mode="passcode", inactivity_timeout_s=600, max_session_s=3600, face_allowed=False, policy_id="p-1",
    )  # fmt: skip
    return ev.EntitlementGranted(enterprise_id=h.eid, producer="policy", payload=payload)


async def test_an_outdated_locker_is_refused_with_an_error_it_can_show_announced_and_counted(harness):
    h = harness
    inst = await h.start()
    await _configure(h, inst, minimum="4.4")
    await h.enrol(inst, "cart-1")
    before = (await inst.client.get("/metrics")).text

    r = await h.checkout(inst, "cart-1", report={"locker_version": "4.3.2", "sso_extension_installed": True})
    body = r.json()
    assert (r.status_code, body["error"], body["minimum_locker_version"]) == (403, "locker_update_required", "4.4")
    assert body["error_description"].startswith("Update Locker to version 4.4 or later")
    refused = await h.probe.wait_for(REFUSED, device_id="cart-1")
    assert (refused.actor, refused.payload.user_id, refused.payload.locker_version) == ("u-1", "u-1", "4.3.2")
    assert refused.payload.minimum_locker_version == "4.4" and refused.key() == f"{h.eid}:cart-1"
    assert h.probe.of_type("session.device_checked_out.v1", device_id="cart-1") == []
    assert (await inst.client.get(h.path("/device-sessions"), headers=h.admin())).json()["device_sessions"] == []

    # A Locker that does not say its release predates reporting it: refused too.
    silent = await h.checkout(inst, "cart-1", report={})
    assert silent.status_code == 403 and "did not report its version" in silent.json()["error_description"]
    await eventually(lambda: len(h.probe.of_type(REFUSED, device_id="cart-1")) == 2, 10, what="second refusal")
    after = (await inst.client.get("/metrics")).text

    def count(text: str) -> float:
        line = [
            x
            for x in text.splitlines()
            if x.startswith('lanyard_checkouts_refused_total{reason="locker_update_required"}')
        ]
        return float(line[0].split()[-1]) if line else 0.0

    assert count(after) - count(before) == 2

    # Malformed reports are bad input, not a refusal to audit.
    for report in ({"locker_version": "latest"}, {"locker_version": "4.4", "sso_extension_installed": "yes"}):
        bad = await h.checkout(inst, "cart-1", report=report)
        assert (bad.status_code, bad.json()["error"]) == (400, "invalid_request")
    ok = await h.checkout(inst, "cart-1", report={"locker_version": "4.4.0", "sso_extension_installed": True})
    assert ok.status_code == 201, ok.text
    checked_out = await h.probe.wait_for("session.device_checked_out.v1", device_id="cart-1")
    assert (checked_out.payload.locker_version, checked_out.payload.sso_extension_installed) == ("4.4.0", True)
    assert len(h.probe.of_type(REFUSED, device_id="cart-1")) == 2


async def test_checkout_and_status_say_whether_sso_is_available_and_carry_the_locker_options(harness):
    h = harness
    inst = await h.start()
    await _configure(h, inst, options_version=2)
    await _options(h, inst, 1, hide=False)  # an older version arriving late changes nothing
    await h.enrol(inst, "cart-a")

    r = await h.checkout(inst, "cart-a")
    assert r.status_code == 201, r.text
    answer = r.json()
    assert answer["locker_options"] == {"version": 2, "hide_password_autofill_prompt": True,
                                        "show_sso_status_at_checkout": True}  # fmt: skip
    assert (answer["sso"]["status"], answer["sso"]["available"]) == ("pending", None)
    dsid = answer["device_session_id"]
    await h.publish(_grant(h, dsid, "cart-a"))

    async def available():
        view = (await h.locker(inst, "GET", dsid, device_id="cart-a")).json()
        return view if view["sso"]["status"] == "available" else None

    view = await eventually(available, 20, what="SSO available after the grant")
    assert view["sso"] == {"available": True, "status": "available", "reasons": [], "denied_because": None}
    assert view["locker_options"]["version"] == 2 and view["locker_version"] == "4.3.0"
    assert view["sso_extension_installed"] is True

    # Options changed while the session is live reach the next status read, without a separate call.
    await _options(h, inst, 3, hide=False)
    view = (await h.locker(inst, "GET", dsid, device_id="cart-a")).json()
    assert (view["locker_options"]["version"], view["locker_options"]["hide_password_autofill_prompt"]) == (3, False)


async def test_sso_unavailable_is_explained_at_checkout_and_after_a_denial(harness):
    h = harness
    inst = await h.start()
    await _configure(h, inst, sso=False)
    await h.enrol(inst, "cart-b")
    r = await h.checkout(inst, "cart-b", report={"locker_version": "4.5", "sso_extension_installed": False})
    assert r.status_code == 201, r.text
    sso = r.json()["sso"]
    assert (sso["available"], sso["status"]) == (False, "unavailable")
    assert [x["code"] for x in sso["reasons"]] == ["sso_disabled_for_org", "sso_extension_missing"]
    assert "Password Autofill and SSO" in sso["reasons"][0]["message"]

    dsid = r.json()["device_session_id"]
    denied = ev.EntitlementDenied(
        enterprise_id=h.eid, producer="policy",
        payload=ev.EntitlementDeniedPayload(device_session_id=dsid, device_id="cart-b", user_id="u-1",
                                            reason="sso_disabled_for_org"),
    )  # fmt: skip
    await h.publish(denied)

    async def closed():
        view = (await h.locker(inst, "GET", dsid, device_id="cart-b")).json()
        return view if view["state"] == "CLOSED" else None

    view = await eventually(closed, 20, what="the denial checks the session in")
    assert view["closed_reason"] == "entitlement_revoked"
    assert view["sso"]["denied_because"] == "sso_disabled_for_org"
    assert view["sso"]["reasons"][0] == {
        "code": "entitlement_ended",
        "message": "Your account may not use single sign-on on this device (sso_disabled_for_org).",
    }
