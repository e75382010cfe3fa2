"""Free text: NFC, stripped, and refused when it carries characters that forge logs or hide text."""

import pytest
from pydantic import BaseModel, Field, ValidationError

from lanyard.runtime.text import FreeText, FreeTextBlock, UnsafeText, clean_text


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("Ann", "Ann"),
        ("  Ann Smith \n", "Ann Smith"),  # a pasted newline at the end is whitespace, not a refusal
        ("Ne\u0301la", "N\u00e9la"),  # NFC: one spelling of é
        ("\u3000Yuki\u3000", "Yuki"),
        ("Zoë 👩‍⚕️", "Zoë 👩‍⚕️"),  # ZWJ sequences are text
        ("שָׁלוֹם", "שָׁלוֹם"),
    ],
)
def test_normalised(raw, clean):
    assert clean_text(raw) == clean


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("Nurse\x00Joy", "control"),
        ("Joy\x1b[31m", "control"),
        ("a\rb", "control"),
        ("a\nb", "control"),
        ("a\x85b", "control"),  # C1 NEL
        ("x\u2028y", "separators"),
        ("abc\u202edef", "bidirectional"),
        ("abc\u2066def", "bidirectional"),
        ("bad\ud800", "surrogates"),
    ],
)
def test_refused(raw, why):
    with pytest.raises(UnsafeText, match=why):
        clean_text(raw)


def test_blocks_allow_line_feeds_and_tabs_only():
    assert clean_text("line 1\n\tline 2", multiline=True) == "line 1\n\tline 2"
    with pytest.raises(UnsafeText):
        clean_text("line 1\r\nline 2", multiline=True)


class Body(BaseModel):
    name: FreeText = Field(min_length=1, max_length=3)
    note: FreeTextBlock | None = None


def test_the_pydantic_type_checks_lengths_after_normalising_and_names_the_field():
    assert Body(name="  e\u0301 ").name == "\u00e9"  # 4 characters sent, 1 kept: within max_length=3
    with pytest.raises(ValidationError) as bad:
        Body(name="   ")
    assert bad.value.errors()[0]["type"] == "string_too_short"
    with pytest.raises(ValidationError) as bad:
        Body(name="a\x00")
    error = bad.value.errors()[0]
    assert error["loc"] == ("name",) and error["msg"] == "must not contain control characters"
    with pytest.raises(ValidationError):
        Body(name=5)
    assert Body(name="x", note="a\nb").note == "a\nb"
