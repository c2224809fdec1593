"""zuotang_cli.sanitize: outside text made safe to show, to open in a spreadsheet, to store."""

from __future__ import annotations

import io
import json
import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from zuotang_cli.cli.progress import NullDisplay, PlainDisplay, say
from zuotang_cli.models import Outcome, Record
from zuotang_cli.sanitize import (
    MASK,
    Secrets,
    from_spreadsheet_cell,
    json_text,
    spreadsheet_cell,
    visible,
)

ATTACKS = {
    "clear screen": "\x1b[2J",
    "retitle": "\x1b]0;owned\x07",
    "overwrite": "fine\rFAKE",
    "split line": "one\r\ntwo",
    "c1 csi": "\x9b31m",
    "delete": "a\x7fb",
    "bidi override": "photo\u202egnp.exe",
    "line separator": "a\u2028b",
    "lone surrogate": "name\udcff.png",
    "nul": "a\x00b",
}


def test_every_control_is_shown_escaped_on_one_line() -> None:
    for name, text in ATTACKS.items():
        shown = visible(text)
        assert shown.isprintable(), (name, shown)  # nothing a terminal acts on
        assert "\n" not in shown and "\r" not in shown and "\x1b" not in shown, name
    assert visible("\x1b[2J") == "\\x1b[2J"
    assert visible("one\r\ntwo\tthree") == "one\\r\\ntwo\\tthree"
    assert visible("\x9b\u202e\udcff") == "\\x9b\\u202e\\udcff"


def test_ordinary_text_is_left_as_it_is() -> None:
    for text in ("https://example.com/a b.jpg", "C:\\photos\\照片.png", "state -8: 超时", ""):
        assert visible(text) is text  # the fast path: no copy


BIDI_CONTROLS = set("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


@given(st.text())
def test_visible_is_always_one_line_with_no_control(text: str) -> None:
    shown = visible(text)
    assert len(shown.splitlines()) <= 1
    for char in shown:
        assert unicodedata.category(char) not in ("Cc", "Cs", "Zl", "Zp"), repr(char)
        assert char not in BIDI_CONTROLS


@given(st.text())
def test_a_cell_never_starts_a_formula_and_reads_back(text: str) -> None:
    cell = spreadsheet_cell(text)
    assert not cell.startswith(("=", "+", "-", "@", "\t", "\r", "\n"))
    assert from_spreadsheet_cell(cell) == visible(text)


@given(st.text())
def test_json_text_is_exact_and_terminal_safe(text: str) -> None:
    line = json_text({"message": text})
    assert json.loads(line) == {"message": text}
    assert visible(line) == line  # nothing left for a terminal to act on
    assert "\n" not in line


def test_json_text_keeps_chinese_readable() -> None:
    assert json_text("图片") == '"图片"'


def test_secrets_are_masked_as_they_are_and_percent_encoded() -> None:
    secrets = Secrets(["code/with+chars", None, ""])
    text = "a=code/with+chars b=code%2Fwith%2Bchars c=code%2Fwith%2Bchars"
    assert secrets.mask(text) == f"a={MASK} b={MASK} c={MASK}"
    assert secrets.found_in(text) and not secrets.found_in("nothing here")
    assert not Secrets([None, "", "abc"]) and Secrets(["abcd"])  # too short to be one
    assert "code" not in repr(secrets)


def test_every_display_shows_outside_text_escaped() -> None:
    record = Record(
        input="http://x/\x1b[2J.png",
        outcome=Outcome.FAILED,
        message="bad\r\nFAKE: done\x1b]0;t\x07",
        error_class="state-7",
    )
    for display in (NullDisplay, PlainDisplay):
        stream = io.StringIO()
        shown = display(stream)
        shown.error(f"failed: {record.input}: {record.message}")
        if isinstance(shown, PlainDisplay):
            shown.record(record)
        text = stream.getvalue()
        assert "\x1b" not in text and "\x07" not in text and "\r" not in text
        assert all(line.startswith("zuotang: ") for line in text.splitlines())
    stream = io.StringIO()
    say(stream, "error: cannot read \x1b[31mred")
    assert stream.getvalue() == "zuotang: error: cannot read \\x1b[31mred\n"
