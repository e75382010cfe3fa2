"""Secrets and personal data never reach logs, whatever a handler passes."""

from lanyard.runtime.logging import REDACTED, redact


def test_secret_and_personal_fields_are_redacted_by_key():
    out = redact(None, "info", {
        "event": "login", "password": "hunter2", "client_secret": "s", "refresh_token": "r",
        "code": "c", "email": "a@b", "username": "alice", "user_id": "u1", "status_code": 400,
    })  # fmt: skip
    for key in ("password", "client_secret", "refresh_token", "code", "email", "username"):
        assert out[key] == REDACTED, key
    assert out["user_id"] == "u1"
    assert out["status_code"] == 400
    assert out["event"] == "login"
