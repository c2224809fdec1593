"""Where each result goes: deterministic, collision-free, portable names inside the output dir.

- A URL, or a file given directly: ``<stem>-<hash8>.<ext>``, the hash taken over the
  normalized URL or the absolute path, so different inputs never share a name.
- A file found in a folder: the folder's layout mirrored, the source name kept (its
  extension too when it already names the result's format, else ``.<ext>`` appended).
  A name that had to be changed to be safe gets the hash of the original name, so two
  different names never end up the same.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

from zuotang_cli.inputs.reader import IMAGE_SUFFIXES
from zuotang_cli.models import InputItem

MAX_NAME_CHARS = 100
MAX_NAME_BYTES = 200
"""Caps for one path component (UTF-8 bytes too: most filesystems stop at 255 bytes)."""
FALLBACK_NAME = "image"

_FORMAT_EXTENSIONS = {
    "JPEG": "jpg",
    "MPO": "jpg",
    "PNG": "png",
    "WEBP": "webp",
    "BMP": "bmp",
    "TIFF": "tiff",
}
_SAME_FORMAT = {"jpeg": "jpg", "jpe": "jpg", "tif": "tiff"}
_EXTENSION = re.compile(r"[a-z0-9]{1,10}")
_FORBIDDEN = frozenset('<>:"/\\|?*')
_BAD_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL"}
    | {f"COM{n}" for n in range(1, 10)}
    | {f"LPT{n}" for n in range(1, 10)}
)


class UnsafePathError(ValueError):
    """A relative path that would land outside the output directory."""


def extension_for_format(pillow_format: str) -> str:
    """The file extension (no dot) for a Pillow format name: JPEG → jpg, TIFF → tiff, ..."""
    return _FORMAT_EXTENSIONS.get(pillow_format.upper(), pillow_format.lower())


def output_relpath(item: InputItem, ext: str) -> PurePosixPath:
    """Where the result of ``item`` goes, relative to the output directory.

    ``ext`` is the extension of the result's real format, without the dot.
    """
    ext = _check_extension(ext)
    if item.relpath is not None:
        return _mirrored(item.relpath, ext)
    if item.url is not None:
        stem = _url_stem(item.url)
    else:
        stem = _split_suffix((item.path or PurePosixPath(item.source)).name)[0]
    return PurePosixPath(_compose(_clean(stem), f"-{hash8(item.key)}.{ext}"))


def hash8(text: str) -> str:
    """First 8 hex digits of the SHA-256 of ``text``."""
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:8]


def sanitize_component(name: str) -> str:
    """``name`` made safe as one portable path component (a short extension survives cuts).

    Not collision-free by itself (``a?b`` and ``a*b`` both give ``a_b``): the names built
    by :func:`output_relpath` add a hash wherever a name had to change.
    """
    stem, suffix = _split_suffix(name)
    if not _clean(stem) or not _EXTENSION.fullmatch(suffix.lower()):
        stem, suffix = name, ""
    return _compose(_clean(stem), "." + suffix if suffix else "")


def safe_join(root: Path, rel: PurePosixPath) -> Path:
    """``root / rel``, or :class:`UnsafePathError` if that would not be inside ``root``.

    Checked on the names and again after resolving symlinks already on disk.
    """
    if rel.is_absolute() or not rel.parts or any(_unsafe_part(part) for part in rel.parts):
        raise UnsafePathError(f"unsafe output path {str(rel)!r}")
    target = root.joinpath(*rel.parts)
    if not target.resolve().is_relative_to(root.resolve()):
        raise UnsafePathError(f"output path {str(rel)!r} leaves {root}")
    return target


# ---------------------------------------------------------------------------------------


def _check_extension(ext: str) -> str:
    ext = ext.lower().removeprefix(".")
    if not _EXTENSION.fullmatch(ext):
        raise ValueError(f"bad extension {ext!r}")
    return ext


def _url_stem(url: str) -> str:
    parts = urlsplit(url)
    segments = [segment for segment in parts.path.split("/") if segment]
    if not segments:
        return parts.hostname or ""
    return _split_suffix(unquote(segments[-1], errors="replace"))[0]


def _split_suffix(name: str) -> tuple[str, str]:
    """("photo", "jpg") for "photo.jpg"; ("photo", "") for "photo" or ".photo"."""
    stem, dot, suffix = name.rpartition(".")
    return (stem, suffix) if dot and stem else (name, "")


def _mirrored(relpath: PurePosixPath, ext: str) -> PurePosixPath:
    *folders, name = relpath.parts or ("",)
    return PurePosixPath(
        *(_kept_or_hashed(folder, "") for folder in folders), _file_name(name, ext)
    )


def _file_name(name: str, ext: str) -> str:
    """``name`` if it already ends in the result's format, else ``name.ext``.

    Kept names never have a stem ending in an image extension and appended ones always
    do, so the two never meet: ``a.bmp.png`` (kept) is hashed, not to clash with
    ``a.bmp`` + ``.png``; ``x`` (no image extension) becomes ``x-<hash>.png``, not ``x.png``.
    """
    stem, suffix = _split_suffix(name)
    if not _same_format(suffix, ext):
        if _is_image_suffix(suffix):
            return _kept_or_hashed(name, "." + ext)
        return _compose(_clean(name), f"-{hash8(name)}.{ext}")
    if _is_image_suffix(_split_suffix(stem)[1]):
        return _compose(_clean(stem), f"-{hash8(name)}.{suffix}")
    return _kept_or_hashed(stem, "." + suffix, original=name)


def _is_image_suffix(suffix: str) -> bool:
    return "." + suffix.lower() in IMAGE_SUFFIXES


def _same_format(suffix: str, ext: str) -> bool:
    suffix = suffix.lower()
    return _SAME_FORMAT.get(suffix, suffix) == _SAME_FORMAT.get(ext, ext)


def _kept_or_hashed(stem: str, tail: str, original: str | None = None) -> str:
    """``stem + tail`` if already safe, else the cleaned stem with the original's hash."""
    name = stem + tail
    if stem and _clean(stem) == stem and _fits(name) and not _reserved(name):
        return name
    return _compose(_clean(stem), f"-{hash8(original or stem)}{tail}")


def _compose(stem: str, tail: str) -> str:
    """``stem + tail`` with the stem cut to fit the caps; never empty, never reserved."""
    stem = stem[:MAX_NAME_CHARS]
    while stem and not _fits("_" + stem + tail):
        stem = stem[:-1]
    stem = stem.rstrip(". ") or FALLBACK_NAME
    name = stem + tail
    return "_" + name if _reserved(name) else name


def _clean(text: str) -> str:
    """Unsafe characters replaced by ``_`` (a run by one); no leading or trailing dot/space."""
    out: list[str] = []
    for char in text:
        if not _bad_char(char):
            out.append(char)
        elif not out or out[-1] != "_":
            out.append("_")
    return "".join(out).strip(". ")


def _bad_char(char: str) -> bool:
    if char in _FORBIDDEN:
        return True
    category = unicodedata.category(char)
    return category in _BAD_CATEGORIES or (category == "Zs" and char != " ")


def _fits(name: str) -> bool:
    return len(name) <= MAX_NAME_CHARS and len(name.encode("utf-8", "surrogateescape")) <= (
        MAX_NAME_BYTES
    )


def _reserved(name: str) -> bool:
    return name.split(".", 1)[0].rstrip(" ").upper() in _RESERVED


def _unsafe_part(part: str) -> bool:
    return part in ("", ".", "..") or any(char in part for char in "/\\\x00") or ":" in part
