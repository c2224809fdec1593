"""Text from outside made safe to show, to open in a spreadsheet, and to store.

Everything a run shows comes partly from outside: the server's ``message`` and
``state_detail``, its headers, result links, list lines, file names.  Any of it may hold
terminal control sequences (``\\x1b[2J`` clears the screen, ``\\x1b]0;...\\x07`` retitles
the window, a bare CR overwrites the line), a formula for a spreadsheet, or, echoed by a
server, the AppCode.  This module is the one place that knows how to defuse each:

- :func:`visible`: control characters escaped as visible text (``\\x1b``), so a string
  is shown as one line that a terminal takes literally: every line on stderr, the
  gallery's text and every CSV cell pass through it;
- :func:`spreadsheet_cell` / :func:`from_spreadsheet_cell`: the OWASP rule against
  formula injection for CSV cells, and its inverse for zuotang's own readers;
- :func:`json_text`: JSON with the exact text, but no raw character a terminal acts on;
- :class:`Secrets`: the AppCode (and any other secret) masked wherever it appears.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Iterable
from typing import Any

_UNSAFE = re.compile(
    "["
    "\x00-\x1f\x7f-\x9f"  # C0 controls (ESC, CR, LF, TAB, BEL...), DEL, C1 controls (CSI)
    "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"  # bidirectional overrides
    "\u2028\u2029"  # line and paragraph separators
    "\ud800-\udfff"  # lone surrogates (bytes of a name that is not UTF-8)
    "]"
)
"""What :func:`visible` escapes: every character a terminal acts on instead of printing
it, that breaks a line, or that reorders the text shown around it (a file name that reads
``gpj.exe`` backwards)."""


_SHORT = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escaped(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    if char in _SHORT:
        return _SHORT[char]
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def visible(text: str) -> str:
    """``text`` with every control character shown as an escape (``\\x1b``, ``\\r``,
    ``\\n``, ``\\t``, U+202E as ``\\u202e``): printed, it is one line that moves no
    cursor and changes no terminal setting.  A backslash already in the text is left as
    it is (Windows paths stay readable), so the escaping is for people, not reversible."""
    if _UNSAFE.search(text) is None:
        return text
    return _UNSAFE.sub(_escaped, text)


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")
"""A text cell starting with one of these is a formula to Excel, WPS or LibreOffice
(OWASP, "CSV Injection"); after :func:`visible` only the first four can still start one."""
TEXT_MARK = "'"
"""What a neutralised cell starts with: spreadsheets read the cell as text."""


def spreadsheet_cell(text: str) -> str:
    """A text cell for a CSV report: :func:`visible`, then a leading ``'`` when the cell
    would start a formula (OWASP's rule) or already starts with ``'`` (so that
    :func:`from_spreadsheet_cell` gives back exactly what was written)."""
    text = visible(text)
    if text.startswith(FORMULA_STARTS) or text.startswith(TEXT_MARK):
        return TEXT_MARK + text
    return text


def from_spreadsheet_cell(cell: str) -> str:
    """The inverse of :func:`spreadsheet_cell`'s quote (its escapes stay)."""
    return cell[1:] if cell.startswith(TEXT_MARK) else cell


_JSON_UNSAFE = re.compile(
    "[\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029\ud800-\udfff]"
)
"""The characters of :data:`_UNSAFE` that ``json.dumps(ensure_ascii=False)`` leaves raw
(it escapes C0 controls itself)."""


def _json_escaped(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def json_text(value: Any) -> str:
    """``value`` as one line of JSON: UTF-8 text kept readable (``ensure_ascii=False``),
    but every character a terminal would act on written as a ``\\uXXXX`` escape, which
    a JSON reader turns back into the exact same text."""
    text = json.dumps(value, ensure_ascii=False)
    if _JSON_UNSAFE.search(text) is None:
        return text
    return _JSON_UNSAFE.sub(_json_escaped, text)


MASK = "****"
"""What a secret is replaced with."""
MIN_SECRET_CHARS = 4
"""A secret shorter than this is not masked: no real AppCode is (they are 32 characters),
and masking a 1-letter test code would garble every word holding that letter."""


class Secrets:
    """The secrets of a run (the AppCode; an AppSecret once signatures are used), masked
    in any text before it is shown or stored: as they are, and percent-encoded as they
    would be in a URL a server built around them."""

    def __init__(self, values: Iterable[str | None] = ()) -> None:
        forms: set[str] = set()
        for value in values:
            if value and len(value) >= MIN_SECRET_CHARS:
                forms |= {
                    value,
                    urllib.parse.quote(value, safe=""),
                    urllib.parse.quote_plus(value, safe=""),
                }
        self._forms = sorted(forms, key=len, reverse=True)
        """Longest first: a form that contains another is masked whole."""

    def __bool__(self) -> bool:
        return bool(self._forms)

    def found_in(self, text: str) -> bool:
        return any(form in text for form in self._forms)

    def mask(self, text: str) -> str:
        """``text`` with every secret replaced by :data:`MASK`."""
        for form in self._forms:
            if form in text:
                text = text.replace(form, MASK)
        return text

    def mask_optional(self, text: str | None) -> str | None:
        return None if text is None else self.mask(text)

    def __repr__(self) -> str:  # never show them
        return f"Secrets({len(self._forms)} forms)"
