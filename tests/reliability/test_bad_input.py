"""Bad input, property-based (hypothesis), end to end: list files and stdin of arbitrary
bytes, huge lines, NUL bytes, mixed encodings, a BOM, CRLF, URLs with spaces, unicode
hosts and paths, ``file://``, ``javascript:``, private addresses.  Never a traceback; every
entry gets a report row with a reason, or is sent correctly encoded: what the emulator
received (its billed_by_input keys are image_url as received) is checked against the line.
"""

from __future__ import annotations

import json
import re
import tempfile
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, unquote, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.reliability.support import Trial, enhance, report_rows

SUITE = "Bad input (property-based, hypothesis)"
MAX_LINE_BYTES = 64 * 1024
BOM = b"\xef\xbb\xbf"
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG", b"BM", b"II*\x00", b"MM\x00*", b"GIF8", b"RIFF")
"""First bytes by which a file given by path is taken for an image, not a list."""
HUGE = b"https://img.test/" + b"h" * (MAX_LINE_BYTES + 5000)

SPECIAL_LINES = [
    b"",
    b"   ",
    b"\t \r",
    b"# a comment",
    b"#https://img.test/commented-out.png",
    HUGE,
    b"https://img.test/" + b"l" * 600,
    b"javascript:alert(document.cookie)",
    b"JAVASCRIPT:alert(1)",
    b"file:///etc/passwd",
    b"file://localhost/etc/shadow",
    b"ftp://img.test/x.png",
    b"data:image/png;base64,iVBORw0KGgo=",
    b"/etc/passwd",
    b"../../../../etc/hostname",
    b"  https://img.test/padded.png  ",
    b"https://img.test/a b c.png",
    b"https://img.test/tab\there.png",
    b"https://img.test/nul\x00byte.png",
    b"https://img.test/\x1b[31mred.png",
    b"http://10.0.0.7/private.png",
    b"http://192.168.1.1/router.png",
    b"http://169.254.169.254/latest/meta-data/",
    b"http://[::1]:8080/loopback.png",
    b"http://localhost/x.png",
    b"http://0x7f000001/hex-ip.png",
    "https://例え.テスト/画像.png".encode(),
    "https://bücher.example/straße.png?q=größe#frag".encode(),
    "https://bücher.example/straße.png".encode("latin-1"),
    "https://img.test/%E2%82%AC-and-€-and-%zz.png".encode(),
    b"https://img.test/?%",
    b"https://user:p%40ss@img.test/with-credentials.png",
    b"https://img.test:0/port-zero.png",
    b"https://img.test:99999/port-too-big.png",
    b"https://img.test:/empty-port.png",
    b"http:///no-host.png",
    b"https://[not-ipv6]/x.png",
    b"\xef\xbb\xbfhttps://img.test/bom-inside.png",
    "https://img.test/\u202egnp.exe".encode(),
    "https://img.test/e\u0301.png".encode(),
    b"\xff\xfeh\x00t\x00t\x00p\x00",
]
SCHEMES = ["http", "https", "HTTP", "hTtPs", "ftp", "file", "javascript", "data", ""]
HOSTS = [
    "img.test",
    "IMG.Test",
    "127.0.0.1",
    "10.1.2.3",
    "[::1]",
    "[fe80::1]",
    "localhost",
    "例え.テスト",
    "bücher.example",
    "xn--bcher-kva.example",
    "img.test:8080",
    "img.test:80",
    "a..b",
    "",
]


@st.composite
def url_lines(draw: st.DrawFn) -> bytes:
    scheme = draw(st.sampled_from(SCHEMES))
    host = draw(st.one_of(st.sampled_from(HOSTS), st.text(max_size=12)))
    path = draw(st.text(max_size=30))
    text = f"{scheme}://{host}/{path}"
    if draw(st.booleans()):
        text += "?" + draw(st.text(max_size=15))
    if draw(st.integers(0, 4)) == 0:
        text += "#" + draw(st.text(max_size=8))
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-8", "latin-1", "utf-16-le"]))
    raw = text.encode(encoding, "replace")
    if draw(st.integers(0, 9)) == 0:
        cut = draw(st.integers(0, len(raw)))
        raw = raw[:cut] + b"\x00" + raw[cut:]
    return raw


LINES = st.one_of(
    url_lines(),
    st.sampled_from(SPECIAL_LINES),
    st.binary(max_size=60),
)


@dataclass
class ListFile:
    lines: list[bytes]
    """The lines as they are in the file (no line ending; never b'\\n' inside)."""
    content: bytes
    via_stdin: bool


@st.composite
def list_files(draw: st.DrawFn) -> ListFile:
    lines = [line.replace(b"\n", b" ") for line in draw(st.lists(LINES, max_size=25))]
    endings = draw(
        st.lists(st.sampled_from([b"\n", b"\r\n"]), min_size=len(lines), max_size=len(lines))
    )
    lines = [
        line + (b"\r" if end == b"\r\n" else b"") for line, end in zip(lines, endings, strict=True)
    ]
    bom, final_newline = draw(st.booleans()), draw(st.booleans())
    if bom and lines:
        lines[0] = BOM + lines[0]
    content = b"\n".join(lines)
    if final_newline and lines:
        content += b"\n"
    via_stdin = draw(st.booleans()) or content.startswith(IMAGE_MAGIC)  # see the BM bug below
    return ListFile(lines, content, via_stdin=via_stdin)


def entries(lines: list[bytes], *, via_stdin: bool = True) -> int:
    """How many report rows the lines must give: every line but blanks and # comments
    (an undecodable or over-long line is a row too); a list file in UTF-16 is one row."""
    if not via_stdin and lines and lines[0].startswith(UTF16_BOMS):
        return 1
    count = 0
    for number, raw in enumerate(lines):
        if len(raw) >= MAX_LINE_BYTES:
            count += 1
            continue
        if number == 0:
            raw = raw.removeprefix(BOM)
        try:
            text = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            count += 1
            continue
        count += bool(text) and not text.startswith("#")
    return count


# -- what "correctly encoded" means, checked apart from the client's own code ---------------

_HEX = set("0123456789ABCDEFabcdef")


def well_formed(url: str) -> bool:
    """ASCII, no space or control character, every '%' starting an escape, http(s)."""
    if not url.isascii() or any(ch <= " " or ch == "\x7f" for ch in url):
        return False
    for at, ch in enumerate(url):
        if ch == "%" and not (len(url) > at + 2 and {url[at + 1], url[at + 2]} <= _HEX):
            return False
    return urlsplit(url).scheme in ("http", "https") and len(url) <= 512


def _host(parts: SplitResult) -> str:
    host = parts.hostname or ""
    if host.isascii():
        return host.lower()
    return host.encode("idna").decode("ascii").lower()


def meaning(url: str) -> tuple[str, str, int | None, str, str]:
    """What a URL points at, decoded: scheme, host (IDNA), port, path, query."""
    parts = urlsplit(url.strip())
    default = {"http": 80, "https": 443}[parts.scheme.lower()]
    port = parts.port if parts.port != default else None
    return (
        parts.scheme.lower(),
        _host(parts),
        port,
        unquote(parts.path or "/", errors="replace"),
        unquote(parts.query, errors="replace"),
    )


# -- the property ---------------------------------------------------------------------------


@dataclass
class Tally:
    examples: int = 0
    lines: int = 0
    rows: Counter[str] = field(default_factory=Counter)
    sent: int = 0
    reasons: Counter[str] = field(default_factory=Counter)


def check_one(trial: Trial, emu: Any, tmp_path: Path, case: ListFile, tally: Tally) -> None:
    work = Path(tempfile.mkdtemp(dir=tmp_path))
    out = work / "out"
    before = Counter(emu.stats()["billed_by_input"])
    if case.via_stdin:
        source, stdin = "-", case.content
    else:
        (work / "list.txt").write_bytes(case.content)
        source, stdin = str(work / "list.txt"), None
    run = enhance(
        trial,
        source,
        "-o",
        str(out),
        "--qps",
        "200",
        "-q",
        "--report",
        str(work / "report.jsonl"),
        endpoint=emu.endpoint,
        stdin=stdin,
        cwd=work,  # relative paths on a line name nothing
        timeout=120,
    )
    assert run.returncode in (0, 1), run.stderr[-2000:]
    # The JSON Lines copy of the report (the CSV one has a bug with a bare CR, see below).
    with (work / "report.jsonl").open(encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    assert len(rows) == entries(case.lines, via_stdin=case.via_stdin), (rows, case.lines)
    received = Counter(emu.stats()["billed_by_input"]) - before
    sent = [row for row in rows if row["outcome"] != "invalid"]
    assert all(row["outcome"] == "done" for row in sent), sent
    assert all(row["message"] for row in rows if row["outcome"] == "invalid"), rows
    for row in rows:
        scheme = row["input"].split(":", 1)[0].strip().lower()
        if row["outcome"] == "done":
            assert scheme in ("http", "https"), row
    # Each URL sent arrived well formed, once, and means what the line meant.
    assert sum(received.values()) == len(sent)
    assert all(well_formed(url) for url in received), list(received)
    assert Counter(meaning(url) for url in received.elements()) == Counter(
        meaning(row["input"]) for row in sent
    )
    tally.examples += 1
    tally.lines += len(case.lines)
    tally.rows.update(row["outcome"] for row in rows)
    tally.sent += len(sent)
    tally.reasons.update(reason(row["message"]) for row in rows if row["outcome"] == "invalid")
    trial.inputs += len(case.lines)


def reason(message: str) -> str:
    """A report message without its particulars (line numbers, paths, quoted values)."""
    message = re.sub(r"^line \d+ of .+? is ", "a line is ", message)
    message = re.sub(r"^duplicate of input #\d+", "duplicate", message)
    return message.split(" (")[0].split(" '")[0][:50]


def run_property(
    trial: Trial, emulator: Any, tmp_path: Path, examples: int, *, explore: bool
) -> Tally:
    emu = emulator(cheap=True, qps=10_000)
    tally = Tally()

    @settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        database=None,
        derandomize=not explore,  # make test: the same examples every time
    )
    @given(case=list_files())
    def prop(case: ListFile) -> None:
        check_one(trial, emu, tmp_path, case, tally)

    prop()
    top = ", ".join(f"{reason!r} {n}" for reason, n in tally.reasons.most_common(6))
    trial.note(
        f"{tally.examples} generated lists ({tally.lines} lines, via a file or stdin): "
        f"{sum(tally.rows.values())} report rows, exactly one per non-blank, non-comment "
        f"line ({dict(tally.rows)}); {tally.sent} URLs sent, each received well formed and "
        f"meaning what its line meant; commonest reasons: {top}"
    )
    return tally


def test_bad_input_lists_never_crash_and_every_line_is_accounted_for(
    trial: Trial, emulator: Any, tmp_path: Path
) -> None:
    """A few generated lists (every special line appears in the long run)."""
    run_property(trial, emulator, tmp_path, examples=6, explore=False)


def test_every_special_line_at_once(trial: Trial, emulator: Any, tmp_path: Path) -> None:
    """The hand-picked hostile lines, all in one list, CRLF endings and a BOM."""
    emu = emulator(cheap=True, qps=10_000)
    lines = [BOM + SPECIAL_LINES[0] + b"\r", *(line + b"\r" for line in SPECIAL_LINES[1:])]
    case = ListFile(lines, b"\n".join(lines) + b"\n", via_stdin=False)
    tally = Tally()
    check_one(trial, emu, tmp_path, case, tally)
    assert tally.rows["done"] >= 10 and tally.rows["invalid"] >= 15, tally.rows
    trial.note(
        f"{len(lines)} hand-picked hostile lines (javascript:, file://, NUL, huge, latin-1, "
        f"UTF-16, BOM, private addresses, unicode hosts): rows {dict(tally.rows)}, "
        f"{tally.sent} sent well formed"
    )


@pytest.mark.reliability
@pytest.mark.timeout(900)
def test_bad_input_lists_many_examples(trial: Trial, emulator: Any, tmp_path: Path) -> None:
    """Many generated lists, new ones each run."""
    run_property(trial, emulator, tmp_path, examples=120, explore=True)


def test_unicode_normalization_is_not_confused(trial: Trial, emulator: Any, tmp_path: Path) -> None:
    """NFC and NFD spellings of one path are two different URLs, both sent as written."""
    emu = emulator(cheap=True, qps=10_000)
    nfc = "https://img.test/" + unicodedata.normalize("NFC", "café") + ".png"
    nfd = "https://img.test/" + unicodedata.normalize("NFD", "café") + ".png"
    case = ListFile([nfc.encode(), nfd.encode()], f"{nfc}\n{nfd}\n".encode(), via_stdin=True)
    tally = Tally()
    check_one(trial, emu, tmp_path, case, tally)
    assert tally.rows == Counter({"done": 2})


def test_a_carriage_return_inside_an_input_keeps_one_csv_row(
    trial: Trial, emulator: Any, tmp_path: Path
) -> None:
    """A stray CR inside a list line: report.csv still has one row per input."""
    emu = emulator(cheap=True, qps=10_000)
    url_list = tmp_path / "list.txt"
    url_list.write_bytes(b"https://img.test/a\rb.png\nhttps://img.test/fine.png\n")
    out = tmp_path / "out"
    run = enhance(trial, str(url_list), "-o", str(out), "--qps", "200", endpoint=emu.endpoint)
    trial.inputs += 2
    assert run.returncode in (0, 1)
    rows = report_rows(out)
    assert [row["input"] for row in rows] == [
        "https://img.test/a\rb.png",
        "https://img.test/fine.png",
    ]


def test_a_list_file_starting_with_bm_is_still_a_list(
    trial: Trial, emulator: Any, tmp_path: Path
) -> None:
    """A URL list whose first line happens to start with 'BM' is read as a list."""
    emu = emulator(cheap=True, qps=10_000)
    url_list = tmp_path / "urls.txt"
    url_list.write_bytes(b"BMW-photos/a.jpg\nhttps://img.test/a.png\nhttps://img.test/b.png\n")
    out = tmp_path / "out"
    enhance(
        trial, str(url_list), "-o", str(out), "--qps", "200", endpoint=emu.endpoint, cwd=tmp_path
    )
    trial.inputs += 3
    rows = report_rows(out)
    assert len(rows) == 3, rows
    assert sorted(row["outcome"] for row in rows) == ["done", "done", "invalid"], rows
