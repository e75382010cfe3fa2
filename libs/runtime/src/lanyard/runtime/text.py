"""Free text as every service accepts it: names, display names, descriptions, device labels.

Such text travels far — into events, the audit log, CSV exports, server logs, later a console — so it
is normalised once, at the front door: Unicode NFC (one spelling of "é", so equal names compare
equal) and no surrounding whitespace. Characters that would let it pose as something else there
are refused (400, naming the field), never silently dropped:

- control characters (Unicode category Cc: NUL, ESC, DEL, C1): log and terminal injection;
- unpaired surrogates (Cs): no encoder can write them, so they fail later, far from the request;
- line and paragraph separators (U+2028/2029) and, in single-line text, CR/LF/TAB: forged log lines;
- bidirectional embeddings, overrides and isolates (U+202A–202E, U+2066–2069): text that reads
  differently from what it is ("Trojan Source", CVE-2021-42574).

`FreeText` is the pydantic type (`Annotated[FreeText, Field(max_length=...)]` works: length limits
apply to the normalised text); `clean_text` is the same rule for code outside a model.
"""

from __future__ import annotations

import unicodedata
from typing import Annotated, Any

from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError

_BIDI = frozenset(chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A)))
_LINE_BREAKS = frozenset("\u2028\u2029")
_MULTILINE_OK = frozenset("\n\t")


class UnsafeText(ValueError):
    """Text with a character free text may not carry; the message names the kind, not the text."""


def clean_text(value: str, *, multiline: bool = False) -> str:
    """`value` in NFC without surrounding whitespace; raises UnsafeText for a refused character.
    `multiline` allows LF and TAB inside (never CR: one line ending, no overwritten lines)."""
    value = value.strip()  # a pasted trailing newline is whitespace to strip, not a refusal
    if value.isascii() and value.isprintable():  # the common case, decided in C
        return value
    for ch in value:
        category = unicodedata.category(ch)
        if category == "Cc" and not (multiline and ch in _MULTILINE_OK):
            raise UnsafeText("must not contain control characters")
        if category == "Cs":
            raise UnsafeText("must not contain unpaired surrogates")
        if ch in _LINE_BREAKS:
            raise UnsafeText("must not contain line or paragraph separators")
        if ch in _BIDI:
            raise UnsafeText("must not contain bidirectional override characters")
    return unicodedata.normalize("NFC", value).strip()


def _free_text(multiline: bool) -> Any:
    def validate(value: Any) -> Any:
        if not isinstance(value, str):
            return value  # the str type after this says what is wrong
        try:
            return clean_text(value, multiline=multiline)
        except UnsafeText as exc:
            raise PydanticCustomError("unsafe_text", str(exc)) from None

    return BeforeValidator(validate)


FreeText = Annotated[str, _free_text(multiline=False)]
"""One line of free text: NFC, stripped, no control, separator or bidi-override characters."""

FreeTextBlock = Annotated[str, _free_text(multiline=True)]
"""Like FreeText, but LF and TAB may appear inside (descriptions)."""
