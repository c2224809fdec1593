"""1,000 hostile local files, made with Pillow and a seeded RNG: truncated images,
polyglots (a JPEG that is also a zip, a PNG that is also HTML), wrong extensions, zero-byte
files, decompression bombs, animated GIF / PNG / WebP, huge dimensions in a tiny file,
CMYK / 16-bit / palette / 1-bit oddities, odd names, symlinks (loops, dangling, pointing
outside), FIFOs, unreadable files.  Given as a scanned folder and as a list: no traceback,
no hang, a row for every file (or, in a folder, the count by reason the README promises),
and nothing sent that the preflight rules refuse.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import random
import stat
import struct
import time
import warnings
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.reliability.support import Trial, enhance
from zuotang_cli.protocol import preflight

SUITE = "Hostile local files"
SEED = int(os.environ.get("ZUOTANG_FUZZ_SEED", "15"))
COUNT = 1000
SUPPORTED = {"JPEG", "PNG", "BMP", "WEBP", "TIFF"}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
MAX_BYTES = 15 * 1024 * 1024
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


# -- the files ------------------------------------------------------------------------------


def _image(rng: random.Random, size: tuple[int, int], mode: str = "RGB") -> Image.Image:
    image = Image.frombytes("RGB", size, rng.randbytes(size[0] * size[1] * 3))
    return image.convert(mode)


def _save(image: Image.Image, fmt: str, **params: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def _size(rng: random.Random) -> tuple[int, int]:
    return rng.randint(10, 48), rng.randint(10, 48)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_header_only(width: int, height: int, *, idat: bytes = b"") -> bytes:
    """A PNG that claims ``width`` x ``height`` in a few bytes."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat)


@functools.cache
def _bomb(width: int, height: int) -> bytes:
    """A 1-bit PNG of ``width`` x ``height`` whose zlib stream is tiny."""
    row = b"\x00" + b"\x00" * ((width + 7) // 8)
    compressor = zlib.compressobj(9)
    data = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", data)
        + _png_chunk(b"IEND", b"")
    )


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("payload.html", "<script>alert(1)</script>")
    return buffer.getvalue()


def _frames(rng: random.Random, n: int = 3) -> list[Image.Image]:
    size = _size(rng)
    return [_image(rng, size) for _ in range(n)]


Maker = Callable[[random.Random], tuple[str, bytes]]
"""A kind of file: (suffix, bytes)."""

KINDS: dict[str, Maker] = {
    "png": lambda r: (".png", _save(_image(r, _size(r)), "PNG")),
    "jpeg": lambda r: (".jpg", _save(_image(r, _size(r)), "JPEG")),
    "webp": lambda r: (".webp", _save(_image(r, _size(r)), "WEBP")),
    "bmp": lambda r: (".bmp", _save(_image(r, _size(r)), "BMP")),
    "tiff": lambda r: (".tiff", _save(_image(r, _size(r)), "TIFF")),
    "cmyk-jpeg": lambda r: (".jpeg", _save(_image(r, _size(r), "CMYK"), "JPEG")),
    "cmyk-tiff": lambda r: (".tif", _save(_image(r, _size(r), "CMYK"), "TIFF")),
    "16-bit-png": lambda r: (".png", _save(_image(r, _size(r), "I;16"), "PNG")),
    "palette-png": lambda r: (".png", _save(_image(r, _size(r), "P"), "PNG", transparency=0)),
    "1-bit-bmp": lambda r: (".bmp", _save(_image(r, _size(r), "1"), "BMP")),
    "la-png": lambda r: (".png", _save(_image(r, _size(r), "LA"), "PNG")),
    "truncated": lambda r: (
        r.choice([".png", ".jpg", ".webp"]),
        (lambda d: d[: r.randint(1, len(d) - 1)])(
            _save(_image(r, _size(r)), r.choice(["PNG", "JPEG", "WEBP"]))
        ),
    ),
    "jpeg+zip": lambda r: (".jpg", _save(_image(r, _size(r)), "JPEG") + _zip()),
    "html+png": lambda r: (
        ".png",
        _save(_image(r, _size(r)), "PNG") + b"<html><script>alert(1)</script></html>",
    ),
    "html-as-jpg": lambda r: (".jpg", b"<!doctype html><img src=x onerror=alert(1)>"),
    "png-as-jpg": lambda r: (".jpg", _save(_image(r, _size(r)), "PNG")),
    "gif-as-png": lambda r: (".png", _save(_image(r, _size(r)), "GIF")),
    "text-as-png": lambda r: (".png", b"https://img.test/a.png\n"),
    "zero-byte": lambda r: (r.choice([".png", ".jpg", ".tiff"]), b""),
    "bomb-in-limits": lambda r: (".png", _bomb(4096, 4096)),
    "bomb-over-limits": lambda r: (".png", _bomb(r.choice([20_000, 40_000]), 20_000)),
    "huge-header": lambda r: (
        ".png",
        _png_header_only(r.choice([4097, 65_535, 1 << 30]), r.randint(1, 100)),
    ),
    "tiny": lambda r: (".png", _save(_image(r, (r.randint(1, 9), r.randint(1, 9))), "PNG")),
    "animated-gif": lambda r: (
        ".gif",
        (lambda f: _save(f[0], "GIF", save_all=True, append_images=f[1:]))(_frames(r)),
    ),
    "animated-png": lambda r: (
        ".png",
        (lambda f: _save(f[0], "PNG", save_all=True, append_images=f[1:]))(_frames(r)),
    ),
    "animated-webp": lambda r: (
        ".webp",
        (lambda f: _save(f[0], "WEBP", save_all=True, append_images=f[1:]))(_frames(r)),
    ),
    "ppm-as-png": lambda r: (".png", _save(_image(r, _size(r)), "PPM")),
    "ico-as-png": lambda r: (".png", _save(_image(r, (32, 32)), "ICO")),
    "bogus-bmp": lambda r: (".bmp", b"BM" + r.randbytes(60)),
    "bogus-webp": lambda r: (".webp", b"RIFF\x10\x00\x00\x00WEBPVP8 " + r.randbytes(40)),
    "bogus-tiff": lambda r: (".tiff", b"II*\x00" + r.randbytes(60)),
    "random-bytes": lambda r: (r.choice([".png", ".jpg", ".bmp"]), r.randbytes(r.randint(1, 300))),
    "not-an-image-suffix": lambda r: (r.choice([".txt", ".html", ".zip", ".svg", ""]), b"x"),
}
NAME_TRICKS = [
    "",
    "",
    "",
    "",
    " spaced",
    "画像",
    "e\u0301",
    "\u202egnp",
    "semi;colon",
    "per%41cent",
]


def make_files(root: Path, rng: random.Random, count: int) -> dict[str, str]:
    """``count`` regular files under ``root`` (some in ``sub/``); their kinds by path."""
    kinds: dict[str, str] = {}
    (root / "sub").mkdir(parents=True)
    names = list(KINDS)
    for number in range(count):
        kind = names[number % len(names)]
        suffix, data = KINDS[kind](rng)
        folder = root / "sub" if number % 7 == 0 else root
        trick = rng.choice(NAME_TRICKS)
        path = folder / f"{number:04d}-{kind}{trick}{suffix}"
        if number % 97 == 0:
            path = folder / f".{path.name}"  # hidden
        path.write_bytes(data)
        kinds[str(path)] = kind
    return kinds


def make_oddities(root: Path, outside: Path) -> dict[str, str]:
    """Symlinks, FIFOs, an unreadable file, a name with a newline: their kinds by path."""
    odd: dict[str, str] = {}
    outside.mkdir()
    Image.new("RGB", (30, 20), (9, 8, 7)).save(outside / "outside.png")

    def link(name: str, target: str | Path, kind: str) -> None:
        (root / name).symlink_to(target)
        odd[str(root / name)] = kind

    link("loop-a.png", root / "loop-b.png", "symlink-loop")
    link("loop-b.png", root / "loop-a.png", "symlink-loop")
    link("self.png", root / "self.png", "symlink-loop")
    link("dangling.png", root / "no-such-file.png", "symlink-dangling")
    link("outside.png", outside / "outside.png", "symlink-outside")
    link("relative-outside.png", "../outside/outside.png", "symlink-outside")
    link("passwd.png", "/etc/passwd", "symlink-outside")
    link("folder-link", outside, "symlink-folder")
    link("folder-link.png", outside, "symlink-folder")
    if hasattr(os, "mkfifo"):
        for name in ("fifo.png", "sub/fifo.jpg", "fifo.txt"):
            os.mkfifo(root / name)
            odd[str(root / name)] = "fifo"
    if not IS_ROOT:
        unreadable = root / "unreadable.png"
        Image.new("RGB", (30, 20)).save(unreadable)
        unreadable.chmod(0)
        odd[str(unreadable)] = "unreadable"
    undecodable = root / os.fsdecode(b"\xff\xfe-not-utf8.png")
    Image.new("RGB", (31, 20), (2, 2, 2)).save(undecodable)
    odd[str(undecodable)] = "undecodable-name"
    newline = root / "new\nline.png"
    Image.new("RGB", (30, 21), (1, 1, 1)).save(newline)
    odd[str(newline)] = "newline-name"
    return odd


# -- what preflight's rules refuse, written out apart from the product ----------------------


def acceptable(path: Path) -> bool:
    """Whether the preflight rules (README: jpg/png/bmp/webp/tiff, not animated, at most
    15 MB, long side within [10, 4096], read from the header) let this file be sent."""
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            return False
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as image:
                fmt, size = image.format, image.size
                animated = bool(getattr(image, "is_animated", False))
    except Exception:
        return False
    long_side = max(size)
    return (
        fmt in SUPPORTED
        and not animated
        and path.stat().st_size <= MAX_BYTES
        and 10 <= long_side <= 4096
    )


def refused_by_preflight(path: Path) -> bool:
    """The product's own preflight, asked directly."""
    try:
        return preflight.problem(preflight.inspect_file(path)) is not None
    except ValueError:
        return True


def not_taken(path: Path, kind: str) -> str | None:
    """Why a folder scan leaves this entry out (README: hidden, symlinked folder,
    unsupported extension, not a regular file), or None when it is an input."""
    if path.name.startswith("."):
        return "hidden"
    if kind == "symlink-folder":
        return "symlinked folder (not followed)"
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        return "unsupported extension"
    if kind in ("fifo", "symlink-loop", "symlink-dangling"):
        return "not a regular file"
    return None


def shown(path: str) -> str:
    """A path as a report shows it: bytes that are not UTF-8 as backslash escapes."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def digest(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


# -- the runs -------------------------------------------------------------------------------


def run_batch(
    trial: Trial, emu: Any, work: Path, *sources: str, stdin: bytes | None = None
) -> tuple[list[dict[str, Any]], dict[str, Any], Counter[str], float]:
    """One run; its report rows, its summary, what the emulator was sent, its seconds."""
    before = Counter(emu.stats()["billed_by_input"])
    started = time.monotonic()
    run = enhance(
        trial,
        *sources,
        "-o",
        str(work / "out"),
        "--recursive",
        "--qps",
        "1000",
        "-q",
        "--report",
        str(work / "report.jsonl"),
        "--summary-json",
        str(work / "summary.json"),
        endpoint=emu.endpoint,
        stdin=stdin,
        cwd=work,
        timeout=240,  # a hang (a FIFO read) fails here
    )
    seconds = time.monotonic() - started
    assert run.returncode in (0, 1), run.stderr[-3000:]
    with (work / "report.jsonl").open(encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    summary = json.loads((work / "summary.json").read_text(encoding="utf-8"))
    return rows, summary, Counter(emu.stats()["billed_by_input"]) - before, seconds


def check_sent(rows: list[dict[str, Any]], received: Counter[str], files: list[Path]) -> int:
    """Every call the emulator got was one done row's file, which preflight accepts; every
    acceptable regular file was sent (done) or is a duplicate of one sent."""
    by_digest: dict[str, list[Path]] = {}
    for path in files:
        if acceptable(path) and shown(str(path)) == str(path):  # a non-UTF-8 name is refused
            by_digest.setdefault(digest(path), []).append(path)
    for key in received:
        assert key in by_digest, f"sent a file preflight refuses: {key}"
        assert not refused_by_preflight(by_digest[key][0]), by_digest[key]
    assert all(n == 1 for n in received.values()), received
    outcomes = Counter(row["outcome"] for row in rows)
    assert set(outcomes) <= {"done", "invalid", "skipped"}, outcomes
    assert outcomes["done"] == sum(received.values()), (outcomes, len(received))
    assert set(received) == set(by_digest), set(by_digest) - set(received)
    assert all(row["message"] for row in rows if row["outcome"] == "invalid"), rows
    return sum(received.values())


@pytest.mark.reliability
@pytest.mark.timeout(900)
def test_1000_hostile_files_as_a_folder_and_as_a_list(
    trial: Trial, emulator: Any, tmp_path: Path
) -> None:
    """1,000 hostile local files, scanned as a folder and listed on stdin: none unaccounted."""
    emu = emulator(cheap=True, qps=10_000)
    root = tmp_path / "hostile"
    rng = random.Random(SEED)
    kinds = make_files(root, rng, COUNT)
    kinds.update(make_oddities(root, tmp_path / "outside"))
    trial.inputs += len(kinds)
    started = time.monotonic()

    # As a folder: every file a row, or counted by reason in the summary's skipped_files.
    folder_work = tmp_path / "as-folder"
    folder_work.mkdir()
    rows, summary, received, folder_seconds = run_batch(trial, emu, folder_work, str(root))
    skipped = summary["skipped_files"]
    reasons = {path: not_taken(Path(path), kind) for path, kind in kinds.items()}
    assert skipped == dict(Counter(r for r in reasons.values() if r is not None)), skipped
    taken = [path for path, reason in reasons.items() if reason is None]
    assert sorted(row["input"] for row in rows) == sorted(map(shown, taken))
    folder_rows = len(rows)
    folder_sent = check_sent(rows, received, [Path(p) for p in taken if Path(p).is_file()])

    # As a list on stdin: one row per line (a path with a newline cannot be listed).
    list_work = tmp_path / "as-list"
    list_work.mkdir()
    listed = [p for p in kinds if "\n" not in p]
    content = b"".join(os.fsencode(p) + b"\n" for p in listed)
    rows, _, received, list_seconds = run_batch(trial, emu, list_work, "-", stdin=content)
    assert len(rows) == len(listed), (len(rows), len(listed))
    assert sorted(row["input"] for row in rows) == sorted(shown(p).strip() for p in listed)
    list_sent = check_sent(rows, received, [Path(p) for p in listed if Path(p).is_file()])
    seconds = time.monotonic() - started

    kinds_made = Counter(kinds.values())
    trial.note(
        f"seed {SEED}: {len(kinds)} hostile files ({len(KINDS)} generated kinds, "
        f"{kinds_made['fifo']} FIFOs, {kinds_made['symlink-loop']} symlink loops, "
        f"{kinds_made['symlink-dangling']} dangling and {kinds_made['symlink-outside']} "
        f"outward symlinks, {kinds_made['unreadable']} unreadable"
        + (" (running as root: no unreadable file)" if IS_ROOT else "")
        + f"); as a folder: {folder_rows} rows + {sum(skipped.values())} counted as not taken "
        f"({skipped}) = every file, {folder_sent} sent, {folder_seconds:.1f} s; as a list on "
        f"stdin: {len(listed)} lines, {len(rows)} rows, {list_sent} sent, "
        f"{list_seconds:.1f} s; every file sent is one the preflight rules accept (and the "
        f"product's preflight too), every acceptable file was sent once; {trial.tracebacks} "
        f"tracebacks, 0 hangs; {seconds:.0f} s"
    )
