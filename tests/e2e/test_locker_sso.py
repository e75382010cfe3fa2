"""Issue 6, the whole story on the real Kafka and Redis through the gateway: enrol, checkout,
SSO into two apps, face lock and unlock, checkin — every revocation effect and every event —
and late, duplicated and reordered events never bring a session back."""

from __future__ import annotations

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from lanyard.contracts import decode_event, topics
from lanyard.harness.admin import open_enterprise
from lanyard.harness.device import Device, introspect, redeem, refresh
from lanyard.runtime.kafka import EventPublisher, create_broker
from lanyard.runtime.testing import TopicProbe, consumer_lag, eventually

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


async def verified_claims(http, issuer: str, token: str) -> dict:
    keys = KeySet.import_key_set((await http.get(f"{issuer}/jwks")).json())
    return jwt.decode(token, keys, algorithms=["RS256", "ES256"]).claims


async def test_checkout_sso_face_lock_checkin_and_revocation(stack, http, kafka_bootstrap, logout_receiver):
    probe = await TopicProbe(kafka_bootstrap, topics.DEVICE_SESSIONS, topics.ENTITLEMENTS, topics.OIDC_EVENTS).start()
    try:
        # --- an enterprise set up by its admins through the public APIs
        ent = await open_enterprise(stack.base_url, stack.env, http)
        nurse = await ent.add_user("nurse.jane")
        rover = await ent.add_app(template="epic-rover", client_type="public")  # public native app, custom scheme
        charts = await ent.add_app(
            name="Charts",
            client_type="confidential",
            redirect_uri="https://charts.example/callback",
            backchannel_logout_uri=logout_receiver.url,
        )
        await ent.make_ready([nurse], [rover, charts], auth_mode="face", inactivity_timeout_s=4, face_recency_s=600)
        readiness = await ent.policy("GET", "/readiness")
        assert all(row["status"] == "pass" for row in readiness["checks"]), readiness

        # --- the MDM enrols a shared iPhone; the nurse checks it out in Locker
        device = Device(stack.base_url, ent.enterprise_id, http)
        await ent.enrol_device(device.device_id, device.public_jwk)
        handle = await device.check_out(nurse)
        checked_out = await probe.wait_for("session.device_checked_out.v1", device_session_id=handle)
        assert checked_out.payload.user_id == nurse.user_id
        granted = await probe.wait_for("entitlement.granted.v1", device_session_id=handle)
        assert set(granted.payload.apps) == {rover.client_id, charts.client_id}

        async def face_allowed():
            return (await device.session())["face_allowed"]

        await eventually(face_allowed, 10, what="the Locker app sees face authentication allowed")
        await device.verify_face(nurse)

        # --- SSO into both apps with no user interaction. The extension retries while the IdP
        # has not yet seen the face verification it was just told to do (bounded).
        async def sso_code(app):
            attempt = await device.sso(app)
            return attempt if attempt.code else None

        rover_auth = await eventually(lambda: sso_code(rover), 5, what="first SSO after face verification")
        assert rover_auth.params["iss"] == ent.issuer
        rover_tokens = await redeem(http, ent.issuer, rover, rover_auth)
        charts_auth = await eventually(lambda: sso_code(charts), 5)
        charts_tokens = await redeem(http, ent.issuer, charts, charts_auth)
        id_claims = await verified_claims(http, ent.issuer, charts_tokens["id_token"])
        assert id_claims["sub"] == nurse.user_id and id_claims["nonce"] == charts_auth.nonce
        rover_claims = await verified_claims(http, ent.issuer, rover_tokens["id_token"])
        assert rover_claims["sid"] == id_claims["sid"], "one SSO session across the apps on the device"
        assert (await introspect(http, ent.issuer, charts, rover_tokens["access_token"]))["active"] is True
        await probe.wait_for("oidc.authorization_granted.v1", device_session_id=handle, client_id=rover.client_id)

        # --- inactivity locks the session (face mode): no new SSO, no refresh; face unlocks it
        locked = await probe.wait_for("session.device_locked.v1", timeout=20, device_session_id=handle)
        assert locked.payload.reason == "inactivity"

        async def sso_refused():
            attempt = await device.sso(rover)
            return attempt.params.get("error") == "interaction_required" and attempt

        refused = await eventually(sso_refused, 10, what="SSO refused while LOCKED")
        assert refused.params.get("lanyard_action") == "face_verification"
        assert (await refresh(http, ent.issuer, rover, rover_tokens["refresh_token"])).status_code >= 400
        unlocked = await device.verify_face(nurse)
        assert unlocked["unlocked"] is True
        await probe.wait_for("session.face_verified.v1", device_session_id=handle, unlocked=True)

        await eventually(lambda: sso_code(rover), 10, what="SSO after the face unlock")

        # --- checkin: every effect, without waiting for the policy service
        await device.check_in()
        await probe.wait_for("session.device_checked_in.v1", device_session_id=handle, reason="user")

        async def revoked():
            result = await introspect(http, ent.issuer, charts, charts_tokens["access_token"])
            return result["active"] is False

        await eventually(revoked, 5, what="introspection inactive after checkin")
        assert (await introspect(http, ent.issuer, charts, rover_tokens["access_token"]))["active"] is False
        assert (await refresh(http, ent.issuer, charts, charts_tokens["refresh_token"])).status_code == 400
        userinfo = await http.get(
            f"{ent.issuer}/userinfo", headers={"Authorization": f"Bearer {charts_tokens['access_token']}"}
        )
        assert userinfo.status_code == 401
        after = await device.sso(rover)
        assert after.code is None and after.params.get("error") == "login_required"
        assert (
            (
                await http.get(
                    f"{ent.issuer}/authorize",
                    params={
                        "response_type": "code",
                        "client_id": charts.client_id,
                        "redirect_uri": charts.redirect_uri,
                        "scope": "openid",
                        "prompt": "none",
                        "state": "s",
                    },
                    follow_redirects=False,
                )
            )
            .headers["location"]
            .count("error=")
        )

        await eventually(lambda: logout_receiver.tokens, 10, what="a back-channel logout at the confidential app")
        logout = await verified_claims(http, ent.issuer, logout_receiver.tokens[-1])
        assert logout["sid"] == id_claims["sid"] and logout["sub"] == nurse.user_id and "nonce" not in logout
        assert logout["events"] == {"http://schemas.openid.net/event/backchannel-logout": {}}
        await probe.wait_for("oidc.session_revoked.v1", device_session_id=handle)
        await probe.wait_for("oidc.backchannel_logout_delivered.v1", client_id=charts.client_id)
        await probe.wait_for("entitlement.revoked.v1", device_session_id=handle, reason="checked_in")

        # --- late, duplicated and reordered events never bring the session back
        history = [
            e
            for e in probe.events
            if getattr(e.payload, "device_session_id", None) == handle
            and e.type in {"session.device_checked_out.v1", "entitlement.granted.v1", "session.face_verified.v1"}
        ]
        broker = create_broker(kafka_bootstrap, "e2e-replayer")
        await broker.start()
        try:
            publisher = EventPublisher(broker)
            for event in history:  # the same records again (duplicates), after the checkin (late)
                await publisher.publish(decode_event(event.to_json()))
            for event in reversed(history):  # and as fresh events in reverse order
                await publisher.publish(event.model_copy(update={"event_id": event.event_id[:-4] + "beef"}))
        finally:
            await broker.stop()

        async def idp_caught_up():
            return (
                await consumer_lag(
                    kafka_bootstrap, "lanyard-idp-devices", [topics.DEVICE_SESSIONS.name, topics.ENTITLEMENTS.name]
                )
                == 0
            )

        await eventually(idp_caught_up, 20, what="the IdP consumed the replayed events")
        for _ in range(3):  # still closed, however often we ask
            assert (await device.sso(rover)).params.get("error") == "login_required"
            assert (await introspect(http, ent.issuer, charts, charts_tokens["access_token"]))["active"] is False
        assert (await device.session())["state"] == "CLOSED"
    finally:
        await probe.stop()
