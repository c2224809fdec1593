"""Unit tests of zuotang_cli.inputs.reader: sources, list files, folders, URL normalization."""

from __future__ import annotations

import io
import itertools
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from zuotang_cli.inputs import reader as inputs
from zuotang_cli.inputs.reader import (
    GIF_REFUSED,
    MAX_LINE_BYTES,
    NOT_AN_IMAGE,
    NOT_FOUND,
    NOT_UTF8_NAME,
    InvalidURL,
    iter_inputs,
    normalize_url,
    sniff_image,
)
from zuotang_cli.inputs.scan import NOT_REGULAR, UNSUPPORTED, ScanTally
from zuotang_cli.models import InputItem, InputKind
from zuotang_cli.protocol.rules import MAX_URL_LENGTH


def run(*sources: str | Path, stdin: bytes = b"", recursive: bool = False) -> list[InputItem]:
    stream = io.BytesIO(stdin)
    return list(iter_inputs([str(s) for s in sources], stdin=stream, recursive=recursive))


def image(path: Path, fmt: str = "PNG") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (12, 8), (200, 30, 30)).save(path, format=fmt)
    return path


def urls(items: list[InputItem]) -> list[str | None]:
    return [item.url for item in items]


# --------------------------------------------------------------------------- URLs


def test_url_argument_becomes_one_normalized_item() -> None:
    [item] = run("HTTPS://Example.COM/a/photo.jpg")
    assert item.kind is InputKind.URL
    assert item.index == 0
    assert item.source == "HTTPS://Example.COM/a/photo.jpg"
    assert item.url == "https://example.com/a/photo.jpg"
    assert item.error is None and item.error_class is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("http://h.com/my photo.jpg", "http://h.com/my%20photo.jpg"),
        ("http://h.com/my%20photo.jpg", "http://h.com/my%20photo.jpg"),
        ("http://h.com/100%.jpg", "http://h.com/100%25.jpg"),
        ("http://h.com/a%2fb", "http://h.com/a%2Fb"),
        ("http://h.com/照片.jpg?q=a b&x=é", "http://h.com/%E7%85%A7%E7%89%87.jpg?q=a%20b&x=%C3%A9"),
        ("http://bücher.de/x.png", "http://xn--bcher-kva.de/x.png"),
        ("http://例子.测试/", "http://xn--fsqu00a.xn--0zwm56d/"),
        ("http://Example.com", "http://example.com/"),
        ("http://example.com:80/a", "http://example.com/a"),
        ("https://example.com:443/a", "https://example.com/a"),
        ("http://example.com:8080/a", "http://example.com:8080/a"),
        ("http://example.com/a.jpg#frag", "http://example.com/a.jpg"),
        ("http://user:pa ss@example.com/a", "http://user:pa%20ss@example.com/a"),
        ("http://[2001:DB8::1]:81/a", "http://[2001:db8::1]:81/a"),
        ("  http://example.com/a  ", "http://example.com/a"),
    ],
)
def test_normalize_url(text: str, expected: str) -> None:
    assert normalize_url(text) == expected
    assert normalize_url(expected) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("file:///etc/passwd", "not an http(s) URL"),
        ("javascript:alert(1)", "not an http(s) URL"),
        ("ftp://example.com/a.jpg", "not an http(s) URL"),
        ("example.com/a.jpg", "not an http(s) URL"),
        ("photo.jpg", "not an http(s) URL"),
        ("http:///a.jpg", "URL has no host"),
        ("http://user@/a.jpg", "URL has no host"),
        ("http://exa mple.com/", "invalid host name"),
        ("http://a..b/", "invalid host name"),
        ("http://example.com:99999/", "invalid port"),
        ("http://example.com:8a/", "invalid port"),
        ("http://[::1/", "malformed URL"),
        ("http://[nothex]/", "malformed URL"),
        ("http://example.com/a\x00b", "control characters"),
        ("http://example.com/a\tb", "control characters"),
        ("http://" + "x" * 64 + ".com/", "invalid host name"),
    ],
)
def test_normalize_url_refuses(text: str, reason: str) -> None:
    with pytest.raises(InvalidURL, match=reason.replace("(", r"\(").replace(")", r"\)")):
        normalize_url(text)


def test_url_length_limit_counts_the_normalized_form() -> None:
    base = "http://example.com/"
    assert len(normalize_url(base + "a" * (MAX_URL_LENGTH - len(base)))) == MAX_URL_LENGTH
    with pytest.raises(InvalidURL, match=r"URL longer than 512 characters \(513\)"):
        normalize_url(base + "a" * (MAX_URL_LENGTH + 1 - len(base)))
    # 100 characters that become 600 once encoded
    with pytest.raises(InvalidURL, match=r"longer than 512 characters \(619\)"):
        normalize_url(base + "é" * 100)


def test_invalid_url_argument_is_an_error_item() -> None:
    [item] = run("http://exa mple.com/x.jpg")
    assert item.kind is InputKind.URL
    assert item.error is not None and "invalid host name" in item.error
    assert item.error_class == "bad-input"


URLISH = st.builds(
    "{}://{}{}/{}".format,
    st.sampled_from(["http", "HTTPS", "ftp", "file", "javascript", ""]),
    st.text(max_size=20),
    st.sampled_from(["", ":80", ":8080", ":x", ":99999"]),
    st.text(max_size=600),
)


CANONICAL_CHARS = "abcXYZ09-._~!$&'()*+,;=:@/?%#[] é"
CANONICALISH = st.builds(
    "{}://{}{}{}".format,
    st.sampled_from(["http", "https", "HTTP"]),
    st.sampled_from(["example.com", "a.b.", "x" * 64 + ".com", "Ex.com", "h", "a:8080", "u@h"]),
    st.text(CANONICAL_CHARS, max_size=30).map(lambda path: f"/{path}" if path else ""),
    st.sampled_from(["", "?", "?a=1", "?a=%2f", "?a=%2F/b?c", "#frag"]),
)


@given(st.one_of(CANONICALISH, st.text(CANONICAL_CHARS, max_size=40)))
@settings(max_examples=500, deadline=None)
def test_the_fast_path_of_normalize_url_returns_what_the_long_way_does(text: str) -> None:
    """A URL already in canonical form skips the parsing; the result must not change."""
    try:
        expected: str | type[InvalidURL] = inputs._normalized(text.strip())
    except InvalidURL:
        expected = InvalidURL
    if inputs.is_canonical(text.strip()):
        assert expected == text.strip()
    try:
        assert normalize_url(text) == expected
    except InvalidURL:
        assert expected is InvalidURL


def test_the_fast_path_takes_the_common_urls() -> None:
    for url in ("https://img.example.com/photos/0/pic0.jpg", "http://a.b/x?y=1&z=%2F"):
        assert inputs._CANONICAL.fullmatch(url)
    long_host = "https://" + ".".join(["x" * 60] * 5) + "/a.jpg"  # over 253 characters
    assert not inputs._CANONICAL.fullmatch(long_host)
    with pytest.raises(InvalidURL, match="invalid host name"):
        normalize_url(long_host)


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(max_size=600), URLISH))
def test_normalize_url_only_raises_invalid_url(text: str) -> None:
    try:
        url = normalize_url(text)
    except InvalidURL:
        return
    assert len(url) <= MAX_URL_LENGTH
    assert url.isascii()
    assert url.startswith(("http://", "https://"))
    assert not any(char in url for char in " \x00\r\n\t")
    assert normalize_url(url) == url


# --------------------------------------------------------------------------- list files


def test_list_file_with_bom_crlf_comments_and_blank_lines(tmp_path: Path) -> None:
    listing = tmp_path / "urls.txt"
    listing.write_bytes(
        b"\xef\xbb\xbfhttp://example.com/1.jpg\r\n"
        b"# a comment\r\n"
        b"\r\n"
        b"   \r\n"
        b"  http://example.com/2.jpg  \r\n"
        b"\t# indented comment\n"
        b"http://example.com/3.jpg"
    )
    items = run(listing)
    assert urls(items) == [f"http://example.com/{n}.jpg" for n in (1, 2, 3)]
    assert [item.index for item in items] == [0, 1, 2]
    assert items[1].source == "http://example.com/2.jpg"
    assert all(item.error is None for item in items)


def test_list_lines_may_be_local_images_but_never_other_lists(tmp_path: Path) -> None:
    photo = image(tmp_path / "photo.png")
    inner = tmp_path / "inner.txt"
    inner.write_text("http://example.com/a.jpg\n")
    listing = tmp_path / "list.txt"
    listing.write_text(f"{photo}\n{inner}\nnot/there.png\n")
    local, nested, missing = run(listing)
    assert (local.kind, local.path, local.error) == (InputKind.FILE, photo.resolve(), None)
    assert (local.width, local.height) == (12, 8)
    assert nested.error == "not an image"
    assert missing.error == "not an http(s) URL"


def test_stdin_paths_from_find_are_images(tmp_path: Path) -> None:
    a, b = image(tmp_path / "a.png"), image(tmp_path / "sub" / "b.jpg", "JPEG")
    items = run("-", stdin=f"{a}\n{b}\n".encode())
    assert [item.path for item in items] == [a.resolve(), b.resolve()]
    assert all(item.error is None for item in items)


@pytest.mark.parametrize(
    ("size", "fmt", "reason"),
    [
        ((4097, 20), "PNG", "long side is 4097 px, over the 4096 px limit"),
        ((9, 5), "PNG", "long side is 9 px, under the 10 px minimum"),
        ((4096, 10), "PNG", None),
        ((10, 10), "JPEG", None),
    ],
)
def test_local_images_are_checked_before_any_call(
    tmp_path: Path, size: tuple[int, int], fmt: str, reason: str | None
) -> None:
    path = tmp_path / f"p.{fmt.lower()}"
    Image.new("RGB", size).save(path, format=fmt)
    [item] = run(path)
    assert item.error == reason
    if reason is not None:
        assert item.error_class == "preflight"
    else:
        assert (item.width, item.height) == size


def test_an_animated_image_is_refused_before_any_call(tmp_path: Path) -> None:
    path = tmp_path / "anim.webp"
    frames = [Image.new("RGB", (40, 30), (i * 80, 0, 0)) for i in range(3)]
    frames[0].save(path, format="WEBP", save_all=True, append_images=frames[1:])
    [item] = run(path)
    assert item.error == "animated images are not supported"


def test_an_oversized_file_is_refused_before_any_call(tmp_path: Path) -> None:
    path = tmp_path / "big.bmp"
    Image.new("RGB", (2600, 2100)).save(path, format="BMP")  # ~16 MB uncompressed
    assert path.stat().st_size > 15 * 1024 * 1024
    [item] = run(path)
    assert item.error is not None and "over the 15 MB limit" in item.error


def test_non_utf8_line_is_an_error_item_and_the_list_goes_on(tmp_path: Path) -> None:
    listing = tmp_path / "urls.txt"
    listing.write_bytes(
        b"http://example.com/1.jpg\nhttp://example.com/\xff\xfe.jpg\nhttp://e.com/3\n"
    )
    items = run(listing)
    assert [item.error for item in items] == [
        None,
        f"line 2 of {listing} is not valid UTF-8",
        None,
    ]
    assert items[1].source == r"http://example.com/\xff\xfe.jpg"
    assert items[1].error_class == "bad-input"


def test_nul_byte_in_a_line_is_refused(tmp_path: Path) -> None:
    listing = tmp_path / "urls.txt"
    listing.write_bytes(b"http://example.com/a\x00b.jpg\nhttp://example.com/ok.jpg\n")
    items = run(listing)
    assert items[0].error == "URL contains control characters"
    assert items[1].url == "http://example.com/ok.jpg"


class SpyStream(io.BytesIO):
    """Records the size asked of every readline: reading must always be bounded."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.limits: list[int | None] = []

    def readline(self, size: int | None = -1) -> bytes:
        self.limits.append(size)
        return super().readline(size)


def test_huge_line_is_reported_and_skipped_with_bounded_reads() -> None:
    data = b"http://e.com/1\n" + b"x" * (5 * MAX_LINE_BYTES) + b"\nhttp://e.com/3\n"
    stream = SpyStream(data)
    items = list(iter_inputs(["-"], stdin=stream))
    assert urls(items) == ["http://e.com/1", None, "http://e.com/3"]
    assert items[1].error == f"line 2 of stdin is too long (over {MAX_LINE_BYTES} bytes)"
    assert items[1].source == "stdin:2"
    assert all(limit is not None and 0 < limit <= MAX_LINE_BYTES + 1 for limit in stream.limits)


def test_line_at_the_limit_is_read_whole() -> None:
    url = b"http://e.com/" + b"a" * (MAX_LINE_BYTES - 13)
    assert len(url) == MAX_LINE_BYTES
    [item] = list(iter_inputs(["-"], stdin=io.BytesIO(url + b"\n")))
    assert item.error is not None and "too long" not in item.error  # too long as a URL only


def test_utf16_list_file_is_refused_once(tmp_path: Path) -> None:
    listing = tmp_path / "urls.txt"
    listing.write_text("http://example.com/a.jpg\n", encoding="utf-16")
    [item] = run(listing)
    assert item.error == "list file is UTF-16; save it as UTF-8"


def test_stdin_dash_reads_the_list() -> None:
    items = run("-", stdin=b"http://e.com/a\n#c\nhttp://e.com/b\n")
    assert urls(items) == ["http://e.com/a", "http://e.com/b"]


class FailingStream(io.BytesIO):
    def readline(self, size: int | None = -1) -> bytes:
        line = super().readline(size)
        if not line.startswith(b"http"):
            raise OSError(5, "Input/output error")
        return line


def test_read_error_in_a_list_is_one_error_item_and_the_batch_goes_on() -> None:
    stream = FailingStream(b"http://e.com/a\nBOOM\nhttp://e.com/never\n")
    items = list(iter_inputs(["-", "http://e.com/z"], stdin=stream))
    assert urls(items) == ["http://e.com/a", None, "http://e.com/z"]
    assert items[1].error == "cannot read stdin: Input/output error"
    assert [item.index for item in items] == [0, 1, 2]


class EndlessLines(io.RawIOBase):
    """A stdin fed by a generator: counts how many lines were pulled."""

    def __init__(self, total: int) -> None:
        self.pulled = 0
        self._lines = self._generate(total)
        self._pending = b""

    def _generate(self, total: int) -> Iterator[bytes]:
        for n in range(total):
            self.pulled += 1
            yield f"http://example.com/{n}.jpg\n".encode()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._pending:
            try:
                self._pending = next(self._lines)
            except StopIteration:
                return 0
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


@pytest.mark.timing
def test_inputs_stream_lazily_from_a_million_line_stdin() -> None:
    source = EndlessLines(1_000_000)
    stdin = io.BufferedReader(source)
    started = time.monotonic()
    items = iter_inputs(["-"], stdin=stdin)
    assert source.pulled == 0  # nothing read before the first item is asked for
    first = list(itertools.islice(items, 10))
    assert urls(first) == [f"http://example.com/{n}.jpg" for n in range(10)]
    assert source.pulled < 2_000
    assert time.monotonic() - started < 2


# --------------------------------------------------------------------------- local files


def test_image_file_argument(tmp_path: Path) -> None:
    photo = image(tmp_path / "photo.jpg", "JPEG")
    [item] = run(photo)
    assert item.kind is InputKind.FILE
    assert item.path == photo.resolve()
    assert item.relpath is None
    assert item.source == str(photo)
    assert item.error is None


def test_image_is_recognised_by_its_bytes_not_its_name(tmp_path: Path) -> None:
    photo = image(tmp_path / "photo.dat", "PNG")
    [item] = run(photo)
    assert item.kind is InputKind.FILE and item.error is None


@pytest.mark.parametrize(
    ("fmt", "name"),
    [("JPEG", "JPEG"), ("PNG", "PNG"), ("BMP", "BMP"), ("WEBP", "WEBP"), ("TIFF", "TIFF")],
)
def test_sniff_image_knows_the_supported_formats(tmp_path: Path, fmt: str, name: str) -> None:
    path = image(tmp_path / "x", fmt)
    assert sniff_image(path.read_bytes()[:16]) == name


def test_sniff_image_big_endian_tiff_and_non_images() -> None:
    assert sniff_image(b"MM\x00*\x00\x00\x00\x08") == "TIFF"
    assert sniff_image(b"RIFF\x00\x00\x00\x00WAVE") is None
    assert sniff_image(b"http://example.com/") is None
    assert sniff_image(b"") is None


def test_gif_is_refused(tmp_path: Path) -> None:
    gif = image(tmp_path / "anim.gif", "GIF")
    [item] = run(gif)
    assert item.error == GIF_REFUSED
    assert item.error_class == "bad-input"
    assert item.path == gif.resolve()


def test_text_named_like_an_image_is_not_an_image(tmp_path: Path) -> None:
    fake = tmp_path / "photo.jpg"
    fake.write_text("http://example.com/a.jpg\n")
    [item] = run(fake)
    assert item.error == NOT_AN_IMAGE
    assert item.error_class == "bad-input"


@pytest.mark.parametrize("source", ["missing.jpg", "ftp://example.com/a.jpg", "nodir/x"])
def test_missing_path_is_an_error_item(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    monkeypatch.chdir(tmp_path)
    [item] = run(source)
    assert item.error == NOT_FOUND
    assert item.source == source
    assert item.error_class == "bad-input"


def test_empty_argument_is_not_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    image(tmp_path / "a.png")
    monkeypatch.chdir(tmp_path)
    [item] = run("")
    assert item.error == "empty input"


def _reads_anything() -> bool:
    """Root (or an administrator) reads a file whatever its mode; Windows has no geteuid."""
    geteuid = getattr(os, "geteuid", None)
    return geteuid is None or geteuid() == 0


def test_unreadable_file_is_an_error_item(tmp_path: Path) -> None:
    if _reads_anything():
        pytest.skip("this user reads every file (root), or modes do not deny reading")
    photo = image(tmp_path / "photo.png")
    photo.chmod(0)
    [item] = run(photo)
    assert item.error is not None and item.error.startswith("cannot read: ")


def test_unreadable_file_in_a_folder_is_an_error_item(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    image(tmp_path / "a.png")

    def refuse(path: Path) -> bytes:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(inputs, "_read_head", refuse)
    [item] = run(tmp_path)
    assert item.error == "cannot read: Permission denied"
    assert item.error_class == "bad-input"


# --------------------------------------------------------------------------- folders


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "photos"
    for rel in ["b.PNG", "a.jpg", "c.webp", "sub/z.bmp", "sub/deeper/y.tiff", "sub/a.tif"]:
        image(root / rel, "PNG")
    image(root / ".hidden.png")
    image(root / ".cache/x.png")
    image(root / "skip.gif", "GIF")
    (root / "notes.txt").write_text("not an image")
    (root / "aa").mkdir()
    return root


def test_folder_top_level_only_by_default(tree: Path) -> None:
    items = run(tree)
    assert [str(item.relpath) for item in items] == ["a.jpg", "b.PNG", "c.webp"]
    first = items[0]
    assert first.kind is InputKind.FILE
    assert first.path == (tree / "a.jpg").resolve()
    assert first.source == str(tree / "a.jpg")
    assert all(item.error is None for item in items)


def test_folder_recursive_is_sorted_depth_first_and_skips_hidden(tree: Path) -> None:
    items = run(tree, recursive=True)
    assert [str(item.relpath) for item in items] == [
        "a.jpg",
        "b.PNG",
        "c.webp",
        "sub/a.tif",
        "sub/deeper/y.tiff",
        "sub/z.bmp",
    ]
    assert [item.index for item in items] == list(range(6))
    assert run(tree, recursive=True) == items  # deterministic


def test_folder_walk_does_not_follow_symlinked_folders(tree: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    image(outside / "o.png")
    (tree / "link").symlink_to(outside, target_is_directory=True)
    relpaths = [str(item.relpath) for item in run(tree, recursive=True)]
    assert not any(rel.startswith("link") for rel in relpaths)


def test_a_symlink_loop_in_a_folder_does_not_end_its_scan(tmp_path: Path) -> None:
    """A looping symlink is one entry not taken, not a folder-wide "cannot read" row."""
    image(tmp_path / "a.png")
    (tmp_path / "loop-a.png").symlink_to(tmp_path / "loop-b.png")
    (tmp_path / "loop-b.png").symlink_to(tmp_path / "loop-a.png")
    (tmp_path / "self").symlink_to(tmp_path / "self")
    image(tmp_path / "z.png")
    scan = ScanTally()
    items = list(iter_inputs([str(tmp_path)], stdin=io.BytesIO(), scan=scan))
    assert [(str(item.relpath), item.error) for item in items] == [("a.png", None), ("z.png", None)]
    assert scan.counts() == {NOT_REGULAR: 2, UNSUPPORTED: 1}


@pytest.mark.skipif(os.name == "nt", reason="Windows file names are UTF-16")
def test_a_file_name_that_is_not_utf8_is_refused_and_shown_escaped(tmp_path: Path) -> None:
    """Such a name cannot go into the journal or a report as text: an invalid row."""
    try:
        bad = image(tmp_path / os.fsdecode(b"\xff\xfe.png"))
    except OSError:
        pytest.skip("this file system refuses names that are not UTF-8")
    image(tmp_path / "ok.png")
    for items in (run(tmp_path), run(bad)):
        refused = [item for item in items if item.error is not None]
        assert [item.error for item in refused] == [NOT_UTF8_NAME]
        assert refused[0].source == str(tmp_path) + "/\\xff\\xfe.png"
        refused[0].source.encode("utf-8")


def test_image_named_file_in_a_folder_that_is_not_an_image(tmp_path: Path) -> None:
    (tmp_path / "fake.jpg").write_text("hello")
    image(tmp_path / "gif-inside.png", "GIF")
    items = run(tmp_path)
    assert [(str(item.relpath), item.error) for item in items] == [
        ("fake.jpg", NOT_AN_IMAGE),
        ("gif-inside.png", GIF_REFUSED),
    ]


# --------------------------------------------------------------------------- duplicates


def test_duplicate_url_after_normalization() -> None:
    items = run("http://example.com/a b.jpg", "http://e.com/x", "HTTP://EXAMPLE.com:80/a%20b.jpg")
    assert items[2].error == "duplicate of input #1"
    assert items[2].error_class == "duplicate"
    assert items[2].url == items[0].url
    assert items[0].error is None and items[1].error is None


def test_duplicate_url_across_arguments_and_lists(tmp_path: Path) -> None:
    listing = tmp_path / "l.txt"
    listing.write_text("http://e.com/a\nhttp://e.com/b\nhttp://e.com/a\n")
    items = run("http://e.com/b", listing)
    assert [item.error for item in items] == [
        None,
        None,
        "duplicate of input #1",
        "duplicate of input #2",
    ]


def test_duplicate_file_path_by_any_spelling(tmp_path: Path) -> None:
    photo = image(tmp_path / "d" / "p.png")
    link = tmp_path / "link.png"
    link.symlink_to(photo)
    items = run(photo, tmp_path / "d" / ".." / "d" / "p.png", link, tmp_path / "d")
    assert [item.error for item in items] == [None] + ["duplicate of input #1"] * 3


def test_invalid_entries_are_not_reported_as_duplicates() -> None:
    items = run("http://exa mple.com/", "http://exa mple.com/")
    assert all(item.error_class == "bad-input" for item in items)


def test_mixed_sources_keep_order_and_indexes(tmp_path: Path) -> None:
    image(tmp_path / "dir" / "x.png")
    photo = image(tmp_path / "p.bmp", "BMP")
    items = run("http://e.com/1", tmp_path / "dir", "-", photo, stdin=b"http://e.com/2\n")
    assert [item.index for item in items] == [0, 1, 2, 3]
    assert [item.kind for item in items] == [
        InputKind.URL,
        InputKind.FILE,
        InputKind.URL,
        InputKind.FILE,
    ]


def test_duplicates_are_found_across_table_growth() -> None:
    lines = [f"https://example.com/{i}.jpg" for i in range(5000)]
    items = run("-", stdin="\n".join(lines + lines[::7]).encode())
    dupes = [item for item in items if item.error_class == "duplicate"]
    assert len(dupes) == len(lines[::7])
    assert dupes[0].error == "duplicate of input #1"
    assert dupes[-1].error == f"duplicate of input #{len(lines[::7]) * 7 - 6}"
    assert all(item.error is None for item in items[:5000])
