"""Release numbers as events carry them (the Locker app's, Lanyard's own): their form and order.

A release is dotted numbers, one to four of them (`4.3`, `4.3.1`), optionally followed by a
pre-release or build suffix (`4.3.0-beta.2`, `4.3.0+1187`). Order is numeric part by part,
missing parts count as 0 (`4.3` == `4.3.0`), and a pre-release comes before its release
(`4.3.0-beta` < `4.3.0`); build metadata does not count. Producers (the session service, which
enforces a minimum at checkout) and consumers (the policy service's readiness table) compare
with this one function, so they cannot disagree about whether a device is below the minimum.
"""

from __future__ import annotations

import re

RELEASE_PATTERN = r"^\d{1,4}(\.\d{1,4}){0,3}([-+][0-9A-Za-z.-]{1,32})?$"
"""A release as a client may report it."""

MINIMUM_PATTERN = r"^\d{1,4}(\.\d{1,4}){0,3}$"
"""A minimum an admin may set: numbers only."""

_RELEASE = re.compile(RELEASE_PATTERN)

DEFAULT_MINIMUM_LOCKER_VERSION = "4.3"
"""The seed's prerequisite: Imprivata Locker app for iOS 4.3 or later."""


def release_key(version: str) -> tuple[int, int, int, int, int]:
    """A sortable key of `version`; raises ValueError when it is not a release."""
    if not isinstance(version, str) or not _RELEASE.match(version):
        raise ValueError("not a release number")
    core = re.split(r"[-+]", version, maxsplit=1)[0]
    numbers = [int(n) for n in core.split(".")] + [0, 0, 0]
    pre_release = "-" in version and ("+" not in version or version.index("-") < version.index("+"))
    return (numbers[0], numbers[1], numbers[2], numbers[3], 0 if pre_release else 1)


def at_least(version: str | None, minimum: str) -> bool:
    """True when `version` is `minimum` or later; a missing or malformed version never is."""
    if version is None:
        return False
    try:
        return release_key(version) >= release_key(minimum)
    except ValueError:
        return False
