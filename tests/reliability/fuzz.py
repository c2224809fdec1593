"""A seeded generator of hostile list lines, and the model of how many rows they must give.

:func:`fuzz_lines` makes lines of every kind a list file or stdin may carry: URLs with
tricks (userinfo, IDN, ports, percent-encoding, IPv6 literals, padding, other schemes),
invalid UTF-8, UTF-16 with and without a BOM, control characters and NULs, huge lines
around and far over the 64 KiB limit, blanks and comments as the product defines them,
and local paths (relative, absolute, ``~``, ``..``, nonexistent, folders, Windows-style).
:func:`expected_rows` is the product's definition of a line that is an entry, written out
apart from the product's code, so the suites can check it.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

MAX_LINE_BYTES = 64 * 1024
"""zuotang_cli.inputs.reader.MAX_LINE_BYTES: a longer line is one row ("too long")."""
BOM = b"\xef\xbb\xbf"

WHITESPACE = " \t\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2000\u200a\u2028\u2029\u202f\u3000"
"""What str.strip() removes, so a line of only these is blank (NUL, ZWSP and BOM are not)."""
NOT_WHITESPACE = "\x00\u200b\ufeff\x7f\x1b"

SCHEMES = ["http", "https", "HTTP", "HtTpS", "ftp", "file", "javascript", "data", "mailto", ""]
HOSTS = [
    "img.test",
    "IMG.Test",
    "127.0.0.1",
    "10.1.2.3",
    "169.254.169.254",
    "0x7f000001",
    "[::1]",
    "[fe80::1%25eth0]",
    "[2001:db8::42]",
    "[not-ipv6]",
    "[::1",
    "localhost",
    "例え.テスト",
    "bücher.example",
    "xn--bcher-kva.example",
    "xn--zz.example",
    "a..b",
    "-lead.example",
    "x" * 64 + ".example",
    "ex%41mple.com",
    "",
]
USERINFO = ["", "", "", "user@", "user:pass@", "u%40x:p%3Ass@", "a:b:c@", "@", "evil.test@"]
PORTS = ["", "", "", ":80", ":443", ":8080", ":0", ":65535", ":65536", ":99999", ":", ":-1", ":٣"]
PIECES = [
    "a.png",
    "dir/b.jpg",
    "%E2%82%AC",
    "€",
    "%zz",
    "%",
    "%2",
    "a b",
    "tab\tin",
    "ü",
    "画像",
    "e\u0301",
    "\u202egnp.exe",
    "..",
    ".",
    "//",
    "?",
    "&",
    "=",
    "#",
    ";",
    "'",
    '"',
    "<script>",
    "\\",
    "\x00",
    "\x1b[31m",
    "\x7f",
    "\ud800",
]
WINDOWS = [
    "C:\\photos\\a.png",
    "c:/photos/b.jpg",
    "\\\\server\\share\\c.png",
    "D:photo.png",
    "\\\\?\\C:\\long\\path.png",
]
OTHER = [
    "javascript:alert(document.cookie)",
    "JAVASCRIPT:alert(1)",
    "data:image/png;base64,iVBORw0KGgo=",
    "file:///etc/passwd",
    "file://localhost/etc/shadow",
    "file:img/ok.png",
    "http:/one-slash.png",
    "http:///no-host.png",
    "https:img.test/no-slashes.png",
    "//img.test/scheme-relative.png",
    "img.test/no-scheme.png",
    "http ://img.test/space-in-scheme.png",
    "https://",
    "http://[",
    "http://]",
    "mailto:a@b.c",
    "about:blank",
    "view-source:https://img.test/a.png",
]


def _text(rng: random.Random, size: int) -> str:
    """Random unicode: ASCII mostly, some Latin-1, CJK, controls, surrogates, emoji."""
    pools = [(0x20, 0x7E), (0x00, 0x1F), (0x80, 0xFF), (0x4E00, 0x4E80), (0xD800, 0xDFFF)]
    pools += [(0x1F600, 0x1F64F), (0x2000, 0x206F)]
    weights = [60, 5, 10, 10, 3, 6, 6]
    out = []
    for lo, hi in rng.choices(pools, weights=weights, k=size):
        out.append(chr(rng.randint(lo, hi)))
    return "".join(out)


def _url(rng: random.Random) -> str:
    scheme = rng.choice(SCHEMES)
    host = rng.choice(HOSTS) if rng.random() < 0.85 else _text(rng, rng.randint(0, 10))
    path = "/".join(rng.choice(PIECES) for _ in range(rng.randint(0, 4)))
    if rng.random() < 0.4:
        path += _text(rng, rng.randint(0, 8))
    url = f"{scheme}://{rng.choice(USERINFO)}{host}{rng.choice(PORTS)}/{path}"
    if rng.random() < 0.4:
        url += "?" + "&".join(f"{rng.choice(PIECES)}={rng.choice(PIECES)}" for _ in range(2))
    if rng.random() < 0.2:
        url += "#" + rng.choice(PIECES)
    if rng.random() < 0.05:
        url += "/" + "l" * rng.choice([400, 500, 520, 2000])
    if rng.random() < 0.15:
        url = rng.choice(WHITESPACE) + url + rng.choice(WHITESPACE)
    return url


def _clean_url(rng: random.Random) -> str:
    """A URL the client must send (and so the emulator must receive well formed)."""
    scheme = rng.choice(["http", "https", "HTTPS", "Http"])
    host = rng.choice(
        ["img.test", "IMG.test", "127.0.0.1", "[::1]", "[2001:DB8::7]", "例え.テスト"]
    )
    user = rng.choice(["", "", "", "user:p%40ss@", "me@"])
    port = rng.choice(["", "", ":8080", ":443", ":80"])
    name = f"{rng.getrandbits(40):010x}"
    path = rng.choice([f"{name}.png", f"dir/{name} a.jpg", f"€/{name}", f"%E2%82%AC{name}.webp"])
    query = rng.choice(["", "", f"?v={name}", f"?q=größe&x=%2F{name}"])
    return f"{scheme}://{user}{host}{port}/{path}{query}" + rng.choice(["", "", "#frag"])


def _encode(rng: random.Random, text: str) -> bytes:
    encoding = rng.choices(
        ["utf-8", "latin-1", "utf-16-le", "utf-16-be", "utf-16", "cp1252", "shift_jis"],
        weights=[70, 8, 6, 4, 4, 4, 4],
    )[0]
    return text.encode(encoding, "surrogatepass" if encoding == "utf-8" else "replace")


def _blank(rng: random.Random) -> bytes:
    return "".join(rng.choice(WHITESPACE) for _ in range(rng.randint(0, 6))).encode()


def _comment(rng: random.Random) -> bytes:
    lead = "".join(rng.choice(WHITESPACE) for _ in range(rng.randint(0, 3)))
    return (lead + "#" + rng.choice(["", " note", _url(rng), _text(rng, 10)])).encode(
        "utf-8", "surrogatepass"
    )


def _almost(rng: random.Random) -> bytes:
    """Lines that look blank or commented but are not (a row each)."""
    return (
        rng.choice(NOT_WHITESPACE) + rng.choice(["", "#", " # x", "https://img.test/a.png"])
    ).encode("utf-8")


def _huge(rng: random.Random) -> bytes:
    size = rng.choice(
        [MAX_LINE_BYTES - 1, MAX_LINE_BYTES, MAX_LINE_BYTES + 1, MAX_LINE_BYTES + 2, 300_000]
    )
    fill = rng.choice([b"h", b" ", b"#", b"\x00", b"\xff"])
    head = rng.choice([b"https://img.test/", b"", b"#", b"  "])
    return (head + fill * size)[:size]


def _path(rng: random.Random, local: Sequence[str], valid: Sequence[str]) -> tuple[str, bool]:
    """A path on a line, and whether it names one of the ``valid`` images (so it must be
    sent)."""
    name = rng.choice(local)
    plain = [name, "./" + name, name + " ", "  " + name, "\t" + name + "\r"]
    if rng.random() < 0.4:
        text = rng.choice(plain)
        return text, name in valid
    tricky = [
        "~/" + name,
        "~",
        "../" + name,
        "img/../" + name,
        "../../../../etc/passwd",
        "/etc/passwd",
        "/etc",
        "/",
        ".",
        "..",
        "img",
        "img/",
        "no/such/file.png",
        "/no/such/file.jpg",
        name + "\x00.png",
        name.upper(),
        "file:" + name,
        rng.choice(WINDOWS),
    ]
    return rng.choice(tricky), False


@dataclass
class Fuzzed:
    content: bytes
    must_send: list[str] = field(default_factory=list)
    """Lines (as the report shows them: decoded, stripped) that must be done or skipped."""
    kinds: Counter[str] = field(default_factory=Counter)


def fuzz_line(
    rng: random.Random, local: Sequence[str] = (), valid: Sequence[str] = ()
) -> tuple[bytes, str | None, str]:
    """One line (without its line ending, never containing b"\\n"), the text it must be
    sent as (or None), and its kind."""
    kind = rng.choices(KINDS, weights=WEIGHTS)[0]
    must: str | None = None
    if kind == "clean":
        must = _clean_url(rng)
        raw = must.encode()
    elif kind == "url":
        raw = _encode(rng, _url(rng))
    elif kind == "other":
        raw = rng.choice(OTHER).encode()
    elif kind == "path" and local:
        text, accepted = _path(rng, local, valid)
        raw = text.encode() if accepted else _encode(rng, text)
        must = text.strip() if accepted else None
    elif kind == "bytes":
        raw = rng.randbytes(rng.randint(1, 80))
    elif kind in ("text", "path"):
        raw = _encode(rng, _text(rng, rng.randint(1, 40)))
    elif kind == "blank":
        raw = _blank(rng)
    elif kind == "comment":
        raw = _comment(rng)
    elif kind == "almost":
        raw = _almost(rng)
    else:
        raw = _huge(rng)
    if b"\n" in raw:
        raw, must = raw.replace(b"\n", b"\\n"), None
    return raw, must, kind


KINDS = ["clean", "url", "other", "path", "bytes", "text", "blank", "comment", "almost", "huge"]
WEIGHTS = [3, 30, 4, 12, 8, 8, 5, 5, 3, 0.1]


def fuzz_content(
    rng: random.Random,
    count: int,
    local: Sequence[str] = (),
    valid: Sequence[str] = (),
    *,
    first: bytes | None = None,
) -> Fuzzed:
    """``count`` lines joined with LF or CRLF (CRLF is a CR kept on the line), a UTF-8 BOM
    on the first line of some, no final newline on some; ``first`` replaces the first
    line (a list file's first bytes decide whether it is taken for an image)."""
    fuzzed = Fuzzed(b"")
    lines = []
    for number in range(count):
        raw, must, kind = fuzz_line(rng, local, valid)
        if number == 0 and first is not None:
            raw, must, kind = first, None, "first"
        elif number == 0 and rng.random() < 0.5:
            raw = BOM + raw
        if must is not None:
            fuzzed.must_send.append(must)
        fuzzed.kinds[kind] += 1
        lines.append(raw + b"\r" if rng.random() < 0.3 else raw)
    fuzzed.content = b"\n".join(lines) + (b"\n" if rng.random() < 0.7 else b"")
    return fuzzed


def split_lines(content: bytes) -> list[bytes]:
    """The lines of ``content`` as the product splits them: at LF only (a CR stays on the
    line), the empty piece after a final LF not being a line."""
    lines = content.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


def is_entry(number: int, raw: bytes) -> bool:
    """Whether line ``number`` (1-based) gives a report row: every line but blanks and
    comments.  A line over 64 KiB is a row whatever it holds (it is never buffered to be
    looked at); the first line loses a UTF-8 BOM; an undecodable line is a row; a blank
    line is one that str.strip() empties; a comment is one whose stripped text starts '#'."""
    if len(raw) > MAX_LINE_BYTES:
        return True
    if number == 1:
        raw = raw.removeprefix(BOM)
    try:
        text = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        return True
    return bool(text) and not text.startswith("#")


def expected_rows(content: bytes) -> int:
    """How many report rows a list (stdin, or a file that is not taken for an image or a
    UTF-16 file) of ``content`` must give."""
    return sum(is_entry(n, raw) for n, raw in enumerate(split_lines(content), start=1))
