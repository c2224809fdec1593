"""A before / after gallery of an output directory: one self-contained ``index.html``.

For every done or skipped input, the input image and the result side by side under a
slider, with both sizes and the effective factor; the failures in a table with their
reasons; a summary by outcome at the top.  Inline CSS and JS, nothing external but the
images.  Every value from the report is escaped (inputs are hostile), and only http(s)
URLs or relative paths ever become a ``src`` or ``href``.

No Typer here: :mod:`zuotang_cli.commands.gallery` parses and prints.
"""

from __future__ import annotations

import contextlib
import dataclasses
import html
import os
import secrets
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from zuotang_cli.errors import UsageError
from zuotang_cli.models import Outcome, Record
from zuotang_cli.report import read_report
from zuotang_cli.sanitize import visible

INDEX_NAME = "index.html"
REPORT_NAME = "report.csv"  # the default report of an output directory (run.py)
OK_OUTCOMES = (Outcome.DONE.value, Outcome.SKIPPED.value)
EXTRA_COLUMNS = ("input_width", "input_height", "input_path")
"""Optional columns used when present: the input's size, and its absolute path (a local
input is otherwise found from its ``input`` text, relative to the current directory)."""

Size = tuple[int, int]


def gallery_from_report(out_dir: Path, report: Path | None = None) -> Path:
    """Write ``out_dir/index.html`` from ``report`` (default ``out_dir/report.csv``).

    Raises :class:`UsageError` when the report is missing, unreadable or has no rows.
    """
    path = report if report is not None else out_dir / REPORT_NAME
    rows = _read_rows(path)
    if not rows:
        raise UsageError(f"report {path} has no rows: nothing to show")
    return write_gallery(out_dir, rows, report=path)


def _read_rows(path: Path) -> list[dict[str, Any]]:
    try:
        return read_report(path)
    except FileNotFoundError:
        raise UsageError(
            f"no report at {path} (run zuotang enhance first, or give --report)"
        ) from None
    except OSError as exc:
        raise UsageError(f"cannot read report {path}: {exc.strerror or exc}") from None
    except (ValueError, KeyError):
        raise UsageError(f"report {path} is not a readable report") from None


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
    target = out_dir / INDEX_NAME
    _write_atomic(target, page)
    return target


def _as_row(record: Record | Mapping[str, Any]) -> Mapping[str, Any]:
    if not isinstance(record, Record):
        return record
    row = record.as_dict()
    row.update({key: record.extra[key] for key in EXTRA_COLUMNS if key in record.extra})
    return row


def _write_atomic(target: Path, text: str) -> None:
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.part")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise UsageError(f"cannot write {target}: {exc.strerror or exc}") from exc


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
# The page


def render_page(items: list[Item], title: str, report: Path | None = None) -> str:
    """The whole HTML document."""
    shown = [item for item in items if item.ok]
    failures = [item for item in items if not item.ok]
    stamp = time.strftime("%Y-%m-%d %H:%M")
    source = f" from {_e(str(report))}" if report is not None else ""
    return _PAGE.format(
        title=_e(title),
        css=_CSS,
        js=_JS,
        subtitle=f"{len(items)} inputs{source}, {stamp}",
        summary=render_summary(items),
        cards="\n".join(render_card(item) for item in shown) or _NO_IMAGES,
        failures=render_failures(failures),
    )


def _e(text: str) -> str:
    """Text from the report (hostile) as HTML text or attribute: control characters
    shown escaped, as on stderr, then HTML-escaped."""
    return html.escape(visible(text), quote=True)


def _url(src: str) -> str:
    """A ``src`` / ``href`` (an http(s) URL or a relative path, see :func:`to_item`)."""
    return html.escape(src, quote=True)


def render_summary(items: list[Item]) -> str:
    """One chip per outcome present (done always), in the report's order."""
    counts = Counter(item.outcome for item in items)
    order = [outcome.value for outcome in Outcome]
    names = order + sorted(set(counts) - set(order))
    chips = [
        f'<li class="chip o-{_css_class(name)}"><b>{counts[name]}</b> {_e(name)}</li>'
        for name in names
        if counts[name] or name == Outcome.DONE.value
    ]
    return '<ul class="summary">' + "".join(chips) + "</ul>"


def _css_class(outcome: str) -> str:
    return outcome if outcome in {o.value for o in Outcome} else "other"


def render_card(item: Item) -> str:
    """A card: the before / after comparison, the input's name, sizes and factor."""
    name = _display_name(item.input)
    return (
        f'<article class="card">{render_compare(item, name)}'
        f'<div class="meta"><p class="name"><span title="{_e(item.input)}">{_e(name)}</span>'
        f'<span class="badge o-{_css_class(item.outcome)}">{_e(item.outcome)}</span></p>'
        f"{render_sizes(item)}</div></article>"
    )


def render_compare(item: Item, name: str) -> str:
    """The picture: a slider over both images, or the one image there is."""
    if item.before_src and item.after_src:
        return (
            '<div class="compare" style="--pos: 50%">'
            f"{_img(item.after_src, 'after', name)}{_img(item.before_src, 'before', name)}"
            '<span class="tag tag-before">before</span><span class="tag tag-after">after</span>'
            '<span class="divider" aria-hidden="true"></span>'
            '<input class="slider" type="range" min="0" max="100" value="50" step="any"'
            f' aria-label="{_e("before / after: " + name)}"></div>'
        )
    only = item.after_src or item.before_src
    if only is None:
        return '<div class="compare missing"><p>image not found</p></div>'
    which = "after" if item.after_src else "before"
    return (
        f'<div class="compare single">{_img(only, which, name)}'
        f'<span class="tag tag-{which}">{which} only</span></div>'
    )


def _img(src: str, which: str, name: str) -> str:
    return (
        f'<img class="{which}" src="{_url(src)}" alt="{_e(f"{which}: {name}")}" '
        'loading="lazy" decoding="async">'
    )


def render_sizes(item: Item) -> str:
    """Before and after sizes (each a link to its image) and the factor."""
    factor = item.factor
    shown = "?" if factor is None else f"×{_format_factor(factor)}"
    return (
        '<dl class="sizes">'
        f"<div><dt>before</dt><dd>{_linked(item.before_src, item.before_size)}</dd></div>"
        f"<div><dt>after</dt><dd>{_linked(item.after_src, item.after_size)}</dd></div>"
        f'<div><dt>factor</dt><dd class="factor">{shown}</dd></div></dl>'
    )


def _linked(src: str | None, size: Size | None) -> str:
    text = _format_size(size)
    if src is None:
        return text
    return f'<a href="{_url(src)}" target="_blank" rel="noopener noreferrer">{text}</a>'


def _format_size(size: Size | None) -> str:
    return "?" if size is None else f"{size[0]} × {size[1]}"


def _format_factor(factor: float) -> str:
    return str(round(factor)) if abs(factor - round(factor)) < 0.005 else f"{factor:.2f}"


def _display_name(source: str) -> str:
    """The last path segment of a URL or path (without query), or the text itself."""
    text = source
    if is_web_url(source):
        text = urllib.parse.unquote(urllib.parse.urlsplit(source).path)
    tail = text.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    return tail or source


_FAILURE_HEAD = (
    "<thead><tr><th>input</th><th>outcome</th><th>error</th><th>state</th>"
    "<th>HTTP</th><th>message</th></tr></thead>"
)


def render_failures(items: list[Item]) -> str:
    """The table of inputs that were not done, with their reasons (or nothing)."""
    if not items:
        return ""
    rows = "".join(_failure_row(item) for item in items)
    return (
        f'<section class="failures"><h2>Not done <small>({len(items)})</small></h2>'
        f'<div class="table-wrap"><table>{_FAILURE_HEAD}<tbody>{rows}</tbody></table></div>'
        "</section>"
    )


def _failure_row(item: Item) -> str:
    state = " ".join(part for part in (item.state, item.state_meaning) if part)
    badge = f'<span class="badge o-{_css_class(item.outcome)}">{_e(item.outcome)}</span>'
    cells = (
        ("input", "input", _e(item.input)),
        ("outcome", "outcome", badge),
        ("error", "error", _e(item.error_class)),
        ("state", "state", _e(state)),
        ("HTTP", "http", _e(item.http_status)),
        ("message", "message", _e(item.message)),
    )
    return (
        "<tr>"
        + "".join(
            f'<td class="{css}" data-label="{label}">{html_text}</td>'
            for label, css, html_text in cells
        )
        + "</tr>"
    )


_NO_IMAGES = '<p class="empty">No image was done in this run.</p>'

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<meta name="referrer" content="no-referrer">
<link rel="icon" href="data:,">
<title>zuotang gallery · {title}</title>
<style>{css}</style>
</head>
<body>
<header>
<h1>zuotang gallery <span>{title}</span></h1>
<p class="sub">{subtitle}</p>
{summary}
</header>
<main>
<section class="grid">
{cards}
</section>
{failures}
</main>
<script>{js}</script>
</body>
</html>
"""

_CSS = """
:root { --bg: #f4f5f7; --fg: #1d2330; --muted: #667085; --card: #fff; --line: #e3e6eb;
  --accent: #2f6fed; --ok: #1a7f4b; --warn: #b25e09; --bad: #c8322c; --radius: 12px;
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
@media (prefers-color-scheme: dark) {
  :root { --bg: #14161b; --fg: #e8eaef; --muted: #9aa3b2; --card: #1d2027; --line: #2c313b;
    --accent: #6f9dff; --ok: #4cc38a; --warn: #f0a35e; --bad: #ff7a72; } }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--fg); line-height: 1.45; }
header, main { max-width: 1400px; margin: 0 auto; padding: 16px clamp(12px, 3vw, 32px); }
header { padding-top: 28px; }
h1 { font-size: clamp(1.3rem, 3.5vw, 1.8rem); margin: 0 0 4px; letter-spacing: -0.01em; }
h1 span { color: var(--muted); font-weight: 500; }
.sub { color: var(--muted); margin: 0 0 14px; font-size: .9rem; overflow-wrap: anywhere; }
.summary { display: flex; flex-wrap: wrap; gap: 8px; list-style: none; margin: 0; padding: 0; }
.chip { background: var(--card); border: 1px solid var(--line); border-radius: 999px;
  padding: 4px 12px; font-size: .92rem; }
.chip b { font-variant-numeric: tabular-nums; }
.o-done { color: var(--ok); } .o-skipped { color: var(--accent); }
.o-failed, .o-other { color: var(--bad); } .o-invalid, .o-not-attempted { color: var(--warn); }
.grid { display: grid; gap: 18px; padding: 0;
  grid-template-columns: repeat(auto-fill, minmax(min(100%, 340px), 1fr)); }
.card { background: var(--card); border: 1px solid var(--line); border-radius: var(--radius);
  overflow: hidden; box-shadow: 0 1px 2px rgba(16, 24, 40, .06); }
.compare { position: relative; width: 100%; aspect-ratio: 4 / 3; overflow: hidden;
  user-select: none; background: #0f1115
  repeating-conic-gradient(#ffffff0d 0% 25%, transparent 0% 50%) 0 0 / 20px 20px; }
.compare img { position: absolute; inset: 0; width: 100%; height: 100%; object-fit: contain;
  display: block; }
.compare .before { clip-path: inset(0 calc(100% - var(--pos)) 0 0); }
.compare .divider { position: absolute; top: 0; bottom: 0; left: var(--pos); width: 2px;
  margin-left: -1px; background: #fff; box-shadow: 0 0 0 1px rgba(0, 0, 0, .25);
  pointer-events: none; }
.compare .divider::after { content: "\\2194"; position: absolute; top: 50%; left: 50%;
  transform: translate(-50%, -50%); width: 34px; height: 34px; border-radius: 50%;
  background: #fff; color: #1d2330; display: grid; place-items: center; font-size: 18px;
  box-shadow: 0 1px 4px rgba(0, 0, 0, .35); }
.compare .slider { position: absolute; inset: 0; width: 100%; height: 100%; margin: 0;
  opacity: 0; cursor: ew-resize; touch-action: pan-y; }
.compare:focus-within { outline: 3px solid var(--accent); outline-offset: -3px; }
.tag { position: absolute; top: 8px; padding: 2px 8px; border-radius: 6px; font-size: .75rem;
  background: rgba(0, 0, 0, .55); color: #fff; pointer-events: none; letter-spacing: .02em; }
.tag-before { left: 8px; } .tag-after { right: 8px; }
.single .tag { left: 8px; right: auto; }
.compare.missing, .compare.broken { display: grid; place-items: center; color: var(--muted); }
.compare img.failed { visibility: hidden; }
.compare.broken::after { content: attr(data-missing) " image not available";
  position: absolute; bottom: 8px;
  left: 50%; transform: translateX(-50%); background: var(--card); padding: 2px 8px;
  border-radius: 6px; font-size: .8rem; }
.meta { padding: 10px 14px 12px; }
.name { margin: 0 0 6px; display: flex; gap: 8px; align-items: center; font-weight: 600; }
.name span[title] { overflow: hidden; text-overflow: ellipsis; white-space: nowrap;
  min-width: 0; }
.badge { margin-left: auto; font-size: .72rem; font-weight: 600; text-transform: uppercase;
  letter-spacing: .04em; border: 1px solid currentColor; border-radius: 999px;
  padding: 0 8px; white-space: nowrap; }
.sizes { display: grid; grid-template-columns: repeat(3, auto); justify-content: start;
  gap: 4px 18px; margin: 0; font-size: .85rem; }
.sizes dt { color: var(--muted); font-size: .72rem; text-transform: uppercase; }
.sizes dd { margin: 0; font-variant-numeric: tabular-nums; }
.sizes a { color: inherit; text-decoration: none; border-bottom: 1px dotted var(--muted); }
.sizes a:hover { color: var(--accent); border-bottom-color: currentColor; }
.factor { font-weight: 700; }
.empty { color: var(--muted); }
.failures h2 { font-size: 1.15rem; margin: 34px 0 10px; }
.failures small { color: var(--muted); font-weight: 500; }
.table-wrap { overflow-x: auto; background: var(--card); border: 1px solid var(--line);
  border-radius: var(--radius); }
table { border-collapse: collapse; width: 100%; font-size: .88rem; }
th, td { text-align: left; padding: 8px 12px; border-bottom: 1px solid var(--line);
  vertical-align: top; }
th { color: var(--muted); font-weight: 600; font-size: .75rem; text-transform: uppercase; }
tr:last-child td { border-bottom: 0; }
td.input { overflow-wrap: anywhere; min-width: 12em; max-width: 36em;
  font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: .8rem; }
td.message { min-width: 14em; }
td.error, td.outcome, td.http { white-space: nowrap; }
@media (max-width: 600px) {
  thead { display: none; }
  table, tbody, tr, td { display: block; width: 100%; }
  tr { border-bottom: 1px solid var(--line); padding: 6px 0; }
  td { border: 0; padding: 2px 12px; max-width: none; white-space: normal; }
  td:empty { display: none; }
  td:not(.input)::before { content: attr(data-label) " "; color: var(--muted);
    font-size: .72rem; text-transform: uppercase; display: inline-block; min-width: 5.5em; }
}
"""

_JS = """
(function () {
  document.querySelectorAll(".compare").forEach(function (box) {
    var slider = box.querySelector(".slider");
    if (slider) {
      var update = function () { box.style.setProperty("--pos", slider.value + "%"); };
      slider.addEventListener("input", update);
      update();
    }
    box.querySelectorAll("img").forEach(function (img) {
      var broken = function () {
        img.classList.add("failed");
        box.classList.add("broken");
        box.setAttribute("data-missing", img.classList.contains("before") ? "before" : "after");
      };
      img.addEventListener("error", broken);
    });
  });
})();
"""
