"""The one "second factor" rule, shared by the IdP (which issues `amr`), the session service
(which checks a checkout assertion) and the policy service (which evaluates "Require a second
factor").

The IdP signs a user in with one primary factor — a password (`pwd`) or a badge, which it names
`hwk` (RFC 8176: proof of possession of a hardware key) — and, when a second factor is needed,
a TOTP code (`otp`). So `hwk` is a *primary* factor here: a badge alone is one factor and never
satisfies "Require a second factor"; a badge with a code, like a password with a code, does.
The other RFC 8176 values below are accepted as second factors from upstream IdPs and devices.
"""

from __future__ import annotations

from collections.abc import Iterable

PRIMARY_FACTORS = frozenset({"pwd", "hwk"})
"""What the IdP signs in with first: a password or a badge."""

SECOND_FACTORS = frozenset({"otp", "totp", "mfa", "sms", "swk", "face", "fpt", "sc", "iris", "retina", "vbm"})
"""RFC 8176 `amr` values (and `totp`) that prove a factor beyond the password or the badge."""


def has_second_factor(amr: Iterable[str]) -> bool:
    """True when `amr` names a second factor (case-insensitive); a badge (`hwk`) never is one."""
    return any(m.lower() in SECOND_FACTORS for m in amr)
