"""Release numbers: the one order the session service (checkout) and policy (readiness) share."""

import pytest

from lanyard.contracts.versions import at_least, release_key


@pytest.mark.parametrize(
    ("version", "minimum", "expected"),
    [
        ("4.3", "4.3", True),
        ("4.3.0", "4.3", True),
        ("4.3.1", "4.3", True),
        ("4.10", "4.3", True),  # numeric, not text, order
        ("5.0", "4.3", True),
        ("4.2.9", "4.3", False),
        ("4.3.0-beta.2", "4.3", False),  # a pre-release comes before its release
        ("4.3.0+1187", "4.3", True),  # build metadata does not count
        ("4.3.1-rc1", "4.3", True),
        (None, "4.3", False),  # a Locker that did not report is not known to be recent enough
        ("four", "4.3", False),
        ("4.3.", "4.3", False),
        ("4.3.0.0.0", "4.3", False),
    ],
)
def test_at_least(version, minimum, expected):
    assert at_least(version, minimum) is expected


def test_equal_releases_sort_equal_and_malformed_ones_raise():
    assert release_key("4.3") == release_key("4.3.0.0")
    assert release_key("4.3.0-beta") < release_key("4.3.0") < release_key("4.3.1-alpha")
    with pytest.raises(ValueError):
        release_key("v4.3")
