"""What counts as a whole image when a result is saved (download.inspect_image)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image, UnidentifiedImageError

from zuotang_cli.store.download import inspect_image

NOT_WHOLE = (OSError, SyntaxError, ValueError, UnidentifiedImageError)


def encoded(fmt: str, size: tuple[int, int] = (64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.effect_noise(size, 60).convert("RGB").save(buffer, fmt)
    return buffer.getvalue()


def inspect(tmp_path: Path, data: bytes) -> tuple[str, int, int]:
    path = tmp_path / "result.part"
    path.write_bytes(data)
    with path.open("rb") as fh:
        return inspect_image(fh)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "BMP", "TIFF"])
def test_a_whole_image_gives_its_format_and_size(tmp_path: Path, fmt: str) -> None:
    assert inspect(tmp_path, encoded(fmt)) == (fmt, 64, 48)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
@pytest.mark.parametrize("keep", [0.25, 0.5, 0.9])
def test_an_image_cut_short_is_refused(tmp_path: Path, fmt: str, keep: float) -> None:
    data = encoded(fmt, (256, 256))
    with pytest.raises(NOT_WHOLE):
        inspect(tmp_path, data[: int(len(data) * keep)])


def test_a_png_with_a_damaged_chunk_is_refused(tmp_path: Path) -> None:
    data = bytearray(encoded("PNG", (128, 128)))
    data[len(data) // 2] ^= 0xFF  # inside the pixel data: its checksum no longer holds
    with pytest.raises(NOT_WHOLE):
        inspect(tmp_path, bytes(data))


def test_a_jpeg_with_bytes_after_its_end_is_decoded_and_kept(tmp_path: Path) -> None:
    data = encoded("JPEG") + b"camera trailer"
    assert inspect(tmp_path, data) == ("JPEG", 64, 48)


@pytest.mark.parametrize(
    "data", [b"", b"<html>login</html>", b"\x89PNG\r\n\x1a\n" + b"\0" * 40, b"\xff\xd8\xff\xd9"]
)
def test_what_is_not_an_image_is_refused(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(NOT_WHOLE):
        inspect(tmp_path, data)


def test_a_library_error_is_shown_on_one_line() -> None:
    """aiohttp quotes the bytes it choked on, with a caret line, in its error: a report
    cell and a stderr line hold its first line only, bounded."""
    from zuotang_cli.errors import MAX_CAUSE_CHARS, one_line

    exc = ValueError("Data after `Connection: close`:\n\n  b'\\x1a\\n...'\n   ^")
    assert one_line(exc) == "ValueError: Data after `Connection: close`:"
    long = one_line(OSError("x" * 1000))
    assert "\n" not in long and len(long) <= len("OSError: ") + MAX_CAUSE_CHARS
    assert one_line(TimeoutError()) == "TimeoutError"
