"""Pure rules of the directory side: redirect URIs, `next` paths, TOTP, lockout, key rotation,
the MDM profile."""

from __future__ import annotations

import plistlib

import pytest

from lanyard.idp.directory.domain import (
    FailureState,
    InvalidUri,
    LockoutPolicy,
    hotp,
    new_ring,
    otpauth_uri,
    rotate_ring,
    rp_client_id_problem,
    rp_secret_problem,
    safe_next,
    totp_match,
    validate_backchannel_uri,
    validate_redirect_uri,
)
from lanyard.idp.directory.mdm import origin_of, sso_extension_profile

GOOD = [
    "com.epic.rover.oidc://callback",
    "https://mobile.epic.com/rover/OIDC/redirect/",
    "https://rp.example.org/cb?x=1",
    "http://127.0.0.1/cb",
    "http://127.0.0.1:8765/cb",
    "http://[::1]:5000/cb",
    "com.example.app:/oauth2redirect",
]
BAD = [
    ("myapp://callback", "reverse-DNS"),
    ("https://rp.example.org/cb#frag", "fragment"),
    ("https://*.example.org/cb", "wildcard"),
    ("https://user:pw@rp.example.org/cb", "userinfo"),
    ("http://localhost/cb", "loopback"),
    ("http://rp.example.org/cb", "loopback"),
    ("http://127.0.0.1:99999/cb", "port"),
    ("javascript:alert(1)", "reverse-DNS"),
    ("/relative/path", "absolute"),
    ("https:///nohost", "host"),
    ("https://rp.example.org/c b", "whitespace"),
    ("", "empty"),
]


@pytest.mark.parametrize("uri", GOOD)
def test_redirect_uris_accepted(uri):
    assert validate_redirect_uri(uri) == uri


@pytest.mark.parametrize(("uri", "why"), BAD)
def test_redirect_uris_rejected(uri, why):
    with pytest.raises(InvalidUri) as exc:
        validate_redirect_uri(uri)
    assert why in exc.value.reason


def test_backchannel_uri_must_be_https_or_loopback():
    assert validate_backchannel_uri("https://rp.example.org/bcl")
    assert validate_backchannel_uri("http://127.0.0.1:9000/bcl")
    with pytest.raises(InvalidUri):
        validate_backchannel_uri("com.epic.rover.oidc://bcl")
    with pytest.raises(InvalidUri):
        validate_backchannel_uri("http://rp.example.org/bcl")


@pytest.mark.parametrize(
    ("next_path", "expected"),
    [
        ("/e/acme/authorize?client_id=x", "/e/acme/authorize?client_id=x"),
        ("/e/other/authorize", None),
        ("https://evil.example/e/acme/", None),
        ("//evil.example/e/acme/", None),
        ("/e/acme/../other/x", None),
        ("/e/acme\\..\\x", None),
        ("/e/acme/x\r\nSet-Cookie: a", None),
        ("", None),
        (None, None),
        # Only the authorization endpoint: a sign-in continues an app's request, nothing else.
        ("/e/acme/authorize/resume/Ab-12_x", "/e/acme/authorize/resume/Ab-12_x"),
        ("/e/acme/authorize", "/e/acme/authorize"),
        ("/e/acme/authorize/resume/a/b", None),
        ("/e/acme/authorize/resume/../../logout", None),
        ("/e/acme/authorize/resume/x?y=1", None),
        ("/e/acme/authorizeX", None),
        ("/e/acme/logout?post_logout_redirect_uri=https://evil.example", None),
        ("/e/acme/login/done", None),
        ("/e/acme/admin/users", None),
        ("/e/acme/authorize?x=1#frag", None),
    ],
)
def test_next_is_never_an_open_redirect(next_path, expected):
    assert safe_next(next_path, "acme") == expected


RFC6238_SECRET = b"12345678901234567890"


@pytest.mark.parametrize(
    ("unix_time", "code"),
    [(59, "94287082"), (1111111109, "07081804"), (1111111111, "14050471"), (1234567890, "89005924"),
     (2000000000, "69279037"), (20000000000, "65353130")],
)  # fmt: skip
def test_totp_rfc6238_sha1_vectors(unix_time, code):
    assert hotp(RFC6238_SECRET, unix_time // 30, digits=8) == code
    assert totp_match(RFC6238_SECRET, code[-6:], unix_time, None) == unix_time // 30


def test_totp_window_and_replay():
    now = 1111111111
    step = now // 30
    assert totp_match(RFC6238_SECRET, hotp(RFC6238_SECRET, step - 1), now, None) == step - 1
    assert totp_match(RFC6238_SECRET, hotp(RFC6238_SECRET, step + 1), now, None) == step + 1
    assert totp_match(RFC6238_SECRET, hotp(RFC6238_SECRET, step - 2), now, None) is None
    assert totp_match(RFC6238_SECRET, hotp(RFC6238_SECRET, step), now, last_used_step=step) is None
    assert totp_match(RFC6238_SECRET, hotp(RFC6238_SECRET, step - 1), now, last_used_step=step) is None
    assert totp_match(RFC6238_SECRET, "12345", now, None) is None
    assert totp_match(RFC6238_SECRET, "abcdef", now, None) is None


def test_otpauth_uri():
    uri = otpauth_uri(RFC6238_SECRET, "Lanyard", "alice")
    assert uri.startswith("otpauth://totp/Lanyard%3Aalice?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ")
    assert "issuer=Lanyard" in uri and "digits=6" in uri and "period=30" in uri


def test_lockout_arithmetic():
    policy = LockoutPolicy(max_failures=5, window_s=900, duration_s=900)
    s = FailureState()
    for i in range(4):
        s = s.after_failure(1000 + i, policy)
        assert not s.locked(1000 + i)
    assert s.count == 4
    s = s.after_failure(1010, policy)
    assert s.locked(1010) and s.locked(1909) and not s.locked(1910)
    assert s.after_failure(1500, policy) == s  # failures while locked do not extend the lock
    fresh = FailureState().after_failure(0, policy).after_failure(1, policy)
    assert fresh.after_failure(901, policy).count == 1  # outside the window: counting restarts


def test_rotation_state_machine():
    ring = new_ring({"RS256": ("r1", "r2"), "ES256": ("e1", "e2")}, now=0)
    assert ring.active("RS256").kid == "r1" and {e.kid for e in ring.published(0)} == {"r1", "r2", "e1", "e2"}
    ring2 = rotate_ring(ring, {"RS256": "r3", "ES256": "e3"}, now=100, max_token_lifetime_s=3600)
    assert ring2.version == 2
    assert ring2.active("RS256").kid == "r2" and ring2.active("ES256").kid == "e2"
    status = {e.kid: e.status for e in ring2.entries}
    assert status == {"r1": "retired", "e1": "retired", "r2": "active", "e2": "active", "r3": "next", "e3": "next"}
    assert {e.kid for e in ring2.published(3699)} == set(status)
    assert {e.kid for e in ring2.published(3700)} == {"r2", "e2", "r3", "e3"}
    ring3 = rotate_ring(ring2, {"RS256": "r4", "ES256": "e4"}, now=5000, max_token_lifetime_s=3600)
    assert {e.kid for e in ring3.entries} == {"r2", "e2", "r3", "e3", "r4", "e4"}  # expired retirees dropped


def test_mobileconfig_payload_names_the_origin_and_is_one_profile_per_host():
    raw = sso_extension_profile("https://idp.example", "dev.lanyard.locker.ssoextension", "TEAM1")
    profile = plistlib.loads(raw)
    (payload,) = profile["PayloadContent"]
    assert profile["PayloadType"] == "Configuration"
    assert payload["PayloadType"] == "com.apple.extensiblesso"
    assert payload["ExtensionIdentifier"] == "dev.lanyard.locker.ssoextension"
    assert payload["TeamIdentifier"] == "TEAM1" and payload["Type"] == "Redirect"
    assert payload["URLs"] == ["https://idp.example"]  # the seed's form: an origin, no issuer path
    assert sso_extension_profile("https://idp.example", "x.y", "T") == sso_extension_profile(
        "https://idp.example", "x.y", "T"
    )
    other = plistlib.loads(sso_extension_profile("https://other.example", "x.y", "T"))
    assert other["PayloadUUID"] != profile["PayloadUUID"]


@pytest.mark.parametrize(
    ("url", "origin"),
    [("https://IdP.Example/e/acme", "https://idp.example"), ("http://127.0.0.1:8480", "http://127.0.0.1:8480"),
     ("https://gw.example/lanyard", "https://gw.example")],
)  # fmt: skip
def test_origin_of_the_public_base_url(url, origin):
    assert origin_of(url) == origin


@pytest.mark.parametrize(
    ("secret", "words"),
    [
        ("x" * 31, "too short"),
        ("ab" * 300, "too long"),
        ("é" + "Zq8-Vx3_kLm9Pw2Rt7Yb4Nc6Hd1Jf5Gs0A", "printable ASCII"),
        ("abcdeabcdeabcdeabcdeabcdeabcdeabcde", "too repetitive"),
        ("my-rp-" + "Zq8-Vx3_kLm9Pw2Rt7Yb4Nc6Hd1Jf5Gs0A", "client id"),
        ("Zq8-Vx3_kLm9Pw2Rt7Yb4Nc6Hd1Jf5Gs0A", None),
    ],
)
def test_an_rp_supplied_secret_must_be_one_an_rp_generator_made(secret, words):
    problem = rp_secret_problem(secret, "my-rp")
    assert (problem is None) if words is None else (words in problem)
    assert problem is None or secret not in problem  # the reason never repeats the secret


@pytest.mark.parametrize(
    ("client_id", "ok"),
    [("epic-prod.rover-01", True), ("a@b.example", True), ("ab", False), ("bad:id", False), ("with space", False),
     ("lanyard-console", False), ("Lanyard-x", False), ("cli_abc", False), ("-leading", False)],
)  # fmt: skip
def test_rp_chosen_client_ids(client_id, ok):
    assert (rp_client_id_problem(client_id) is None) is ok
