"""A result finished the way its source was: its metadata carried over, upright, in the
format asked for (docs/results.md).  Pure functions over bytes, no I/O.

- **Metadata.** The source's EXIF (GPS removed with ``strip_gps``), XMP and ICC profile
  go into the result when the result lacks them.  A JPEG result gets them as inserted
  segments after its start-of-image: its compressed data is not touched (no quality lost).
  A PNG result gets them as chunks before its image data.  An ICC profile goes only where
  its colour space is the result's (a CMYK profile never lands on an RGB result).
- **Upright.** A source with an EXIF orientation that swaps width and height (5 to 8) is
  compared with its result: a result whose long side lies the other way than the
  source's stored pixels was turned upright by the service, so the orientation carried
  is 1; else the service kept the stored pixels and the source's orientation goes with
  them.  Orientations 2 to 4 (and square images) leave the dimensions alike: the service
  is then taken to have kept the stored pixels (the orientation goes with them).  When
  the result is re-encoded anyway (a format conversion, a PNG turned), its pixels are
  turned upright and the orientation written is 1.
- **Format.** ``jpg``, ``png``, ``webp`` or ``same`` (the source's format), encoded locally
  with ``quality`` for the lossy ones; a 16-bit image is brought to 8 bits by its high
  byte (not clipped), transparency is laid on white for JPEG, CMYK made RGB for PNG/WebP.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image

FORMATS = ("jpg", "png", "webp", "same")
"""What ``--format`` takes."""
DEFAULT_QUALITY = 92
"""JPEG and WebP quality when ``--quality`` is not given (visually lossless for photos)."""
HEAD_BYTES = 1024 * 1024
"""How much of a local source is read for its metadata (it all comes before the pixels)."""

_EXIF_HEADER = b"Exif\x00\x00"
_XMP_HEADER = b"http://ns.adobe.com/xap/1.0/\x00"
_ICC_HEADER = b"ICC_PROFILE\x00"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_XMP_KEYWORD = b"XML:com.adobe.xmp"
_MAX_SEGMENT = 65533
"""Bytes of payload one JPEG segment can hold (its length field counts itself)."""
_ICC_CHUNK = _MAX_SEGMENT - len(_ICC_HEADER) - 2
_SWAPPING = frozenset({5, 6, 7, 8})
_ORIENTATION, _EXIF_IFD, _GPS_IFD = 0x0112, 0x8769, 0x8825
_PIXEL_X, _PIXEL_Y = 0xA002, 0xA003
_EXTENSIONS = {"JPEG": "jpg", "MPO": "jpg", "PNG": "png", "WEBP": "webp"}
_PILLOW_FORMATS = {"jpg": "JPEG", "png": "PNG", "webp": "WEBP"}
_ICC_SPACES = {"RGB ": ("RGB", "RGBA", "P"), "CMYK": ("CMYK",), "GRAY": ("L", "LA", "I;16")}


@dataclass(frozen=True)
class Metadata:
    """What a source carries besides its pixels (``exif`` without its ``Exif\\0\\0``)."""

    format: str
    """``jpg``, ``png``, ``webp`` (or ``""``: not one of these)."""
    width: int | None = None
    height: int | None = None
    exif: bytes | None = None
    xmp: bytes | None = None
    icc: bytes | None = None

    @property
    def orientation(self) -> int:
        return exif_orientation(self.exif)


@dataclass(frozen=True)
class Finish:
    """How results are finished (the run's ``--format``, ``--quality``, ``--strip-gps``)."""

    format: str | None = None
    """None: the format the service gave; else one of :data:`FORMATS`."""
    quality: int = DEFAULT_QUALITY
    strip_gps: bool = False
    metadata: bool = True

    def target(self, source_format: str | None, result_ext: str) -> str:
        """The extension the finished result has."""
        if self.format is None:
            return result_ext
        if self.format == "same":
            return source_format if source_format in _PILLOW_FORMATS else result_ext
        return self.format


@dataclass(frozen=True)
class Finished:
    data: bytes
    ext: str
    width: int
    height: int
    notes: tuple[str, ...] = ()
    """What was done, for the report (``EXIF, ICC carried``, ``converted to webp``)."""


def pillow_format(ext: str) -> str:
    """Pillow's name of the format of extension ``ext`` (``jpg`` → ``JPEG``)."""
    return _PILLOW_FORMATS.get(ext, ext.upper())


def extension_of(pillow_format: str) -> str:
    return _EXTENSIONS.get(pillow_format.upper(), pillow_format.lower())


def format_from_name(name: str) -> str | None:
    """``jpg``/``png``/``webp`` from a file name's suffix, None when it does not say."""
    suffix = name.rpartition(".")[2].lower() if "." in name else ""
    return {"jpeg": "jpg", "jpe": "jpg", "jpg": "jpg", "png": "png", "webp": "webp"}.get(suffix)


# -- reading a source ------------------------------------------------------------------


def read_metadata(head: bytes) -> Metadata:
    """The metadata of an image from its first bytes (a header cut short is fine)."""
    if head.startswith(b"\xff\xd8"):
        return _jpeg_metadata(head)
    if head.startswith(_PNG_SIGNATURE):
        return _png_metadata(head)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return _webp_metadata(head)
    return Metadata("")


def _jpeg_segments(data: bytes) -> list[tuple[int, int, int]]:
    """(marker, payload start, payload end) of every segment before the scan data."""
    found, pos = [], 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        length = struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        if pos + 2 + length > len(data):  # cut short: not whole, not used
            break
        found.append((marker, pos + 4, pos + 2 + length))
        if marker == 0xDA:  # start of scan: the compressed data follows
            break
        pos += 2 + length
    return found


def _jpeg_metadata(data: bytes) -> Metadata:
    exif = xmp = None
    icc: dict[int, bytes] = {}
    width = height = None
    for marker, start, end in _jpeg_segments(data):
        payload = data[start:end]
        if marker == 0xE1 and payload.startswith(_EXIF_HEADER) and exif is None:
            exif = payload[len(_EXIF_HEADER) :]
        elif marker == 0xE1 and payload.startswith(_XMP_HEADER) and xmp is None:
            xmp = payload[len(_XMP_HEADER) :]
        elif marker == 0xE2 and payload.startswith(_ICC_HEADER) and len(payload) > 14:
            icc[payload[12]] = payload[14:]
        elif marker in _SOF_MARKERS and len(payload) >= 5:
            height, width = struct.unpack(">HH", payload[1:5])
    profile = b"".join(icc[n] for n in sorted(icc)) or None
    return Metadata("jpg", width, height, exif, xmp, profile)


_SOF_MARKERS = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD})


def _png_chunks(data: bytes) -> list[tuple[bytes, int, int]]:
    """(type, data start, data end) of each whole chunk."""
    found, pos = [], len(_PNG_SIGNATURE)
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if pos + 12 + length > len(data):
            break
        found.append((kind, pos + 8, pos + 8 + length))
        if kind == b"IEND":
            break
        pos += 12 + length
    return found


def _png_metadata(data: bytes) -> Metadata:
    exif = xmp = icc = None
    width = height = None
    for kind, start, end in _png_chunks(data):
        body = data[start:end]
        if kind == b"IHDR" and len(body) >= 8:
            width, height = struct.unpack(">II", body[:8])
        elif kind == b"eXIf":
            exif = body.removeprefix(_EXIF_HEADER)
        elif kind == b"iCCP":
            icc = _inflate(body[body.find(b"\x00") + 2 :])
        elif kind == b"iTXt" and body.startswith(_XMP_KEYWORD + b"\x00"):
            xmp = _itxt_text(body)
    return Metadata("png", width, height, exif, xmp, icc)


def _inflate(data: bytes) -> bytes | None:
    try:
        return zlib.decompress(data)
    except zlib.error:
        return None


def _itxt_text(body: bytes) -> bytes | None:
    """The text of an iTXt chunk (keyword, flags, language and translated keyword first)."""
    rest = body[len(_XMP_KEYWORD) + 1 :]
    if len(rest) < 2:
        return None
    compressed, rest = rest[0], rest[2:]
    rest = rest.split(b"\x00", 2)[-1] if rest.count(b"\x00") >= 2 else b""
    return _inflate(rest) if compressed else rest or None


def _webp_metadata(data: bytes) -> Metadata:
    chunks: dict[bytes, bytes] = {}
    width = height = None
    pos = 12
    while pos + 8 <= len(data):
        kind, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        body = data[pos + 8 : pos + 8 + size]
        if kind == b"VP8X" and len(body) >= 10:
            width = 1 + int.from_bytes(body[4:7], "little")
            height = 1 + int.from_bytes(body[7:10], "little")
        elif len(body) == size:
            chunks.setdefault(kind, body)
        pos += 8 + size + (size & 1)
    exif = chunks.get(b"EXIF")
    return Metadata(
        "webp",
        width,
        height,
        exif.removeprefix(_EXIF_HEADER) if exif else None,
        chunks.get(b"XMP "),
        chunks.get(b"ICCP"),
    )


def exif_orientation(exif: bytes | None) -> int:
    """The EXIF orientation (1 to 8; 1 when absent or unreadable)."""
    if not exif:
        return 1
    try:
        value = _load_exif(exif).get(_ORIENTATION, 1)
    except Exception:
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _load_exif(exif: bytes) -> Image.Exif:
    from PIL import Image

    loaded = Image.Exif()
    loaded.load(_EXIF_HEADER + exif)
    return loaded


def icc_space(icc: bytes) -> str:
    """The colour space an ICC profile describes (``RGB ``, ``CMYK``, ``GRAY``)."""
    return icc[16:20].decode("latin-1") if len(icc) >= 20 else ""


# -- the decision ----------------------------------------------------------------------


def service_turned(source: Metadata, width: int, height: int) -> bool:
    """Whether the service turned the source upright (see the module): decided from the
    dimensions, only for an orientation that swaps them and a source that is not square."""
    if source.orientation not in _SWAPPING or not source.width or not source.height:
        return False
    if source.width == source.height or width == height:
        return False
    return (width > height) != (source.width > source.height)


def orientation_left(source: Metadata, width: int, height: int) -> int:
    """The orientation the result's pixels still need to display as the source does."""
    return 1 if service_turned(source, width, height) else source.orientation


# -- finishing -------------------------------------------------------------------------


def finish(result: bytes, source: Metadata | None, how: Finish) -> Finished:
    """``result`` (the service's image) finished for ``source`` (see the module)."""
    from PIL import Image

    with Image.open(io.BytesIO(result)) as img:
        ext, mode, size = extension_of(str(img.format)), img.mode, img.size
        has = _present(img.info)
    meta = source if source is not None and how.metadata else Metadata("")
    target = how.target(meta.format or None, ext)
    turn = orientation_left(meta, *size) if meta.exif else 1
    if target != ext or (ext == "png" and turn != 1):
        return _reencoded(result, meta, how, target, turn)
    exif = _exif_for(meta, size, turn, how) if "exif" not in has else None
    xmp = meta.xmp if "xmp" not in has else None
    icc = meta.icc if "icc" not in has and _icc_fits(meta.icc, mode) else None
    notes = _carried(exif, xmp, icc)
    if ext == "jpg":
        data = insert_jpeg(result, exif=exif, xmp=xmp, icc=icc)
    elif ext == "png":
        data = insert_png(result, exif=exif, xmp=xmp, icc=icc)
    else:  # another format: left as it came (re-encoding it would lose quality)
        data, notes = result, ()
    return Finished(data, ext, size[0], size[1], notes)


def _present(info: dict[str, object]) -> set[str]:
    names = {"exif": "exif", "icc_profile": "icc", "xmp": "xmp", _XMP_KEYWORD.decode(): "xmp"}
    return {short for key, short in names.items() if info.get(key)}


def _icc_fits(icc: bytes | None, mode: str) -> bool:
    return icc is not None and mode in _ICC_SPACES.get(icc_space(icc), ())


def _carried(exif: bytes | None, xmp: bytes | None, icc: bytes | None) -> tuple[str, ...]:
    kept = [name for name, value in (("EXIF", exif), ("XMP", xmp), ("ICC", icc)) if value]
    return (f"{', '.join(kept)} carried over",) if kept else ()


def _exif_for(meta: Metadata, size: tuple[int, int], orientation: int, how: Finish) -> bytes | None:
    """The source's EXIF for a result of ``size`` with ``orientation`` (GPS gone if asked);
    the source's bytes as they are when nothing changes, None when unreadable."""
    if not meta.exif:
        return None
    try:
        exif = _load_exif(meta.exif)
        details = exif.get_ifd(_EXIF_IFD)
        if how.strip_gps and _GPS_IFD in exif:
            exif.get_ifd(_GPS_IFD).clear()
            del exif[_GPS_IFD]
        exif[_ORIENTATION] = orientation
        if details:
            details[_PIXEL_X], details[_PIXEL_Y] = size
        data = exif.tobytes()
    except Exception:
        return None
    return data.removeprefix(_EXIF_HEADER)


def insert_jpeg(
    data: bytes, *, exif: bytes | None = None, xmp: bytes | None = None, icc: bytes | None = None
) -> bytes:
    """``data`` (a JPEG) with segments inserted after its JFIF header (or its start): every
    byte of the original follows unchanged.  A block too big for one segment is left out
    (EXIF and XMP); an ICC profile is split in numbered segments, as the standard says."""
    segments = []
    if exif and len(_EXIF_HEADER) + len(exif) <= _MAX_SEGMENT:
        segments.append(_segment(0xE1, _EXIF_HEADER + exif))
    if xmp and len(_XMP_HEADER) + len(xmp) <= _MAX_SEGMENT:
        segments.append(_segment(0xE1, _XMP_HEADER + xmp))
    if icc:
        parts = [icc[i : i + _ICC_CHUNK] for i in range(0, len(icc), _ICC_CHUNK)]
        if len(parts) <= 255:
            for n, part in enumerate(parts, 1):
                segments.append(_segment(0xE2, _ICC_HEADER + bytes((n, len(parts))) + part))
    if not segments:
        return data
    first = _jpeg_segments(data)[:1]
    at = first[0][2] if first and first[0][0] == 0xE0 else 2  # after APP0 (JFIF)
    return data[:at] + b"".join(segments) + data[at:]


def _segment(marker: int, payload: bytes) -> bytes:
    return bytes((0xFF, marker)) + struct.pack(">H", len(payload) + 2) + payload


def insert_png(
    data: bytes, *, exif: bytes | None = None, xmp: bytes | None = None, icc: bytes | None = None
) -> bytes:
    """``data`` (a PNG) with ``eXIf``, ``iCCP`` and an XMP ``iTXt`` chunk right after its
    header chunk; its image data unchanged."""
    chunks = b""
    if icc:
        chunks += _chunk(b"iCCP", b"icc\x00\x00" + zlib.compress(icc))
    if exif:
        chunks += _chunk(b"eXIf", exif)
    if xmp:
        chunks += _chunk(b"iTXt", _XMP_KEYWORD + b"\x00\x00\x00\x00\x00" + xmp)
    if not chunks:
        return data
    header = _png_chunks(data)[0]
    at = header[2] + 4  # after IHDR's checksum
    return data[:at] + chunks + data[at:]


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def scan_data(jpeg: bytes) -> bytes:
    """A JPEG's bytes from its first start-of-scan on: its pixels as compressed."""
    for marker, start, _end in _jpeg_segments(jpeg):
        if marker == 0xDA:
            return jpeg[start - 4 :]
    return b""


# -- re-encoding -----------------------------------------------------------------------


def _reencoded(result: bytes, meta: Metadata, how: Finish, target: str, turn: int) -> Finished:
    """The result decoded and encoded as ``target``, turned upright (orientation 1)."""
    from PIL import Image

    with Image.open(io.BytesIO(result)) as img:
        img.load()
        info, source_format = dict(img.info), extension_of(str(img.format))
        image = _mode_for(_upright(img, turn), target)
    icc = meta.icc or _as_bytes(info.get("icc_profile"))
    icc = icc if _icc_fits(icc, image.mode) else None
    exif = _exif_for(meta, image.size, 1, how) if meta.exif else None
    xmp = meta.xmp or _as_bytes(info.get("xmp"))
    data = encode(image, target, how.quality, exif=exif, xmp=xmp, icc=icc)
    notes = [*_carried(exif, xmp, icc)]
    if target != source_format:
        notes.append(f"converted from {source_format} to {target}")
    if turn != 1:
        notes.append("turned upright")
    return Finished(data, target, image.width, image.height, tuple(notes))


def _as_bytes(value: object) -> bytes | None:
    if isinstance(value, bytes) and value:
        return value
    if isinstance(value, str) and value:
        return value.encode("utf-8")
    return None


_TRANSPOSE = {
    2: "FLIP_LEFT_RIGHT",
    3: "ROTATE_180",
    4: "FLIP_TOP_BOTTOM",
    5: "TRANSPOSE",
    6: "ROTATE_270",
    7: "TRANSVERSE",
    8: "ROTATE_90",
}
"""EXIF orientation → the turn that makes the pixels upright (as ``ImageOps.exif_transpose``)."""


def _upright(img: Image.Image, orientation: int) -> Image.Image:
    from PIL import Image

    method = _TRANSPOSE.get(orientation)
    if method is None:
        return img.copy()
    return img.transpose(Image.Transpose[method])


def _mode_for(image: Image.Image, target: str) -> Image.Image:
    """``image`` in a mode ``target`` can hold: 16 bits by their high byte, CMYK as RGB for
    PNG and WebP, transparency laid on white for JPEG."""
    from PIL import Image

    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        image = image.convert("I").point(lambda value: value * (1 / 256)).convert("L")
    if target == "jpg":
        if image.mode in ("RGBA", "LA", "PA", "P"):
            rgba = image.convert("RGBA")
            flat = Image.new("RGB", rgba.size, (255, 255, 255))
            flat.paste(rgba, mask=rgba.getchannel("A"))
            return flat
        return image if image.mode in ("RGB", "L", "CMYK") else image.convert("RGB")
    if image.mode in ("RGB", "RGBA", "L", "LA") or (target == "png" and image.mode == "P"):
        return image
    return image.convert("RGBA" if "A" in image.getbands() else "RGB")


def encode(
    image: Image.Image,
    ext: str,
    quality: int,
    *,
    exif: bytes | None = None,
    xmp: bytes | None = None,
    icc: bytes | None = None,
) -> bytes:
    """``image`` encoded as ``ext`` with its metadata."""
    from PIL import PngImagePlugin

    options: dict[str, object] = {}
    if exif:
        options["exif"] = _EXIF_HEADER + exif
    if icc:
        options["icc_profile"] = icc
    if ext == "png":
        if xmp:
            text = PngImagePlugin.PngInfo()
            text.add_itxt(_XMP_KEYWORD.decode(), xmp.decode("utf-8", "replace"))
            options["pnginfo"] = text
    else:
        options["quality"] = quality
        if xmp:
            options["xmp"] = xmp
    buffer = io.BytesIO()
    image.save(buffer, _PILLOW_FORMATS[ext], **options)
    return buffer.getvalue()


def convert(data: bytes, target: str, how: Finish) -> Finished:
    """A finished result converted to ``target``, its own metadata kept (a re-run with
    another ``--format``: nothing is called again)."""
    meta = read_metadata(data[:HEAD_BYTES])
    turn = meta.orientation
    return _reencoded(data, meta, how, target, turn)
