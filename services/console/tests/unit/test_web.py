"""Pure parts of the console: where `next` may point, how API refusals read, times, roles."""

import httpx

from lanyard.console.adapters.admin_api import ApiError
from lanyard.console.login import safe_next
from lanyard.console.web import NAV, when


def test_next_stays_inside_the_enterprise_console():
    assert safe_next("acme", "/console/e/acme/users?x=1") == "/console/e/acme/users?x=1"
    for evil in ("https://evil.example/", "//evil.example/console/e/acme/", "/console/e/other/", "/e/acme/admin",
                 "/console/e/acme//evil", "/console/e/acme/\\evil", None, ""):  # fmt: skip
        assert safe_next("acme", evil) == "/console/e/acme/"


def test_api_errors_keep_the_services_own_code_and_description():
    own = httpx.Response(409, json={"error": "setting_locked", "error_description": "cannot switch off"})
    assert (ApiError.from_response(own).error, ApiError.from_response(own).description) == (
        "setting_locked",
        "cannot switch off",
    )
    roles = httpx.Response(403, json={"detail": {"error": "insufficient_role", "error_description": "needs one of"}})
    assert ApiError.from_response(roles).error == "insufficient_role"
    validation = httpx.Response(422, json={"detail": [{"loc": ["body", "seats"], "msg": "must be > 0"}]})
    assert ApiError.from_response(validation).description == "seats: must be > 0"
    html = httpx.Response(502, text="<html>bad gateway</html>")
    assert ApiError.from_response(html).status == 502 and "<html>" not in ApiError.from_response(html).description


def test_times_read_in_utc_to_the_second():
    assert when("2026-12-01T22:59:03.913410+00:00") == "2026-12-01 22:59:03 UTC"
    assert when("2026-12-01T23:59:03+01:00") == "2026-12-01 22:59:03 UTC"
    assert when(None) == "—" and when("soon") == "soon"


def test_each_page_is_offered_to_the_roles_its_api_accepts():
    roles = {item.path: set(item.roles) for item in NAV}
    assert roles["apps"] == {"superadmin"}  # IdP app-profile routes: superadmin only
    assert roles["sessions"] == {"superadmin", "admin"}  # session admin routes
    assert roles["audit"] == {"auditor", "superadmin"}  # audit API
    assert roles[""] == {"superadmin", "admin", "auditor"}  # readiness: READ
