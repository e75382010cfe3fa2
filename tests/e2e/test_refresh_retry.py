"""A refresh whose answer the app never got (issue 17's soak: a timeout while the IdP waited for
the broker's ack, the rotation already stored) is retried with the same refresh token, as any
OAuth client does. On the real stack through the gateway: the retry is answered and the session
goes on; the token of the lost answer is reuse if it ever turns up; after checkin all is dead."""

from __future__ import annotations

import pytest

from lanyard.harness.admin import open_enterprise
from lanyard.harness.device import Device, introspect, redeem, refresh
from lanyard.runtime.testing import eventually

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


async def checked_out(stack, http, username: str, **policy):  # type: ignore[no-untyped-def]
    """A ready enterprise with one confidential app, `username` checked out on an enrolled
    device under `policy`; (enterprise, app, person, device)."""
    ent = await open_enterprise(stack.base_url, stack.env, http)
    nurse = await ent.add_user(username)
    charts = await ent.add_app(name="Charts", client_type="confidential", redirect_uri="https://charts.example/cb")
    await ent.make_ready([nurse], [charts], **policy)
    device = Device(stack.base_url, ent.enterprise_id, http)
    await ent.enrol_device(device.device_id, device.public_jwk)
    await device.check_out(nurse)
    return ent, charts, nurse, device


async def sso_tokens(http, ent, charts, device, what: str):  # type: ignore[no-untyped-def]
    """The token answer of one SSO into `charts` (waiting, bounded, for the entitlement)."""

    async def sso_code():
        attempt = await device.sso(charts)
        return attempt if attempt.code else None

    return await redeem(http, ent.issuer, charts, await eventually(sso_code, 10, what=what))


async def test_retried_refresh_after_a_lost_answer_keeps_the_clinician_signed_in(stack, http):
    ent, charts, _, device = await checked_out(stack, http, "nurse.retry")

    tokens = await sso_tokens(http, ent, charts, device, "SSO after checkout")
    first = await refresh(http, ent.issuer, charts, tokens["refresh_token"])
    assert first.status_code == 200, first.text  # answered, but the app never reads it (lost)

    retried = await refresh(http, ent.issuer, charts, tokens["refresh_token"])
    assert retried.status_code == 200, retried.text
    assert (await introspect(http, ent.issuer, charts, retried.json()["access_token"]))["active"] is True
    later = await refresh(http, ent.issuer, charts, retried.json()["refresh_token"])
    assert later.status_code == 200, later.text

    await device.check_in()

    async def dead():
        r = await refresh(http, ent.issuer, charts, later.json()["refresh_token"])
        return r.status_code == 400 and r.json()["error"] == "invalid_grant"

    await eventually(dead, 10, what="refresh refused after checkin")
    for token in (tokens["refresh_token"], first.json()["refresh_token"], retried.json()["refresh_token"]):
        assert (await refresh(http, ent.issuer, charts, token)).json()["error"] == "invalid_grant"
    assert (await introspect(http, ent.issuer, charts, later.json()["access_token"]))["active"] is False


async def test_the_token_of_a_lost_answer_turning_up_after_the_retry_revokes_the_family(stack, http):
    ent, charts, _, device = await checked_out(stack, http, "nurse.theft")

    tokens = await sso_tokens(http, ent, charts, device, "SSO after checkout")
    lost = (await refresh(http, ent.issuer, charts, tokens["refresh_token"])).json()
    retried = (await refresh(http, ent.issuer, charts, tokens["refresh_token"])).json()
    stolen = await refresh(http, ent.issuer, charts, lost["refresh_token"])  # someone else had the lost answer
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"
    assert (await refresh(http, ent.issuer, charts, retried["refresh_token"])).status_code == 400
    assert (await introspect(http, ent.issuer, charts, retried["access_token"]))["active"] is False


async def test_refresh_while_locked_says_retry_and_the_same_token_works_after_face_unlock(stack, http):
    """DESIGN §2: a LOCKED session mints nothing until a face verification; its refresh token is
    not dead, so the answer is 503 temporarily_unavailable (retry), never invalid_grant."""
    ent, charts, nurse, device = await checked_out(
        stack, http, "nurse.locked", auth_mode="face", inactivity_timeout_s=4, face_recency_s=600
    )

    async def face_allowed():
        return (await device.session())["face_allowed"]

    await eventually(face_allowed, 10, what="face authentication allowed")
    await device.verify_face(nurse)

    tokens = await sso_tokens(http, ent, charts, device, "SSO after the face")
    fresh = await refresh(http, ent.issuer, charts, tokens["refresh_token"])
    assert fresh.status_code == 200, fresh.text  # right after SSO
    token = fresh.json()["refresh_token"]

    async def is_locked():  # a refresh is activity (it restarts the inactivity timer): only watch
        return (await device.session())["state"] == "LOCKED"

    await eventually(is_locked, 30, what="the session locked on inactivity")

    async def refused_as_locked():
        nonlocal token
        r = await refresh(http, ent.issuer, charts, token)
        if r.status_code == 200:  # the IdP had not seen the lock yet
            token = r.json()["refresh_token"]
        return r.status_code == 503 and r

    locked = await eventually(refused_as_locked, 10, what="refresh refused once the IdP saw the lock")
    assert locked.json()["error"] == "temporarily_unavailable" and "face" in locked.json()["error_description"]

    await device.verify_face(nurse)

    async def refreshed():
        r = await refresh(http, ent.issuer, charts, token)
        return r.status_code == 200 and r

    unlocked = await eventually(refreshed, 10, what="the same refresh token after the face unlock")
    await device.check_in()

    async def dead():
        r = await refresh(http, ent.issuer, charts, unlocked.json()["refresh_token"])
        return r.status_code == 400 and r.json()["error"] == "invalid_grant"

    await eventually(dead, 10, what="refresh refused after checkin")
