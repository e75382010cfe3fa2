"""The one second-factor rule: a badge is a first factor, like a password."""

import pytest

from lanyard.contracts.factors import has_second_factor


@pytest.mark.parametrize("amr", [("hwk",), ("HWK",), ("pwd",), ("pwd", "pwd"), ()])
def test_a_badge_or_a_password_alone_is_one_factor(amr):
    assert not has_second_factor(amr)


@pytest.mark.parametrize("amr", [("pwd", "otp"), ("hwk", "otp"), ("pwd", "mfa"), ("hwk", "face"), ("pwd", "TOTP")])
def test_a_code_or_another_factor_after_it_is_a_second_factor(amr):
    assert has_second_factor(amr)
