"""What the service does to an image: check it, pick the factor, resize, encode."""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, ImageFilter, ImageOps

from zuotang_cli.protocol import rules


class ImageRejected(Exception):
    """The call fails with a negative ``data.state`` (-3, -5, -7, ...)."""

    def __init__(self, state: int, message: str) -> None:
        super().__init__(message)
        self.state = state
        self.message = message


@dataclass(frozen=True)
class Rendered:
    data: bytes
    ext: str
    """``jpg`` or ``png``."""
    width: int
    height: int

    @property
    def content_type(self) -> str:
        return "image/jpeg" if self.ext == "jpg" else "image/png"


JPEG_SOURCES = frozenset({"JPEG", "MPO"})


def check_size(size: int) -> None:
    """State -5 for a source over the service's file limit."""
    if size > rules.MAX_FILE_BYTES:
        raise ImageRejected(-5, f"image is over 15 MB ({size} bytes)")


def render(source: bytes, kind: str, requested: int | None, *, upright: bool = False) -> Rendered:
    """Enhance ``source`` like the service would. Blocking: run it in a thread.

    ``upright``: turn the source by its EXIF orientation first (the service may or may
    not: the emulator's ``--orientation``).  The result carries no metadata (no EXIF,
    XMP nor ICC profile), as services that re-encode do.  Raises :class:`ImageRejected`
    (-5 or -7) for what the service refuses.
    """
    check_size(len(source))
    image = _open(source)
    fmt = image.format
    factor = rules.effective_factor(max(image.size), requested)
    try:
        if upright:
            image = ImageOps.exif_transpose(image) or image
        out = _enhance(image, kind, factor, to_jpeg=fmt in JPEG_SOURCES)
    except Exception as exc:  # a damaged file fails in the decoder, whatever it raises
        raise ImageRejected(-7, f"invalid image: cannot decode ({exc})") from None
    for name in ("icc_profile", "exif", "xmp", "XML:com.adobe.xmp"):
        out.info.pop(name, None)  # the result carries no metadata
    buffer = io.BytesIO()
    if fmt in JPEG_SOURCES:
        out.save(buffer, "JPEG", quality=90)
        ext = "jpg"
    else:
        out.save(buffer, "PNG", compress_level=1)
        ext = "png"
    return Rendered(buffer.getvalue(), ext, out.width, out.height)


def _open(source: bytes) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(source))
    except Exception:  # Pillow raises many kinds for data it cannot identify
        raise ImageRejected(-7, "invalid image: not a readable image file") from None
    if image.format not in rules.SUPPORTED_FORMATS:
        raise ImageRejected(-7, f"invalid image: format {image.format} is not supported")
    long_side = max(image.size)
    if not rules.MIN_LONG_SIDE <= long_side <= rules.MAX_LONG_SIDE:
        width, height = image.size
        raise ImageRejected(
            -7,
            f"invalid image: resolution {width}x{height} "
            f"(long side must be {rules.MIN_LONG_SIDE}-{rules.MAX_LONG_SIDE})",
        )
    return image


def _enhance(image: Image.Image, kind: str, factor: int, *, to_jpeg: bool) -> Image.Image:
    image = _normalise_mode(image, to_jpeg=to_jpeg)
    size = (image.width * factor, image.height * factor)
    if kind == "face":
        out = image.resize(size, Image.Resampling.BICUBIC)
        return out.filter(ImageFilter.UnsharpMask(radius=2, percent=60, threshold=2))
    return image.resize(size, Image.Resampling.LANCZOS)


def _normalise_mode(image: Image.Image, *, to_jpeg: bool) -> Image.Image:
    if to_jpeg:
        return image if image.mode in ("RGB", "L") else image.convert("RGB")
    if image.mode in ("RGB", "RGBA", "L", "LA"):
        return image
    alpha = "A" in image.getbands() or "transparency" in image.info
    return image.convert("RGBA" if alpha else "RGB")


def _tiny_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (120, 160, 200)).save(buffer, "PNG")
    return buffer.getvalue()


CHEAP_RESULT = Rendered(_tiny_png(), "png", 8, 8)
"""The fixed answer of ``cheap`` mode."""
