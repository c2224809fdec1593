"""A before / after gallery of an output directory: one self-contained ``index.html``.

For every done or skipped input, the input image and the result side by side under a
slider, with both sizes and the effective factor; the failures in a table with their
reasons; a summary by outcome at the top.  The page is ``templates/gallery.html.j2``
(package data) rendered by Jinja2 with autoescape on; its CSS and JS are inlined from
``gallery.css`` and ``gallery.js``, so nothing is external but the images.  Every value
from the report is escaped (inputs are hostile), and only http(s) URLs or relative paths
ever become a ``src`` or ``href``.  This module decides what the page shows; the
template says how.

No Typer here: :mod:`zuotang_cli.cli.commands.gallery` parses and prints.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import markupsafe
from PIL import Image

from zuotang_cli import i18n
from zuotang_cli.atomic import write_atomic
from zuotang_cli.errors import UsageError
from zuotang_cli.i18n import gettext as _
from zuotang_cli.models import Outcome, Record
from zuotang_cli.outputs.report import read_report
from zuotang_cli.sanitize import visible
from zuotang_cli.store.layout import Layout

TEMPLATE = "gallery.html.j2"
OK_OUTCOMES = (Outcome.DONE.value, Outcome.SKIPPED.value)
EXTRA_COLUMNS = ("input_width", "input_height", "input_path")
"""Optional columns used when present: the input's size, and its absolute path (a local
input is otherwise found from its ``input`` text, relative to the current directory)."""

Size = tuple[int, int]


def gallery_from_report(out_dir: Path, report: Path | None = None) -> Path:
    """Write ``out_dir/index.html`` from ``report`` (default ``out_dir/report.csv``).

    Raises :class:`UsageError` when the report is missing, unreadable or has no rows.
    """
    path = report if report is not None else Layout(out_dir).report
    rows = _read_rows(path)
    if not rows:
        raise UsageError(_("report {path} has no rows: nothing to show").format(path=path))
    return write_gallery(out_dir, rows, report=path)


def _read_rows(path: Path) -> list[dict[str, Any]]:
    try:
        return read_report(path)
    except FileNotFoundError:
        raise UsageError(
            _("no report at {path} (run zuotang enhance first, or give --report)").format(path=path)
        ) from None
    except OSError as exc:
        raise UsageError(
            _("cannot read report {path}: {reason}").format(path=path, reason=exc.strerror or exc)
        ) from None
    except (ValueError, KeyError):
        raise UsageError(_("report {path} is not a readable report").format(path=path)) from None


def write_gallery(
    out_dir: Path, records: Iterable[Record | Mapping[str, Any]], report: Path | None = None
) -> Path:
    """Write ``out_dir/index.html`` for ``records`` (Records or report rows); its path.

    Relative paths in the records are taken from the current directory (as the run
    wrote them), or else from ``out_dir``.
    """
    out_dir = out_dir.resolve()
    items = [to_item(_as_row(record), out_dir) for record in records]
    page = render_page(items, title=out_dir.name or str(out_dir), report=report)
    target = Layout(out_dir).gallery
    _write_page(target, page)
    return target


def _as_row(record: Record | Mapping[str, Any]) -> Mapping[str, Any]:
    if not isinstance(record, Record):
        return record
    row = record.as_dict()
    row.update({key: record.extra[key] for key in EXTRA_COLUMNS if key in record.extra})
    return row


def _write_page(target: Path, page: str) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(target, page)
    except OSError as exc:
        raise UsageError(
            _("cannot write {target}: {reason}").format(target=target, reason=exc.strerror or exc)
        ) from exc


# ---------------------------------------------------------------------------------------
# From a report row to what the page shows


@dataclass(frozen=True)
class Item:
    """One input as the page shows it; ``*_src`` are URLs (absolute http(s) or relative)."""

    input: str
    outcome: str
    before_src: str | None = None
    after_src: str | None = None
    before_size: Size | None = None
    after_size: Size | None = None
    error_class: str = ""
    state: str = ""
    state_meaning: str = ""
    http_status: str = ""
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome in OK_OUTCOMES

    @property
    def name(self) -> str:
        """What the card is titled: the input's file name (see :func:`_display_name`)."""
        return _display_name(self.input)

    @property
    def state_text(self) -> str:
        """The state and its meaning, as the failures table shows them."""
        return " ".join(part for part in (self.state, self.state_meaning) if part)

    @property
    def factor(self) -> float | None:
        """Output width / input width, when both are known."""
        if self.before_size is None or self.after_size is None:
            return None
        return self.after_size[0] / self.before_size[0]


def to_item(row: Mapping[str, Any], out_dir: Path) -> Item:
    """What the page shows of one report row (CSV strings or typed JSON values)."""
    source = _text(row.get("input"))
    outcome = _text(row.get("outcome")) or "unknown"
    item = Item(
        input=source,
        outcome=outcome,
        error_class=_text(row.get("error_class")),
        state=_text(row.get("state")),
        state_meaning=_text(row.get("state_meaning")),
        http_status=_text(row.get("http_status")),
        message=_text(row.get("message")),
    )
    if outcome not in OK_OUTCOMES:
        return item
    before_src, before_size = _before(row, source, out_dir)
    after_src, after_size = _after(row, out_dir)
    return dataclasses.replace(
        item,
        before_src=before_src,
        before_size=before_size,
        after_src=after_src,
        after_size=after_size,
    )


def _before(row: Mapping[str, Any], source: str, out_dir: Path) -> tuple[str | None, Size | None]:
    given = _size(row.get("input_width"), row.get("input_height"))
    if is_web_url(source):
        return source, given
    path = _local(_text(row.get("input_path")) or source)
    if path is None or not path.is_file():
        return None, given
    return relative_url(path, out_dir), given or measure(path)


def _after(row: Mapping[str, Any], out_dir: Path) -> tuple[str | None, Size | None]:
    given = _size(row.get("width"), row.get("height"))
    output = _text(row.get("output"))
    if not output:
        return None, given
    path = Path(output)
    if not path.is_absolute():
        from_cwd = Path.cwd() / path
        path = from_cwd if from_cwd.exists() else out_dir / path
    if not path.is_file():
        return None, given
    return relative_url(path, out_dir), given or measure(path)


def _local(source: str) -> Path | None:
    if not source or "\x00" in source:
        return None
    try:
        return Path(source).expanduser().resolve()
    except (OSError, RuntimeError, ValueError):
        return None


def _text(value: object) -> str:
    return "" if value is None else str(value)


def _size(width: object, height: object) -> Size | None:
    w, h = _positive(width), _positive(height)
    return None if w is None or h is None else (w, h)


def _positive(value: object) -> int | None:
    try:
        number = int(str(value))
    except ValueError:
        return None
    return number if number > 0 else None


def is_web_url(text: str) -> bool:
    """True for an absolute http(s) URL with a host: the only URLs used as they are."""
    try:
        parts = urllib.parse.urlsplit(text)
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.netloc)


def relative_url(target: Path, out_dir: Path) -> str:
    """A URL for ``target`` relative to ``out_dir`` (percent-encoded), else a file: URI."""
    target = target.resolve()
    try:
        relative = os.path.relpath(target, out_dir)
    except ValueError:  # another drive (Windows)
        return target.as_uri()
    return urllib.parse.quote(Path(relative).as_posix(), safe="/")


def measure(path: Path) -> Size | None:
    """Width and height from the image's header (Pillow reads no pixels), or None."""
    try:
        with Image.open(path) as image:
            width, height = image.size
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    return (width, height) if width > 0 and height > 0 else None


# ---------------------------------------------------------------------------------------
# The page: templates/gallery.html.j2 (with gallery.css and gallery.js inlined)


def render_page(items: list[Item], title: str, report: Path | None = None) -> str:
    """The whole HTML document."""
    template = _environment().get_template(TEMPLATE)
    return template.render(
        lang=i18n.active().replace("_", "-"),
        title=title,
        total=len(items),
        report=None if report is None else visible(str(report)),
        stamp=time.strftime("%Y-%m-%d %H:%M"),
        chips=summary_chips(items),
        cards=[item for item in items if item.ok],
        failures=[item for item in items if not item.ok],
    )


@functools.cache
def _environment() -> jinja2.Environment:
    """Autoescape on, and every value shown :func:`visible` (see the template's head)."""
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("zuotang_cli.outputs", "templates"),
        autoescape=True,
        finalize=_shown,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        extensions=["jinja2.ext.i18n"],
    )
    environment.install_gettext_callables(  # type: ignore[attr-defined]
        i18n.gettext, i18n.ngettext, newstyle=True
    )
    environment.filters.update(
        url=_url, size=_format_size, factor=_format_factor, outcome_class=_css_class
    )
    return environment


def _shown(value: object) -> object:
    """Text from the report (hostile) with control characters shown escaped, as on
    stderr; autoescape then HTML-escapes it.  Markup (a ``|url``, a macro) is left as is."""
    if isinstance(value, str) and not isinstance(value, markupsafe.Markup):
        return visible(value)
    return value


def _url(src: str) -> markupsafe.Markup:
    """A ``src`` / ``href`` (an http(s) URL or a relative path, see :func:`to_item`):
    HTML-escaped, its characters otherwise untouched."""
    return markupsafe.escape(src)


@dataclass(frozen=True)
class Chip:
    """One outcome in the summary at the top of the page."""

    outcome: str
    count: int


def summary_chips(items: list[Item]) -> list[Chip]:
    """One chip per outcome present (done always), in the report's order."""
    counts = Counter(item.outcome for item in items)
    order = [outcome.value for outcome in Outcome]
    names = order + sorted(set(counts) - set(order))
    return [
        Chip(name, counts[name]) for name in names if counts[name] or name == Outcome.DONE.value
    ]


def _css_class(outcome: str) -> str:
    return outcome if outcome in {o.value for o in Outcome} else "other"


def _format_size(size: Size | None) -> str:
    return "?" if size is None else f"{size[0]} × {size[1]}"


def _format_factor(factor: float | None) -> str:
    if factor is None:
        return "?"
    shown = str(round(factor)) if abs(factor - round(factor)) < 0.005 else f"{factor:.2f}"
    return f"×{shown}"


def _display_name(source: str) -> str:
    """The last path segment of a URL or path (without query), or the text itself."""
    text = source
    if is_web_url(source):
        text = urllib.parse.unquote(urllib.parse.urlsplit(source).path)
    tail = text.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    return tail or source
