"""Issue 16, the admin console in a real browser: Debian's chromium, headless, driven by
Playwright, against the whole stack (every service, the console and the gateway as processes).

One browser for the module; each test opens its own enterprise, so its superadmin signs in with
a TOTP code nobody used yet. Everything a test configures, it configures through the pages.
`make console-screenshots` runs `test_screenshots_of_every_main_page` with
LANYARD_CONSOLE_SCREENSHOTS=docs/console to refresh the pictures in the docs.
"""

from __future__ import annotations

import os
import re
import shutil
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from joserfc import jwt
from joserfc.jwk import KeySet

from lanyard.harness.admin import Enterprise, Person, bootstrap, known_everywhere, services_token, totp_now
from lanyard.harness.device import Device, introspect, redeem
from lanyard.runtime.testing import eventually

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Any]:
    if not os.path.exists(CHROMIUM):  # noqa: ASYNC240 - once per module, before the browser exists
        message = "chromium is not installed (make setup installs Debian's package)"
        if IN_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield browser
        await browser.close()


@pytest_asyncio.fixture(loop_scope="module")
async def api() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=15) as client:
        yield client


async def open_enterprise(stack, http: httpx.AsyncClient) -> tuple[Enterprise, Person]:
    """A fresh enterprise and its superadmin, who has enrolled TOTP (the login page asks for it)."""
    eid = f"hosp-{uuid.uuid4().hex[:8]}"
    password = f"pw-{uuid.uuid4().hex}"
    bootstrap(stack.env, eid, "superadmin", password)
    token = (
        await http.post(f"{stack.base_url}/e/{eid}/admin/token", data={"username": "superadmin", "password": password})
    ).json()["access_token"]
    ent = Enterprise(stack.base_url, eid, token, http, env=stack.env)
    await known_everywhere(stack.base_url, http, eid, token)
    me = next(u for u in (await ent.call("GET", f"/e/{eid}/admin/users"))["users"] if u["username"] == "superadmin")
    enrolment = await ent.call("POST", f"/e/{eid}/admin/users/{me['user_id']}/totp")
    return ent, Person(me["user_id"], "superadmin", password, enrolment["secret"])


async def sign_in(browser, stack, ent: Enterprise, person: Person, *, code: str | None = None):
    """A new browser context signed in to the console as `person` (password, then TOTP)."""
    context = await browser.new_context(base_url=stack.base_url, viewport={"width": 1280, "height": 860})
    page = await context.new_page()
    await page.goto(f"/console/e/{ent.enterprise_id}/")
    await page.get_by_label("Username").fill(person.username)
    await page.get_by_label("Password").fill(person.password)
    await page.get_by_role("button", name="Sign in").click()
    await page.get_by_label("Code from your authenticator app").fill(code or person.totp())
    await page.get_by_role("button", name="Verify").click()
    await page.wait_for_url(re.compile(rf".*/console/e/{ent.enterprise_id}/$"))
    return context, page


async def nav(page, label: str) -> None:
    """Follow a link of the console's navigation."""
    await page.get_by_role("navigation").get_by_role("link", name=label, exact=True).click()


async def console_page(page, ent: Enterprise, path: str = "") -> None:
    await page.goto(f"/console/e/{ent.enterprise_id}/{path}")


async def readiness_rows(page, ent: Enterprise) -> dict[str, str]:
    await console_page(page, ent)
    rows = page.locator("#readiness tbody tr")
    return {
        await rows.nth(i).get_attribute("data-check"): await rows.nth(i).get_attribute("data-status")
        for i in range(await rows.count())
    }


async def row_passes(page, ent: Enterprise, check: str, timeout: float = 10) -> None:
    """Reload the readiness page until `check` passes (the IdP's changes reach the policy
    service through Kafka, so a row may turn green a moment after the page that fixed it)."""

    async def passes() -> bool:
        return (await readiness_rows(page, ent)).get(check) == "pass"

    await eventually(passes, timeout, interval=0.3, what=f"readiness row {check!r} passes")


# ---------------------------------------------------------------------------------------------


async def test_sign_in_and_the_rover_profile_secret_is_shown_once(stack, browser, api):
    ent, su = await open_enterprise(stack, api)
    context, page = await sign_in(browser, stack, ent, su)
    try:
        assert await page.locator("header .who").inner_text() == "superadmin (superadmin)"
        await nav(page, "SSO application profiles")
        await page.get_by_role("link", name="Add from the Epic Rover template").click()
        assert await page.get_by_label("Application profile name").input_value() == "Epic Rover"
        assert await page.get_by_label("Application user-friendly name").input_value() == "Rover"
        uris = await page.locator("#redirect_uris").input_value()
        assert "com.epic.rover.oidc://callback" in uris and "https://mobile.epic.com/rover/OIDC/redirect/" in uris
        # Epic's TS configure Rover with a client id and secret: a confidential profile.
        await page.get_by_label("Client type").select_option("confidential")
        # An app that verifies ES256 may have its ID tokens signed so (RS256 is the default).
        await page.get_by_text("Optional: claims, logout and ID-token signing").click()
        await page.get_by_label("ID token signing algorithm").select_option("ES256")
        await page.get_by_role("button", name="Save").click()
        await page.get_by_role("button", name="Generate Client credentials").click()

        secret = (await page.locator("#cred-secret").inner_text()).strip()
        client_id = (await page.locator("#cred-client-id").inner_text()).strip()
        assert len(secret) >= 40 and client_id.startswith("cli_")
        await page.context.grant_permissions(["clipboard-read", "clipboard-write"])
        await page.locator("button[data-copy=cred-secret]").click()
        assert await page.evaluate("navigator.clipboard.readText()") == secret
        issuer = (await page.locator("#issuer").inner_text()).strip()
        assert issuer == ent.issuer

        await page.reload()
        assert await page.locator("#credentials").count() == 0, "the secret is shown once only"
        assert await page.locator(".flash").count() == 0, "a message is shown once too"
        assert secret not in await page.content()
        assert "A client secret was issued" in await page.locator("main").inner_text()

        # The secret works at the token endpoint: introspection with it authenticates the client.
        r = await api.post(f"{ent.issuer}/introspect", data={"token": "x"}, auth=(client_id, secret))
        assert r.status_code == 200 and r.json() == {"active": False}
        profile = await ent.call("GET", f"/e/{ent.enterprise_id}/admin/app-profiles/{client_id}")
        assert (profile["profile_name"], profile["template"], profile["has_secret"]) == (
            "Epic Rover",
            "epic-rover",
            True,
        )
        assert profile["id_token_signed_response_alg"] == "ES256"

        # The console answers with its security headers, and its cookie is locked down.
        response = await page.goto(f"/console/e/{ent.enterprise_id}/apps")
        headers = response.headers
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert "script-src 'self'" in headers["content-security-policy"] and headers["x-frame-options"] == "DENY"
        cookie = next(c for c in await context.cookies() if c["name"] == "lanyard_console")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/console/"

        # A form post without the session's CSRF token changes nothing.
        async with with_cookie(cookie["value"]) as same_cookie:
            forged = await same_cookie.post(f"{stack.base_url}/console/e/{ent.enterprise_id}/apps/{client_id}/delete")
        assert forged.status_code == 403
        assert (await api.get(f"{ent.issuer}/admin/app-profiles/{client_id}", headers=_bearer(ent))).status_code == 200

        # Sign out ends the console session: the old cookie opens nothing any more.
        await page.get_by_role("button", name="Sign out").click()
        await page.wait_for_url(re.compile(r".*/console/"))
        async with with_cookie(cookie["value"]) as old_cookie:
            after = await old_cookie.get(f"{stack.base_url}/console/e/{ent.enterprise_id}/apps")
        assert after.status_code == 303 and "/login" in after.headers["location"]
    finally:
        await context.close()


def with_cookie(value: str) -> httpx.AsyncClient:
    """An HTTP client holding a console session cookie taken from the browser (not a browser:
    it sends no Origin and knows no CSRF token unless told)."""
    return httpx.AsyncClient(timeout=15, cookies={"lanyard_console": value})


def _bearer(ent: Enterprise) -> dict[str, str]:
    return {"Authorization": f"Bearer {ent.admin_token}"}


async def test_a_non_superadmin_cannot_reach_app_profiles_page_or_api(stack, browser, api):
    ent, _ = await open_enterprise(stack, api)
    admin = await ent.add_user("ward.admin", roles=["admin"])
    context, page = await sign_in(browser, stack, ent, admin)
    try:
        # The admin's own bearer token, as the CLI would get it (the next TOTP step: the browser
        # sign-in used the current one, and steps are accepted once, in order).
        token_answer = await api.post(
            f"{ent.issuer}/admin/token",
            data={
                "username": admin.username,
                "password": admin.password,
                "totp": totp_now(admin.totp_secret, time.time() + 30),
            },
        )
        assert token_answer.status_code == 200, token_answer.text
        admin_token = token_answer.json()["access_token"]
        refused = await api.get(f"{ent.issuer}/admin/app-profiles", headers={"Authorization": f"Bearer {admin_token}"})
        assert refused.status_code == 403 and refused.json()["error"] == "insufficient_role"
        nav = await page.locator("nav").inner_text()
        assert "SSO application profiles" not in nav and "Users and groups" in nav and "Audit trail" not in nav
        response = await page.goto(f"/console/e/{ent.enterprise_id}/apps")
        assert response.status == 403
        assert "superadmin" in await page.locator("main").inner_text()
        response = await page.goto(f"/console/e/{ent.enterprise_id}/apps/new?template=epic-rover")
        assert response.status == 403
        # What the admin may do works: add a clinician through the users page.
        await console_page(page, ent, "users")
        await page.get_by_label("Username").fill("nurse.ann")
        await page.get_by_label("Display name").fill("Ann")
        await page.get_by_role("button", name="Add user").click()
        assert "Added nurse.ann." in await page.locator(".flash").inner_text()
        ann_id = (await page.locator("dl.facts code").first.inner_text()).strip()
        await page.get_by_label("New password").fill("a new long password")
        await page.get_by_role("button", name="Reset password").click()
        assert "The password is reset." in await page.locator(".flash").inner_text()

        async def locker_sign_in() -> dict:
            body = {"device_id": "d1", "username": "nurse.ann", "password": "a new long password"}
            return (await api.post(f"{ent.issuer}/locker/authn", json=body)).json()

        # The new password is accepted: what is missing is only her second factor.
        assert (await locker_sign_in())["error"] == "second_factor_required"
        await page.get_by_role("button", name="Disable account").click()
        assert await page.locator("#user-status").inner_text() == "disabled"
        ann = await ent.call("GET", f"/e/{ent.enterprise_id}/admin/users/{ann_id}")
        assert ann["status"] == "disabled"
        assert (await locker_sign_in())["error"] != "second_factor_required", "a disabled account gets no further"
        # ...but not to make someone an admin: the role list offers no admin role, and the API
        # refuses a forged one.
        await console_page(page, ent, "users")
        assert await page.locator("#role option").all_inner_texts() == ["user (clinician)"]
        csrf = await page.locator("input[name=csrf_token]").first.input_value()
        value = next(c["value"] for c in await context.cookies() if c["name"] == "lanyard_console")
        async with with_cookie(value) as same_cookie:
            forged = await same_cookie.post(
                f"{stack.base_url}/console/e/{ent.enterprise_id}/users",
                data={"csrf_token": csrf, "username": "mallory", "display_name": "M", "role": "superadmin"},
            )
        assert forged.status_code == 303
        users = (await ent.call("GET", f"/e/{ent.enterprise_id}/admin/users"))["users"]
        assert "mallory" not in {u["username"] for u in users}
    finally:
        await context.close()


async def test_readiness_of_a_fresh_enterprise_turns_green_as_the_pages_configure_it(stack, browser, api):
    ent, su = await open_enterprise(stack, api)
    context, page = await sign_in(browser, stack, ent, su)
    try:
        rows = await readiness_rows(page, ent)
        assert rows == {
            "maintained release": "pass",
            "Single Sign On licensed": "fail",
            "cloud connection established": "fail",
            "OpenID Connect apps added and enabled": "fail",
            "apps deployed to users": "fail",
            "users assigned to a policy enabled for SSO": "fail",
            "Password Autofill and SSO is ON": "fail",
            "Require a second factor to unlock the device is ON": "pass",
            "Locker for iOS 4.3 or later on the devices": "pass",
            "SSO Extension profile deployed from the MDM": "pass",
            "users with SSO can check out (second factor enrolled)": "pass",
        }
        assert "Not ready" in await page.locator("#readiness-summary").inner_text()

        # Gear menu > License: each failing row links to the page that fixes it.
        await page.locator("tr[data-check='Single Sign On licensed'] a").click()
        assert page.url.endswith("/licences")
        await page.get_by_label("Seats").fill("50")
        await page.get_by_role("button", name="Save licence").click()
        assert "Licence saved." in await page.locator(".flash").inner_text()
        assert "0 of 50" in await page.locator("#seats").inner_text()
        await row_passes(page, ent, "Single Sign On licensed")

        # Gear menu > Cloud connection: a 5-minute code with a live countdown; Services (a services
        # principal, not this console) enter it; the superadmin sees the result.
        await page.locator("tr[data-check='cloud connection established'] a").click()
        await page.get_by_role("button", name="Generate cloud provisioning code").click()
        code = (await page.locator("#code-value").inner_text()).strip()
        first = await page.locator("#countdown").inner_text()
        assert re.fullmatch(r"[45]:\d\d", first), first
        await page.wait_for_function("(first) => document.getElementById('countdown').textContent !== first", arg=first)
        assert await page.locator("#trust-form").count() == 0, "only Services establish trust"
        services = await services_token(stack.base_url, stack.env, api)
        trusted = await api.post(
            f"{stack.base_url}/policy/e/{ent.enterprise_id}/cloud-connection/establish-trust",
            json={"enterprise_id": ent.enterprise_id, "code": code},
            headers={"Authorization": f"Bearer {services}"},
        )
        assert trusted.status_code == 200, trusted.text
        await console_page(page, ent, "cloud")
        assert await page.locator("#trust-state").inner_text() == "established"
        assert "services:svc_" in await page.locator("#last-attempt").inner_text()
        await row_passes(page, ent, "cloud connection established")

        # Applications > Single sign-on application profiles.
        await page.locator("tr[data-check='OpenID Connect apps added and enabled'] a").click()
        await page.get_by_role("link", name="Add from the Epic Rover template").click()
        await page.get_by_role("button", name="Save").click()
        await row_passes(page, ent, "OpenID Connect apps added and enabled")

        # Users: a clinician, then the app deployed to her and a policy enabled for SSO.
        await console_page(page, ent, "users")
        await page.get_by_label("Username").fill("nurse.kim")
        await page.get_by_label("Display name").fill("Kim")
        await page.get_by_label("Initial password").fill("correct horse battery")
        await page.get_by_role("button", name="Add user").click()
        await page.get_by_role("button", name="Enrol TOTP").click()
        assert await page.locator("#totp-enrolment svg").count() == 1, "a QR code to scan"
        secret = (await page.locator("#totp-secret").inner_text()).strip()
        await page.reload()
        assert await page.locator("#totp-enrolment").count() == 0 and secret not in await page.content()
        kim_id = (await page.locator("dl.facts code").first.inner_text()).strip()

        await console_page(page, ent)
        await page.locator("tr[data-check='apps deployed to users'] a").click()
        await page.get_by_label("Application", exact=True).select_option(label="Epic Rover")
        await page.get_by_label("nurse.kim").check()
        await page.get_by_role("button", name="Deploy").click()
        assert "Deployment saved." in await page.locator(".flash").inner_text()
        await row_passes(page, ent, "apps deployed to users")

        await page.locator("tr[data-check='users assigned to a policy enabled for SSO'] a").click()
        await page.get_by_label("Policy ID").fill("clinicians")
        await page.get_by_label("Name", exact=True).fill("Clinicians")
        await page.get_by_label("nurse.kim").check()
        await page.get_by_role("button", name="Save policy").click()
        await row_passes(page, ent, "users assigned to a policy enabled for SSO")
        # Not ready while the MAM console's "Password Autofill and SSO" is off (a Required row).
        assert "Not ready" in await page.locator("#readiness-summary").inner_text()

        # Why not? The org's Check Out switch is still off; switching it on makes Kim allowed.
        await page.get_by_label("User", exact=True).select_option(label="nurse.kim")
        await page.get_by_role("button", name="Explain").click()
        assert "sso_disabled_for_org" in await page.locator("#why-result").inner_text()
        await page.get_by_role("link", name="switch it on in Org settings").click()
        await page.get_by_label("Password Autofill and SSO").check()
        await page.get_by_role("button", name="Save org settings").click()
        assert "Org settings saved." in await page.locator(".flash").inner_text()
        await page.goto(f"/console/e/{ent.enterprise_id}/?user_id={kim_id}")
        assert "Allowed" in await page.locator("#why-result").inner_text()
        await row_passes(page, ent, "Password Autofill and SSO is ON")
        assert "Ready" in await page.locator("#readiness-summary").inner_text()
    finally:
        await context.close()


async def test_force_checkin_updates_live_revokes_and_the_rp_gets_its_backchannel_logout(
    stack, browser, api, logout_receiver
):
    ent, su = await open_enterprise(stack, api)
    nurse = await ent.add_user("nurse.lee")
    charts = await ent.add_app(
        name="Charts",
        client_type="confidential",
        redirect_uri="https://charts.example/callback",
        backchannel_logout_uri=logout_receiver.url,
    )
    await ent.make_ready([nurse], [charts])
    context, page = await sign_in(browser, stack, ent, su)
    try:
        await nav(page, "Device sessions")
        assert "No device is checked out." in await page.locator("#sessions").inner_text()
        await page.evaluate("window.notReloaded = true")

        # A nurse checks a device out and signs in to Charts: the row appears without a reload.
        device = Device(stack.base_url, ent.enterprise_id, api)
        await ent.enrol_device(device.device_id, device.public_jwk)
        handle = await device.check_out(nurse)

        async def sso_code():
            attempt = await device.sso(charts)
            return attempt if attempt.code else None

        auth = await eventually(sso_code, 10, what="SSO into Charts after checkout")
        tokens = await redeem(api, ent.issuer, charts, auth)
        row = page.locator(f"#sessions tr[data-handle='{handle}']")
        await row.wait_for(timeout=10_000)
        assert "nurse.lee" in await row.inner_text() and device.device_id in await row.inner_text()
        assert await row.get_attribute("data-state") == "ACTIVE"

        before = len(logout_receiver.tokens)
        await row.get_by_role("button", name="Force checkin").click()
        # A locator, not wait_for_function: the console's CSP (script-src 'self') refuses the eval
        # a string expression needs, which made this wait fail now and then.
        await page.locator(f"tr[data-handle='{handle}'][data-state='CLOSED']").wait_for(timeout=10_000)
        assert await page.evaluate("window.notReloaded") is True, "the page updated in place"
        assert "revoked" in await page.locator("#live-status").inner_text()

        async def inactive() -> bool:
            return (await introspect(api, ent.issuer, charts, tokens["access_token"]))["active"] is False

        await eventually(inactive, 5, what="the app's access token is inactive after the force checkin")
        await eventually(lambda: len(logout_receiver.tokens) > before, 10, what="a back-channel logout at Charts")
        keys = KeySet.import_key_set((await api.get(f"{ent.issuer}/jwks")).json())
        logout = jwt.decode(logout_receiver.tokens[-1], keys, algorithms=["RS256", "ES256"]).claims
        assert logout["sub"] == nurse.user_id and logout["aud"] == charts.client_id
        assert (await device.session())["state"] == "CLOSED"
    finally:
        await context.close()


async def test_keyboard_only_navigation_through_the_main_pages(stack, browser, api):
    ent, su = await open_enterprise(stack, api)
    context, page = await sign_in(browser, stack, ent, su)
    try:

        async def focused() -> dict[str, str]:
            return await page.evaluate(
                """() => { const e = document.activeElement, s = getComputedStyle(e);
                   return {tag: e.tagName, text: (e.innerText || e.value || '').trim(),
                           outline: s.outlineStyle + ' ' + s.outlineWidth}; }"""
            )

        await page.keyboard.press("Tab")
        skip = await focused()
        assert skip["text"] == "Skip to content" and skip["outline"] != "none 0px", skip

        # Tab along the page until each main page's link has had the focus; Enter opens it.
        labels = [
            "Integration readiness", "SSO application profiles", "Device sessions", "Users and groups",
            "User policies", "App deployments", "Licences", "Org settings", "Cloud connection", "Audit trail",
        ]  # fmt: skip
        for label in labels:
            await console_page(page, ent)
            for _ in range(40):
                await page.keyboard.press("Tab")
                now = await focused()
                if now["tag"] == "A" and now["text"] == label:
                    break
            else:
                raise AssertionError(f"the {label!r} link never took the keyboard focus")
            assert now["outline"].split()[0] != "none", f"no visible focus on {label!r}: {now}"
            await page.keyboard.press("Enter")
            await page.wait_for_load_state()
            assert await page.locator("h1").inner_text() == label
            assert await page.locator("nav a[aria-current=page]").inner_text() == label

        # A whole form by keyboard: add a group on the users page, typing and pressing Enter.
        await console_page(page, ent, "users")
        for _ in range(80):
            await page.keyboard.press("Tab")
            if await page.evaluate("document.activeElement.id") == "group-name":
                break
        else:
            raise AssertionError("the group name field never took the keyboard focus")
        await page.keyboard.type("night shift")
        await page.keyboard.press("Enter")
        await page.wait_for_load_state()
        assert "Added group night shift." in await page.locator(".flash").inner_text()
        assert "night shift" in await page.locator("#groups").inner_text()
    finally:
        await context.close()


async def test_screenshots_of_every_main_page(stack, browser, api, tmp_path, logout_receiver):
    """Every main page of a configured enterprise renders for the superadmin (and an auditor sees
    the audit trail with its chain status); the pictures go to LANYARD_CONSOLE_SCREENSHOTS."""
    out = Path(os.environ.get("LANYARD_CONSOLE_SCREENSHOTS") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - before any page is open
    ent, su = await open_enterprise(stack, api)
    nurse = await ent.add_user("nurse.jane", display_name="Jane Doe")
    rover = await ent.add_app(template="epic-rover")
    charts = await ent.add_app(name="Charts", client_type="confidential", redirect_uri="https://charts.example/cb",
                               backchannel_logout_uri=logout_receiver.url)  # fmt: skip
    await ent.make_ready([nurse], [rover, charts], auth_mode="face", seats=250)
    device = Device(stack.base_url, ent.enterprise_id, api, device_id="iphone-ward-7")
    await ent.enrol_device(device.device_id, device.public_jwk)
    await device.check_out(nurse)
    auditor = await ent.add_user("security.office", roles=["auditor"])
    context, page = await sign_in(browser, stack, ent, su)
    try:
        shots = {
            "readiness": "",
            "app-profiles": "apps",
            "app-profile-new-rover": "apps/new?template=epic-rover",
            "app-profile": f"apps/{charts.client_id}",
            "device-sessions": "sessions",
            "users": "users",
            "user": f"users/{nurse.user_id}",
            "user-policies": "policies",
            "app-deployments": "deployments",
            "licences": "licences",
            "org-settings": "settings",
            "cloud-connection": "cloud",
        }
        for name, path in shots.items():
            response = await page.goto(f"/console/e/{ent.enterprise_id}/{path}")
            assert response.status == 200, (name, response.status)
            await page.screenshot(path=str(out / f"{name}.png"), full_page=True)
        await nav(page, "SSO application profiles")
        await page.get_by_role("link", name="Charts").click()
        await page.get_by_role("button", name="Rotate client secret").click()
        await page.screenshot(path=str(out / "app-profile-secret-once.png"), full_page=True)
        await console_page(page, ent, f"users/{nurse.user_id}")
        await page.get_by_role("button", name="Enrol a new authenticator").click()
        await page.screenshot(path=str(out / "user-totp-enrolment.png"), full_page=True)
        await console_page(page, ent, "cloud")
        await page.get_by_role("button", name="Generate cloud provisioning code").click()
        await page.screenshot(path=str(out / "cloud-connection-code.png"), full_page=True)
    finally:
        await context.close()
    context, page = await sign_in(browser, stack, ent, auditor)
    try:
        await console_page(page, ent, "audit")
        assert "Hash chain verified" in await page.locator("#chain-status").inner_text()
        assert await page.locator("#audit-records tbody tr").count() > 5
        await page.screenshot(path=str(out / "audit-trail.png"))
        # Filters, the export and the access question, as the security office uses them.
        await page.locator("#audit-filters").get_by_label("Device ID").fill(device.device_id)
        await page.get_by_role("button", name="Filter").click()
        devices = await page.locator("#audit-records tbody td:nth-child(6)").all_inner_texts()
        assert devices and set(devices) == {device.device_id}
        async with page.expect_download() as download:
            await page.get_by_role("link", name="Export CSV").click()
        exported = Path(await (await download.value).path()).read_text()  # noqa: ASYNC240 - a small local file
        assert exported.startswith("seq,event_id,type") and device.device_id in exported
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
        await page.goto(
            f"/console/e/{ent.enterprise_id}/audit?access_client_id={rover.client_id}"
            f"&access_device_id={device.device_id}&access_at={now}"
        )
        assert nurse.user_id in await page.locator("#access-result").inner_text()
    finally:
        await context.close()
    assert len(list(out.glob("*.png"))) >= 16  # noqa: ASYNC240 - after every page closed
