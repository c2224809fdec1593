"""The batch's inputs, streamed in order: URLs, list files, stdin, local images and folders.

Nothing here reads a whole list into memory: list files and stdin are read line by line,
in binary, with a bounded line length, so a list of millions of URLs costs little. Every
problem with one entry becomes an :class:`InputItem` with ``error`` set; the batch goes on.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import os
import re
import stat
import sys
from array import array
from collections.abc import Iterator, Sequence
from pathlib import Path, PurePosixPath
from typing import BinaryIO
from urllib.parse import quote, urlsplit

from zuotang_cli.errors import UsageError
from zuotang_cli.i18n import N_
from zuotang_cli.i18n import gettext as _
from zuotang_cli.inputs.scan import (
    HIDDEN,
    NOT_REGULAR,
    SUBFOLDER,
    SYMLINKED_FOLDER,
    UNSUPPORTED,
    Patterns,
    ScanTally,
)
from zuotang_cli.models import ErrorClass, InputItem, InputKind
from zuotang_cli.protocol import preflight
from zuotang_cli.protocol.rules import MAX_URL_LENGTH

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
"""Extensions picked up when walking a folder (case-insensitive)."""
MAX_LINE_BYTES = 64 * 1024
"""Longest list line read; longer lines are reported and skipped without being buffered."""

NOT_FOUND = N_(
    "no such file or directory; expected an http(s) URL, a list file, an image or a folder"
)
NOT_AN_IMAGE = N_("not an image")
GIF_REFUSED = N_("GIF is not supported (jpg, png, bmp, webp, tiff only)")
NOT_UTF8_NAME = N_("file name is not valid UTF-8: rename it")
"""Reasons kept English in the report rows, translated where shown (``_(reason)``)."""

_IMAGE_LIKE = IMAGE_SUFFIXES | {".gif"}
_HEAD_BYTES = 32
_UTF8_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_BMP_HEADER_SIZES = frozenset({12, 16, 40, 52, 56, 64, 108, 124})
"""The DIB header sizes a real BMP has at offset 14."""
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
)


class InvalidURL(ValueError):
    """Raised by :func:`normalize_url`; the text says why, and is safe to show."""


# ---------------------------------------------------------------------------------------
# URLs

_BAD_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_LONE_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
_UNRESERVED_ESCAPE = re.compile(r"%(?:3[0-9]|[46][1-9A-F]|[57][0-9A]|2[DE]|5F|7E)")
"""An escaped letter, digit, ``-``, ``.``, ``_`` or ``~`` (upper-cased first): the same
URL as the character itself (RFC 3986, 6.2.2.2), so it is decoded."""
_NOT_CANONICAL = re.compile(r"%(?:3[0-9]|[46][1-9A-F]|[57][0-9A]|2[DE]|5F|7E)|/\.\.?(?:[/?]|$)")
"""What the fast check leaves to the long way: an unreserved escape, a dot segment."""
_HOST = re.compile(r"[a-z0-9_-]{1,63}(\.[a-z0-9_-]{1,63})*\.?")
_SAFE_PATH = "/:@!$&'()*+,;=%"
_SAFE_QUERY = _SAFE_PATH + "?"
_SAFE_USERINFO = ":!$&'()*+,;=%"
_DEFAULT_PORTS = {"http": "80", "https": "443"}
_CANONICAL_PART = r"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@]|%[0-9A-F]{2})"
_CANONICAL = re.compile(
    rf"https?://(?=[a-z0-9_.-]{{1,253}}/){_HOST.pattern}(?:/(?:{_CANONICAL_PART}|/)*)(?:\?(?:{_CANONICAL_PART}|[/?])+)?"
)
"""URLs :func:`normalize_url` returns unchanged: lowercase scheme and host, no port, no
user, a path, no fragment, only characters that need no escaping and upper-case escapes
(tests/test_inputs.py checks that both paths agree)."""


def looks_like_url(text: str) -> bool:
    """True when ``text`` starts with ``http://`` or ``https://`` (any case)."""
    return text[:8].lower().startswith(("http://", "https://"))


def normalize_url(text: str) -> str:
    """The canonical, correctly encoded form of an http(s) URL, or :class:`InvalidURL`.

    Lowercases scheme and host, converts unicode host names with IDNA, drops a default
    port and the fragment (never sent to a server), percent-encodes spaces and non-ASCII
    in path and query without double-encoding existing ``%XX`` escapes, decodes escaped
    unreserved characters and removes dot segments from the path (RFC 3986, 6.2.2), so
    that URLs naming the same resource are one input. Idempotent.
    """
    text = text.strip()
    if is_canonical(text):
        return text  # already in that form (most list lines): nothing to parse
    return _normalized(text)


def is_canonical(text: str) -> bool:
    """Whether :func:`normalize_url` returns ``text`` as it is, told without parsing it."""
    return (
        _CANONICAL.fullmatch(text) is not None
        and len(text) <= MAX_URL_LENGTH
        and not (("%" in text or "/." in text) and _NOT_CANONICAL.search(text))
    )


def _normalized(text: str) -> str:
    """:func:`normalize_url` of a stripped ``text``, the long way."""
    if _BAD_CHARS.search(text):
        raise InvalidURL(N_("URL contains control characters"))
    try:
        parts = urlsplit(text)
    except ValueError as exc:
        raise InvalidURL(f"malformed URL ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise InvalidURL(N_("not an http(s) URL"))
    netloc = _normalize_netloc(parts.netloc, parts.scheme)
    path = _remove_dot_segments(_encode(parts.path, _SAFE_PATH) or "/")
    query = _encode(parts.query, _SAFE_QUERY)
    url = f"{parts.scheme}://{netloc}{path}" + (f"?{query}" if query else "")
    if len(url) > MAX_URL_LENGTH:
        raise InvalidURL(f"URL longer than {MAX_URL_LENGTH} characters ({len(url)})")
    return url


def _encode(text: str, safe: str) -> str:
    text = _LONE_PERCENT.sub("%25", text)
    text = _ESCAPE.sub(lambda m: m.group(0).upper(), text)
    text = _UNRESERVED_ESCAPE.sub(lambda m: chr(int(m.group(0)[1:], 16)), text)
    return quote(text, safe=safe)


def _remove_dot_segments(path: str) -> str:
    """``/a/./b/../c`` -> ``/a/c`` (RFC 3986, 5.2.4): the same resource, one input."""
    segments = path.split("/")
    kept: list[str] = []
    for segment in segments[1:]:
        if segment == "..":
            if kept:
                kept.pop()
        elif segment != ".":
            kept.append(segment)
    trailing = "/" if segments[-1] in (".", "..") and kept else ""
    return "/" + "/".join(kept) + trailing


def _normalize_netloc(netloc: str, scheme: str) -> str:
    userinfo, at, hostport = netloc.rpartition("@")
    if hostport.startswith("["):
        address, bracket, port = hostport[1:].partition("]")
        if not bracket or (port and not port.startswith(":")):
            raise InvalidURL(N_("malformed URL"))
        host = _ipv6_host(address)
        port = port[1:]
    else:
        raw_host, _, port = hostport.partition(":")
        host = _normalize_host(raw_host)
    port = _normalize_port(port, scheme)
    user = _encode(userinfo, _SAFE_USERINFO) + "@" if at else ""
    return f"{user}{host}" + (f":{port}" if port else "")


def _normalize_host(host: str) -> str:
    if not host:
        raise InvalidURL(N_("URL has no host"))
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise InvalidURL(f"invalid host name {host!r}") from None
    host = host.lower()
    if len(host) > 253 or not _HOST.fullmatch(host):
        raise InvalidURL(f"invalid host name {host!r}")
    return host


def _ipv6_host(text: str) -> str:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        # the words Python 3.11+'s urlsplit uses for it, so 3.10 reports it the same
        raise InvalidURL(f"malformed URL (invalid IPv6 address {text!r})") from None
    return f"[{text.lower()}]"


def _normalize_port(port: str, scheme: str) -> str:
    if not port:
        return ""
    if not (port.isascii() and port.isdigit()) or int(port) > 65535:
        raise InvalidURL(f"invalid port {port!r}")
    number = str(int(port))
    return "" if number == _DEFAULT_PORTS[scheme] else number


# ---------------------------------------------------------------------------------------
# Images


def sniff_image(head: bytes) -> str | None:
    """Pillow's name of the image format the first bytes show (GIF included), else None."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[:2] == b"BM" and int.from_bytes(head[14:18], "little") in _BMP_HEADER_SIZES:
        return "BMP"  # "BM" alone starts too many text files (a list of BMW URLs)
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    return None


def _image_error(head: bytes) -> str | None:
    kind = sniff_image(head)
    if kind is None:
        return NOT_AN_IMAGE
    return GIF_REFUSED if kind == "GIF" else None


def _read_head(path: Path) -> bytes:
    with path.open("rb") as stream:
        return stream.read(_HEAD_BYTES)


# ---------------------------------------------------------------------------------------
# The stream of items


def names_local_images(sources: Sequence[str]) -> bool:
    """Whether an argument is a local image or a folder (not a URL, a list, stdin): the
    run will send local files, known before anything is read."""
    for source in sources:
        if source == "-" or looks_like_url(source):
            continue
        path = Path(source)
        if path.is_dir() or (path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES):
            return True
    return False


def check_sources(sources: Sequence[str]) -> None:
    """Refuse, before anything is called, a path argument that does not exist: a mistyped
    list file must be a usage error (exit 2) that cron alerts on, not a routine failure."""
    for source in sources:
        if source == "-" or not source or "://" in source:
            continue  # a URL, even a refused one, gets its own report row
        if not os.path.lexists(source):
            raise UsageError(_("{source}: {reason}").format(source=source, reason=_(NOT_FOUND)))


def iter_inputs(
    sources: Sequence[str],
    *,
    stdin: BinaryIO,
    recursive: bool = False,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    scan: ScanTally | None = None,
) -> Iterator[InputItem]:
    """Every entry of the batch, lazily, in order, with ``index`` 0, 1, 2, ...

    ``sources`` are the positional arguments: http(s) URLs, ``-`` (a list on ``stdin``),
    list files, images and folders. Refused entries and duplicates come back with
    ``error`` set, in place, so the report keeps one row per entry.  Files of scanned
    folders that are not taken (``include`` / ``exclude`` globs, hidden, unsupported...)
    are counted in ``scan``.
    """
    seen = _Seen()
    index = 0
    walk = _Walk(recursive, Patterns(include, exclude), scan or ScanTally())
    # Several folders mirror each under its own name, as `cp -r a b out/` would.
    several = sum(1 for source in sources if _is_folder(source)) > 1
    for source in sources:
        for item in _expand(source, stdin, walk, several):
            item.index = index
            yield seen.check(item)
            index += 1


def _digest(text: str) -> int:
    """A 64-bit digest of ``text`` for :class:`_Seen`: Python's own string hash (SipHash,
    keyed anew in each process: the table lives one run, so that is all it needs), or
    BLAKE2b where that hash is narrower (32-bit builds)."""
    if _WIDE_HASH:
        return hash(text) & 0xFFFF_FFFF_FFFF_FFFF
    data = text.encode("utf-8", "surrogateescape")
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")


_WIDE_HASH = sys.hash_info.width >= 64


class _Seen:
    """Which keys were already yielded: the 8-byte digest of each input's key, by input
    index, and an open-addressing table of indexes (4 bytes a slot, grown by half when
    three quarters are used).

    About 14 bytes an input, where a dict of digests took 120: a million-line list costs
    about 14 MB.  Growing copies only the table of indexes (a third of that), never the
    digests.  A false "duplicate" needs a 64-bit collision of the keys' hashes: about
    3e-8 for a million.
    """

    _EMPTY = 0xFFFFFFFF

    def __init__(self) -> None:
        self._digests = array("Q")
        """The digest of input ``i`` at ``i`` (0 for inputs never looked up)."""
        self._slots = array("I", [self._EMPTY]) * 1024
        self._count = 0

    def check(self, item: InputItem) -> InputItem:
        index = item.index
        digests = self._digests
        while len(digests) < index:  # inputs that never came here (none, so far)
            digests.append(0)
        if item.error is not None:
            digests.append(0)
            return item
        digest = _digest(f"{item.kind.value}:{item.key}") | 1
        digests.append(digest)
        first = self._first_index(digest, index)
        if first == index:
            return item
        return dataclasses.replace(
            item, error=f"duplicate of input #{first + 1}", error_class=ErrorClass.DUPLICATE
        )

    def _first_index(self, digest: int, index: int) -> int:
        """The index first seen with ``digest``, recording ``index`` if it is new."""
        digests, slots, empty = self._digests, self._slots, self._EMPTY
        size = len(slots)
        slot = digest % size
        while (seen := slots[slot]) != empty:
            if digests[seen] == digest:
                return seen
            slot += 1
            if slot == size:
                slot = 0
        slots[slot] = index
        self._count += 1
        if self._count * 4 > size * 3:
            self._grow()
        return index

    def _grow(self) -> None:
        old, digests, empty = self._slots, self._digests, self._EMPTY
        size = len(old) * 3 // 2 + 1
        slots = array("I", [empty]) * size
        for seen in old:
            if seen != empty:
                slot = digests[seen] % size
                while slots[slot] != empty:
                    slot += 1
                    if slot == size:
                        slot = 0
                slots[slot] = seen
        self._slots = slots


def _bad(
    source: str,
    error: str,
    kind: InputKind = InputKind.FILE,
    path: Path | None = None,
    relpath: PurePosixPath | None = None,
) -> InputItem:
    return InputItem(
        index=0,
        source=source,
        kind=kind,
        path=path,
        relpath=relpath,
        error=error,
        error_class=ErrorClass.BAD_INPUT,
    )


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _is_folder(source: str) -> bool:
    # os.path.isdir, not Path.is_dir: it answers False (not ValueError) for a NUL byte
    return source not in ("", "-") and not looks_like_url(source) and os.path.isdir(source)  # noqa: PTH112


def _expand(source: str, stdin: BinaryIO, walk: _Walk, named: bool = False) -> Iterator[InputItem]:
    if source == "-":
        yield from _stdin_lines(stdin)
    elif not source:
        yield _bad(source, "empty input")
    elif looks_like_url(source):
        yield _url_item(source)
    else:
        yield from _expand_path(source, walk, named)


def _expand_path(source: str, walk: _Walk, named: bool = False) -> Iterator[InputItem]:
    try:
        mode = Path(source).stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        yield _bad(source, NOT_FOUND)
        return
    except OSError as exc:
        yield _bad(source, f"cannot read: {_reason(exc)}")
        return
    if stat.S_ISDIR(mode):
        prefix = (Path(source).resolve().name or "root",) if named else ()
        yield from _walk_dir(Path(source), walk, prefix)
    elif stat.S_ISREG(mode):
        yield from _expand_file(source)
    else:  # a pipe such as <(command), or a device: only a list makes sense
        yield from _open_list(source)


def _url_item(text: str) -> InputItem:
    try:
        url = normalize_url(text)
    except InvalidURL as exc:
        return _bad(text, str(exc), kind=InputKind.URL)
    return InputItem(index=0, source=text, kind=InputKind.URL, url=url)


def _expand_file(source: str) -> Iterator[InputItem]:
    """A regular file given directly: an image (by its bytes) or else a list of URLs."""
    path = Path(source).resolve()
    try:
        with path.open("rb") as stream:
            head = stream.read(_HEAD_BYTES)
            if sniff_image(head) is not None or path.suffix.lower() in _IMAGE_LIKE:
                yield _image_item(source, path, None, head)
            elif head.startswith(_UTF16_BOMS):
                yield _bad(source, "list file is UTF-16; save it as UTF-8", path=path)
            else:
                stream.seek(0)
                yield from _list_lines(stream, source)
    except OSError as exc:
        yield _bad(source, f"cannot read: {_reason(exc)}", path=path)


def _open_list(source: str) -> Iterator[InputItem]:
    try:
        with Path(source).open("rb") as stream:
            yield from _list_lines(stream, source)
    except OSError as exc:
        yield _bad(source, f"cannot read: {_reason(exc)}", kind=InputKind.URL)


def _image_item(source: str, path: Path, relpath: PurePosixPath | None, head: bytes) -> InputItem:
    if not _utf8(str(path)):  # the journal and the reports hold text: refuse it, shown safely
        return _bad(os.fsencode(source).decode("utf-8", "backslashreplace"), NOT_UTF8_NAME)
    error = _image_error(head)
    if error is not None:
        return _bad(source, error, path=path, relpath=relpath)
    try:
        info = preflight.inspect_file(path)
    except ValueError as exc:
        return _bad(source, str(exc), path=path, relpath=relpath)
    refusal = preflight.problem(info)
    if refusal is not None:
        item = _bad(source, refusal, path=path, relpath=relpath)
        return dataclasses.replace(item, error_class=ErrorClass.PREFLIGHT)
    return InputItem(
        index=0,
        source=source,
        kind=InputKind.FILE,
        path=path,
        relpath=relpath,
        width=info.width,
        height=info.height,
    )


def _utf8(text: str) -> bool:
    """False for a name with bytes that are not UTF-8 (held as surrogate escapes)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# ---------------------------------------------------------------------------------------
# List files and stdin


def _stdin_lines(stdin: BinaryIO) -> Iterator[InputItem]:
    """The list on stdin, read through a file object of its own on a copy of the
    descriptor.  The batch reads it in a thread that may be blocked in a read when the
    run ends (a stdin nobody closes): at exit Python closes ``sys.stdin``, which takes
    its buffer's lock, held by that read ("Fatal Python error: _enter_buffered_busy").
    A file object nobody else knows is never touched at exit."""
    try:
        private = open(os.dup(stdin.fileno()), "rb")  # noqa: SIM115, PTH123 - closed below
    except (AttributeError, OSError, ValueError):  # not a real file (tests: BytesIO)
        yield from _list_lines(stdin, "stdin")
        return
    with private:
        yield from _list_lines(private, "stdin")


def _list_lines(stream: BinaryIO, label: str) -> Iterator[InputItem]:
    """One item per URL line of ``stream``; blank lines and ``#`` comments are skipped."""
    try:
        for number, raw in _numbered_lines(stream):
            item = _line_item(number, raw, label)
            if item is not None:
                yield item
    except OSError as exc:
        yield _bad(label, f"cannot read {label}: {_reason(exc)}", kind=InputKind.URL)


def _numbered_lines(stream: BinaryIO) -> Iterator[tuple[int, bytes | None]]:
    """(line number, raw line), or None for a line over MAX_LINE_BYTES (then skipped)."""
    number = 0
    while chunk := stream.readline(MAX_LINE_BYTES + 1):
        number += 1
        if len(chunk) > MAX_LINE_BYTES and not chunk.endswith(b"\n"):
            _skip_rest_of_line(stream)
            yield number, None
        else:
            yield number, chunk


def _skip_rest_of_line(stream: BinaryIO) -> None:
    while True:
        chunk = stream.readline(MAX_LINE_BYTES)
        if not chunk or chunk.endswith(b"\n"):
            return


def _line_item(number: int, raw: bytes | None, label: str) -> InputItem | None:
    if raw is None:
        error = f"line {number} of {label} is too long (over {MAX_LINE_BYTES} bytes)"
        return _bad(f"{label}:{number}", error, kind=InputKind.URL)
    if number == 1:
        raw = raw.removeprefix(_UTF8_BOM)
    try:
        text = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        shown = raw.decode("utf-8", "backslashreplace").strip()
        error = f"line {number} of {label} is not valid UTF-8"
        return _bad(shown, error, kind=InputKind.URL)
    if not text or text.startswith("#"):
        return None
    # os.path.isfile, not Path.is_file: it also answers False for NUL bytes and over-long names
    if not looks_like_url(text) and os.path.isfile(text):  # noqa: PTH113
        return _listed_file(text)  # e.g. `find photos -name '*.jpg' | zuotang enhance -`
    return _url_item(text)


def _listed_file(text: str) -> InputItem:
    """A local path on a list line: only an image makes sense there (never another list)."""
    path = Path(text).resolve()
    try:
        head = _read_head(path)
    except OSError as exc:
        return _bad(text, f"cannot read: {_reason(exc)}", path=path)
    return _image_item(text, path, None, head)


# ---------------------------------------------------------------------------------------
# Folders


@dataclasses.dataclass(frozen=True)
class _Walk:
    recursive: bool
    patterns: Patterns
    scan: ScanTally


def _walk_dir(root: Path, walk: _Walk, prefix: tuple[str, ...] = ()) -> Iterator[InputItem]:
    """Image files under ``root`` sorted by relative path, depth first, without recursion;
    their relative paths start with ``prefix`` (the folder's name, when several are given).

    Hidden entries (``.name``) are skipped; symlinked folders are not followed; every
    entry not taken is counted in ``walk.scan`` by reason.
    """
    pending: list[tuple[tuple[str, ...], bool]] = [((), True)]
    images = subfolders = 0
    while pending:
        parts, is_dir = pending.pop()
        here = root.joinpath(*parts)
        if not is_dir:
            images += 1
            yield found_file(here, parts, prefix)
            continue
        try:
            children = _listing(here, parts, walk)
        except OSError as exc:
            yield _bad(str(here), f"cannot read: {_reason(exc)}")
            continue
        wanted = []
        for name, d in children:
            if d and not walk.recursive:
                subfolders += 1
                walk.scan.skip(SUBFOLDER, str(here / name))
            else:
                wanted.append(((*parts, name), d))
        pending.extend(reversed(wanted))
    if not images and subfolders:
        walk.scan.unscanned(str(root), subfolders)


def _listing(folder: Path, parts: tuple[str, ...], walk: _Walk) -> list[tuple[str, bool]]:
    """Sorted (name, is a folder) of the visible sub-folders and image files of ``folder``;
    the other entries are counted in ``walk.scan``."""
    found = []
    with os.scandir(folder) as entries:
        for entry in entries:
            reason = _not_taken(entry, parts, walk.patterns)
            if reason is None:
                found.append((entry.name, entry.is_dir(follow_symlinks=False)))
            else:
                walk.scan.skip(reason, str(folder / entry.name))
    return sorted(found)


def _not_taken(entry: os.DirEntry[str], parts: tuple[str, ...], patterns: Patterns) -> str | None:
    """Why a folder entry is not an input (nor a folder to descend into), or None."""
    if entry.name.startswith("."):
        return HIDDEN
    if entry.is_dir(follow_symlinks=False):
        return None
    is_dir, is_file = _followed(entry)
    if is_dir:
        return SYMLINKED_FOLDER
    if PurePosixPath(entry.name).suffix.lower() not in IMAGE_SUFFIXES:
        return UNSUPPORTED
    if not is_file:
        return NOT_REGULAR
    return patterns.refusal(PurePosixPath(*parts, entry.name))


def _followed(entry: os.DirEntry[str]) -> tuple[bool, bool]:
    """(a folder, a regular file) through symlinks; neither for a symlink loop (ELOOP) or
    a target that cannot be looked at, which must not end the scan of the whole folder."""
    try:
        return entry.is_dir(), entry.is_file()
    except OSError:
        return False, False


def found_file(found: Path, parts: tuple[str, ...], prefix: tuple[str, ...] = ()) -> InputItem:
    """The item of an image file found in a folder (a walk, or the watcher of a hot
    folder): ``parts`` its path under that folder, ``prefix`` the folder's own name when
    several are given.  Refused (``error`` set) when it is no image the service takes."""
    source, path, relpath = str(found), found.resolve(), PurePosixPath(*prefix, *parts)
    try:
        head = _read_head(found)
    except OSError as exc:
        return _bad(source, f"cannot read: {_reason(exc)}", path=path, relpath=relpath)
    return _image_item(source, path, relpath, head)
