"""Where each result goes: the source's own name, portable, inside the output directory
(docs/results.md).

- By default (:func:`output_relpath`): the source's name, for a URL (its last path
  segment, else its host), a file given directly and a file found in a folder (the
  folder's layout mirrored) alike; its extension kept when it names the result's format
  (``IMG_0042.JPG`` stays), else the result's (``x.webp`` whose result is PNG: ``x.png``).
  Two inputs that land on one name are told apart by the journal, which reserves every
  name for one input and gives the second a short suffix
  (:meth:`zuotang_cli.store.journal.Names.claim`).
- ``--name TEMPLATE`` (:class:`Template`): ``{stem}``, ``{ext}``, ``{type}``, ``{scale}``,
  ``{factor}``, ``{hash}``, ``{host}`` and ``{path}``, every value made a safe path
  component, the template itself checked never to leave the output directory.
- Output directories made before this naming keep theirs (:func:`legacy_relpath`:
  ``<stem>-<hash8>.<ext>`` for URLs and files given directly, the folder's names kept
  with ``.<ext>`` appended), as their journal says.
"""

from __future__ import annotations

import hashlib
import os
import re
import string
import unicodedata
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

from zuotang_cli.i18n import gettext as _
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


@dataclass(frozen=True)
class Fields:
    """What a template may say besides the source's name: the run's ``--type`` and
    ``--scale`` (as asked), the factor measured from the result."""

    type: str = "clean"
    scale: str = "auto"
    factor: str = ""


PLACEHOLDERS = ("stem", "ext", "type", "scale", "factor", "hash", "host", "path")


class TemplateError(ValueError):
    """A ``--name`` template that cannot name results safely (the message says why)."""


@dataclass(frozen=True)
class Template:
    """A ``--name`` template, checked when made (:class:`TemplateError`): known
    placeholders only, a relative path, no ``..``, never an empty name."""

    text: str

    def __post_init__(self) -> None:
        check_template(self.text)

    def render(self, item: InputItem, ext: str, fields: Fields) -> PurePosixPath:
        """The result's path: each placeholder a safe value, each component made safe;
        ``.{ext}`` added when the name does not end in the result's format."""
        ext = _check_extension(ext)
        stem, host, path = _source_parts(item)
        values = {
            "stem": _clean(stem) or FALLBACK_NAME,
            "ext": ext,
            "type": fields.type,
            "scale": fields.scale,
            "factor": fields.factor or fields.scale,
            "hash": hash8(item.key),
            "host": _clean(host),
            "path": "/".join(path),
        }
        text = self.text.format_map(values)
        parts = [part for part in text.split("/") if part]
        *folders, name = parts or [FALLBACK_NAME]
        if not _same_format(_split_suffix(name)[1], ext):
            name = f"{name}.{ext}"
        return PurePosixPath(*(sanitize_component(part) for part in [*folders, name]))


@dataclass(frozen=True)
class Naming:
    """How one run names its results: a ``--name`` template, else the source's name, or
    in an output directory made before (``legacy``) the names that directory has."""

    template: Template | None = None
    legacy: bool = False

    def relpath(self, item: InputItem, ext: str, fields: Fields | None = None) -> PurePosixPath:
        if self.template is None and self.legacy:
            return legacy_relpath(item, ext)
        return output_relpath(item, ext, fields, self.template)


def check_template(text: str) -> None:
    """Raise :class:`TemplateError` when ``text`` cannot be a ``--name`` template."""
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise TemplateError(_("--name {text!r}: {exc}").format(text=text, exc=exc)) from None
    for _literal, field, spec, conversion in parsed:
        if field is not None and (field not in PLACEHOLDERS or spec or conversion):
            known = ", ".join("{" + name + "}" for name in PLACEHOLDERS)
            raise TemplateError(
                _("--name {text!r}: unknown placeholder {{{field}}} (use {known})").format(
                    text=text, field=field, known=known
                )
            )
    probe = text.format_map(dict.fromkeys(PLACEHOLDERS, "x")).replace("\\", "/")
    if any(part in ("..", ".") for part in probe.split("/")):
        raise TemplateError(
            _("--name {text!r}: '.' and '..' would leave the output directory").format(text=text)
        )
    if text.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", text):
        raise TemplateError(
            _("--name {text!r}: the name must be relative to the output directory").format(
                text=text
            )
        )
    if not any(field for _, field, _, _ in parsed) or "\x00" in text:
        raise TemplateError(
            _("--name {text!r}: use at least one placeholder, e.g. {{stem}}").format(text=text)
        )


def output_relpath(
    item: InputItem, ext: str, fields: Fields | None = None, template: Template | None = None
) -> PurePosixPath:
    """Where the result of ``item`` would go, relative to the output directory (the
    journal may add a suffix: see the module); ``ext`` is the extension of the result's
    real format, without the dot."""
    if template is not None:
        return template.render(item, ext, fields or Fields())
    ext = _check_extension(ext)
    name = source_name(item)
    stem, suffix = _split_suffix(name) if name != _host_of(item) else (name, "")
    tail = "." + (suffix if _same_format(suffix, ext) else ext)
    if not _clean(stem):
        stem = name if _clean(name) else ""
    name = _compose(_clean(stem), tail)
    if item.relpath is None:
        return PurePosixPath(name)
    folders = item.relpath.parts[:-1]
    return PurePosixPath(*(_kept_or_hashed(folder, "") for folder in folders), name)


def source_name(item: InputItem) -> str:
    """The source's own file name (a URL's last path segment, decoded; else its host)."""
    if item.relpath is not None:
        return item.relpath.name
    if item.url is not None:
        parts = urlsplit(item.url)
        segments = [segment for segment in parts.path.split("/") if segment]
        return unquote(segments[-1], errors="replace") if segments else parts.hostname or ""
    return (item.path or PurePosixPath(item.source)).name


def _host_of(item: InputItem) -> str | None:
    """A URL's host when its path names no file (the URL is then named after it)."""
    if item.url is None or item.relpath is not None:
        return None
    parts = urlsplit(item.url)
    return None if any(parts.path.split("/")) else parts.hostname or ""


def _source_parts(item: InputItem) -> tuple[str, str, list[str]]:
    """The source's stem, host (URLs) and folders (a URL's path, a folder's layout), each
    folder a safe component, for a template."""
    name = source_name(item)
    stem = name if name == _host_of(item) else _split_suffix(name)[0]
    if item.relpath is not None:
        return stem, "", [_kept_or_hashed(part, "") for part in item.relpath.parts[:-1]]
    if item.url is not None:
        parts = urlsplit(item.url)
        segments = [unquote(s, errors="replace") for s in parts.path.split("/") if s][:-1]
        return stem, parts.hostname or "", [_kept_or_hashed(s, "") for s in segments]
    return stem, "", []


def legacy_relpath(item: InputItem, ext: str) -> PurePosixPath:
    """Where earlier versions put the result of ``item`` (the names of output directories
    they made, kept there): ``<stem>-<hash8>.<ext>`` for a URL or a file given directly
    (the hash of the normalized URL or the absolute path), a folder's names kept.

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


def occupied(root: Path, rel: PurePosixPath) -> bool:
    """Something (a file, a folder, a link) is already at ``rel`` under ``root``."""
    return os.path.lexists(os.path.join(root, *rel.parts))  # noqa: PTH118


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
