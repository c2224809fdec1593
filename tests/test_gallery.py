"""``zuotang gallery``: the page's content, escaping and paths (units), the command, and the
page in a real headless Chromium (Debian's ``chromium`` driven by Playwright)."""

from __future__ import annotations

import csv
import functools
import html
import http.server
import importlib.resources
import json
import os
import re
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw

from tests.helpers import cli
from zuotang_cli.errors import UsageError
from zuotang_cli.models import REPORT_FIELDS, Outcome, Record
from zuotang_cli.outputs import gallery
from zuotang_cli.outputs.report import open_report
from zuotang_cli.status import ExitStatus

REQUIRE_BROWSER = "ZUOTANG_REQUIRE_BROWSER"
"""Set to 1 (as .ci/run does) to make a missing browser a failure instead of a skip."""


def find_chromium() -> Path | None:
    """Debian's chromium, or whichever chromium is on PATH; looked up when the test runs."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return Path(found)
    return None


CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PWNED = "window.__pwned=1"
HOSTILE_URL = f"https://example.invalid/<script>{PWNED}</script>.jpg"
HOSTILE_MESSAGE = f'"><img src=x onerror="{PWNED}">'
EXTRA = ("input_width", "input_height")


def save_image(path: Path, size: tuple[int, int], color: tuple[int, int, int]) -> Path:
    """A real image: a tinted gradient with rings and fine stripes (detail that shows
    the difference between a small input and its upscaled result)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    width, height = size
    gradient = Image.linear_gradient("L").resize(size)
    image = Image.composite(Image.new("RGB", size, color), Image.new("RGB", size, (16, 20, 28)),
                            gradient)  # fmt: skip
    draw = ImageDraw.Draw(image)
    cx, cy, step = width // 2, height // 2, max(2, min(size) // 24)
    for radius in range(step, min(size) // 2, step * 2):
        draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), outline=(245, 245, 240))
    for x in range(0, width // 3, max(2, width // 80)):
        draw.line((x, height - height // 4, x, height), fill=(250, 250, 250))
    image.save(path)
    return path


@dataclass
class Site:
    """A folder like a real run leaves it: inputs in ``in/``, the run's ``out/`` with
    results and a report, a "remote" image host in ``remote/`` (served over loopback)."""

    root: Path
    base_url: str

    @property
    def out(self) -> Path:
        return self.root / "out"


def build_site(root: Path, base_url: str) -> Site:
    """Inputs, results and ``out/report.csv`` (with input size columns) under ``root``.

    Relative inputs are relative to ``root``: run the gallery from there.
    """
    site = Site(root, base_url)
    save_image(root / "in" / "harbour.png", (160, 120), (40, 140, 220))
    save_image(root / "in" / "sub dir" / "face #1.png", (100, 100), (230, 120, 60))
    save_image(root / "remote" / "street.png", (200, 100), (90, 200, 120))
    a = save_image(site.out / "harbour-1a2b3c4d.png", (640, 480), (40, 140, 220))
    b = save_image(site.out / "sub dir" / "face #1.png", (400, 400), (230, 120, 60))
    c = save_image(site.out / "street-5e6f7a8b.png", (400, 200), (90, 200, 120))
    remote = f'{base_url}/remote/street.png?x="><script>{PWNED}</script>'
    rows: list[dict[str, Any]] = [
        _row("in/harbour.png", "done", output=a, width=640, height=480),
        _row("in/sub dir/face #1.png", "skipped", output=b),  # size measured by Pillow
        _row(remote, "done", output=c, width=400, height=200, input_width=200, input_height=100),
        _row(
            HOSTILE_URL,
            "failed",
            http_status=200,
            status=200,
            state=-7,
            state_meaning="invalid image (format or resolution)",
            message=HOSTILE_MESSAGE,
            error_class="state-7",
        ),
        _row(
            "javascript:" + PWNED, "invalid", message="not an http(s) URL", error_class="bad-input"
        ),
        _row(
            f"{base_url}/remote/late.png",
            "not-attempted",
            message="run halted",
            error_class="not-attempted",
        ),
    ]
    write_csv(site.out / "report.csv", rows)
    return site


def _row(source: str, outcome: str, output: Path | None = None, **fields: Any) -> dict[str, Any]:
    return {"input": source, "outcome": outcome, "output": output, **fields}


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as stream:
        writer = csv.DictWriter(stream, [*REPORT_FIELDS, *EXTRA], lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({key: "" if value is None else value for key, value in row.items()})


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Site:
    monkeypatch.chdir(tmp_path)
    return build_site(tmp_path, "https://img.example.invalid")


def page_of(site: Site) -> str:
    path = gallery.gallery_from_report(site.out)
    assert path == site.out / "index.html"
    return path.read_text(encoding="utf-8")


class Tags(HTMLParser):
    """Every start tag with its attributes, and the text of <script> elements."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts.append(data)

    def all(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.tags if name == tag]


def parse(page: str) -> Tags:
    tags = Tags()
    tags.feed(page)
    return tags


# ---------------------------------------------------------------------------------------
# The page's content


def test_images_side_by_side_with_relative_paths(site: Site) -> None:
    tags = parse(page_of(site))
    sources = [(img["class"], img["src"]) for img in tags.all("img")]
    assert sources == [
        ("after", "harbour-1a2b3c4d.png"),
        ("before", "../in/harbour.png"),
        ("after", "sub%20dir/face%20%231.png"),
        ("before", "../in/sub%20dir/face%20%231.png"),
        ("after", "street-5e6f7a8b.png"),
        ("before", f'{site.base_url}/remote/street.png?x="><script>{PWNED}</script>'),
    ]
    assert all(img["loading"] == "lazy" for img in tags.all("img"))
    assert len(tags.all("article")) == 3
    assert len([i for i in tags.all("input") if i.get("type") == "range"]) == 3


def test_sizes_and_factors(site: Site) -> None:
    page = page_of(site)
    cards = page.split('<article class="card">')[1:]
    assert "160 × 120" in cards[0] and "640 × 480" in cards[0] and "×4<" in cards[0]
    assert "100 × 100" in cards[1] and "400 × 400" in cards[1]  # measured with Pillow
    assert "200 × 100" in cards[2] and "400 × 200" in cards[2] and "×2<" in cards[2]


def test_a_remote_input_without_its_size_shows_a_question_mark(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = save_image(out / "r.png", (300, 200), (1, 2, 3))
    record = Record("https://example.com/r.png", Outcome.DONE, output=str(result), width=300,
                    height=200)  # fmt: skip
    page = gallery.write_gallery(out, [record]).read_text(encoding="utf-8")
    assert (
        'href="https://example.com/r.png" target="_blank" rel="noopener noreferrer">?</a>' in page
    )
    assert '<dd class="factor">?</dd>' in page
    assert "300 × 200" in page


def test_records_carry_the_input_size_in_extra(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = save_image(out / "r.png", (300, 200), (1, 2, 3))
    record = Record("https://example.com/r.png", Outcome.DONE, output=str(result), width=300,
                    height=200, extra={"input_width": 200, "input_height": 133})  # fmt: skip
    page = gallery.write_gallery(out, [record]).read_text(encoding="utf-8")
    assert "200 × 133" in page
    assert '<dd class="factor">×1.50</dd>' in page


def test_summary_counts_every_outcome(site: Site) -> None:
    page = page_of(site)
    summary = page.split('<ul class="summary">')[1].split("</ul>")[0]
    chips = [chip.split("</li>")[0] for chip in summary.split("<li")[1:]]
    assert [c.split(">", 1)[1] for c in chips] == [
        "<b>2</b> done",
        "<b>1</b> skipped",
        "<b>1</b> failed",
        "<b>1</b> invalid",
        "<b>1</b> not-attempted",
    ]
    assert "6 inputs from " in page


def test_failures_table_gives_the_reasons(site: Site) -> None:
    page = page_of(site)
    table = page.split('<section class="failures">')[1]
    rows = table.split("<tr>")[2:]
    assert len(rows) == 3
    assert "state-7" in rows[0]
    assert "-7 invalid image (format or resolution)" in rows[0]
    assert 'data-label="HTTP">200</td>' in rows[0]
    assert "bad-input" in rows[1] and "not an http(s) URL" in rows[1]
    assert "not-attempted" in rows[2] and "run halted" in rows[2]
    assert "Not done <small>(3)</small>" in page


def test_no_failures_no_table(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = save_image(out / "r.png", (30, 20), (1, 2, 3))
    page = gallery.write_gallery(out, [Record("https://e.com/r.png", Outcome.DONE,
                                              output=str(result))])  # fmt: skip
    assert '<section class="failures">' not in page.read_text(encoding="utf-8")


def test_hostile_inputs_are_escaped(site: Site) -> None:
    page = page_of(site)
    tags = parse(page)
    assert len(tags.all("script")) == 1  # ours, at the end
    assert PWNED not in "".join(tags.scripts)
    for tag, attrs in tags.tags:
        assert not any(name.startswith("on") for name in attrs), (tag, attrs)
        for name in ("src", "href"):
            value = attrs.get(name) or ""
            assert not value.lower().startswith(("javascript:", "data:text")), value
    assert "<script>window" not in page
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in page
    assert "&#34;&gt;&lt;img src=x onerror=&#34;window.__pwned=1&#34;&gt;" in page  # &#34; is "
    messages = re.findall(r'<td class="message" data-label="message">([^<]*)</td>', page)
    assert html.unescape(messages[0]) == HOSTILE_MESSAGE  # all of it, as text


def test_control_characters_are_shown_escaped_and_a_formula_file_is_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The page shows escapes (as stderr does), not raw controls; a local input named
    like a formula (quoted in report.csv) is still found for its before image."""
    out = tmp_path / "out"
    result = save_image(out / "r.png", (30, 20), (1, 2, 3))
    save_image(tmp_path / "-photo.png", (15, 10), (4, 5, 6))
    monkeypatch.chdir(tmp_path)  # the input as given, relative: '-photo.png
    records = [
        Record("-photo.png", Outcome.DONE, output=str(result)),
        Record("http://x/a.png", Outcome.FAILED, message="bad\x1b[2J\u202eexe.png\r\nFAKE"),
    ]
    report = out / "report.csv"
    with open_report(report) as writer:
        for record in records:
            writer.write(record)
    assert "'-photo.png" in report.read_text(encoding="utf-8")  # a formula, neutralised
    page = gallery.gallery_from_report(out).read_text(encoding="utf-8")
    assert "\x1b" not in page and "\u202e" not in page and "\r" not in page
    assert "bad\\x1b[2J\\u202eexe.png\\r\\nFAKE" in page
    srcs = [img["src"] for img in parse(page).all("img")]
    assert sorted(srcs) == ["../-photo.png", "r.png"]


def test_a_non_web_url_input_is_never_a_link(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = save_image(out / "r.png", (30, 20), (1, 2, 3))
    records = [
        Record(f"javascript:{PWNED}//x.png", Outcome.DONE, output=str(result)),
        Record("data:text/html,<script>alert(1)</script>", Outcome.SKIPPED, output=str(result)),
    ]
    tags = parse(gallery.write_gallery(out, records).read_text(encoding="utf-8"))
    links = [a["href"] for a in tags.all("a")] + [i["src"] for i in tags.all("img")]
    assert links and set(links) == {"r.png"}


def test_a_missing_local_input_shows_the_result_alone(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = save_image(out / "r.png", (30, 20), (1, 2, 3))
    record = Record(str(tmp_path / "gone.png"), Outcome.DONE, output=str(result))
    page = gallery.write_gallery(out, [record]).read_text(encoding="utf-8")
    assert 'class="compare single"' in page
    assert "after only" in page


def test_relative_outputs_are_found_from_the_cwd_or_the_out_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    save_image(out / "a.png", (30, 20), (1, 2, 3))
    records = [
        Record("https://e.com/a.png", Outcome.DONE, output="out/a.png"),  # from the cwd
        Record("https://e.com/b.png", Outcome.DONE, output="a.png"),  # from out/
    ]
    tags = parse(gallery.write_gallery(Path("out"), records).read_text(encoding="utf-8"))
    assert [img["src"] for img in tags.all("img") if img["class"] == "after"] == [
        "a.png",
        "a.png",
    ]


def test_relative_url_encodes_and_climbs(tmp_path: Path) -> None:
    out = tmp_path / "run" / "out"
    assert gallery.relative_url(tmp_path / "a b" / "c#d?.png", out) == "../../a%20b/c%23d%3F.png"
    assert gallery.relative_url(out / "x" / "é.png", out) == "x/%C3%A9.png"


def test_measure_reads_the_header_or_gives_none(tmp_path: Path) -> None:
    assert gallery.measure(save_image(tmp_path / "a.png", (33, 17), (1, 2, 3))) == (33, 17)
    (tmp_path / "b.png").write_bytes(b"not an image")
    assert gallery.measure(tmp_path / "b.png") is None
    assert gallery.measure(tmp_path / "missing.png") is None


def test_other_report_formats(site: Site) -> None:
    from zuotang_cli.outputs.report import read_report

    rows = read_report(site.out / "report.csv")
    jsonl = site.root / "run.jsonl"
    jsonl.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    path = gallery.gallery_from_report(site.out, jsonl)
    assert path.read_text(encoding="utf-8").count('<article class="card">') == 3


def test_a_missing_report_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"no report at .*report\.csv"):
        gallery.gallery_from_report(tmp_path)


def test_an_empty_report_is_a_usage_error(tmp_path: Path) -> None:
    write_csv(tmp_path / "report.csv", [])
    with pytest.raises(UsageError, match="has no rows"):
        gallery.gallery_from_report(tmp_path)
    assert not (tmp_path / "index.html").exists()


def test_write_gallery_with_no_records_still_writes_a_page(tmp_path: Path) -> None:
    page = gallery.write_gallery(tmp_path / "new", []).read_text(encoding="utf-8")
    assert "No image was done in this run." in page
    assert "<b>0</b> done" in page


def test_every_text_on_the_page_is_shown_visible_and_escaped(tmp_path: Path) -> None:
    """Whatever field of a row the hostile text is in (or the folder's name), the page
    holds it HTML-escaped with its control characters shown as escapes."""
    evil = "a\x1b[2J\u202egpj.exe\r\n<b>x</b>"
    shown = "a\\x1b[2J\\u202egpj.exe\\r\\n&lt;b&gt;x&lt;/b&gt;"
    fields = ("input", "outcome", "error_class", "state", "state_meaning", "http_status")
    row = {field: evil for field in fields} | {"message": evil}
    out = tmp_path / "run\x1b]0;owned\x07"
    page = gallery.write_gallery(out, [row]).read_text(encoding="utf-8")
    for raw in ("\x1b", "\x07", "\u202e", "\r", "<b>x"):
        assert raw not in page
    assert page.count("run\\x1b]0;owned\\x07") == 2  # <title> and <h1>
    failure = page.split('<section class="failures">')[1].split("<tr>")[2]
    assert failure.count(shown) == 1 + 1 + 1 + 2 + 1 + 1  # state and its meaning share a cell
    assert '<li class="chip o-other"><b>1</b> ' + shown + "</li>" in page


# ---------------------------------------------------------------------------------------
# The template: package data, one self-contained page, and no markup left in Python

MARKUP_IN_PYTHON = re.compile(
    r"<(?:!doctype|html|head|body|style|script|link|meta|div|span|p|a|b|img|ul|ol|li|table"
    r"|thead|tbody|tr|td|th|section|article|main|header|footer|h[1-6]|dl|dt|dd|input|small)"
    r"[\s>/]"  # an HTML tag
    r"|\{[^{}]*[\w-]+\s*:[^{}]*;\s*\}"  # a CSS rule: { name: value; }
    r"|\bfunction\s*\(|=>\s*\{|addEventListener|querySelector",  # JavaScript
    re.IGNORECASE,
)


def test_the_markup_check_knows_markup() -> None:
    for text in ('<div class="compare">', "<!doctype html>", "<td>", ".a { color: red; }",
                 "(function () {", "el => { x(); }", "box.querySelector('.slider')"):  # fmt: skip
        assert MARKUP_IN_PYTHON.search(text), text
    for text in ("<Error><Code>x</Code></Error>", "{name: value}", "if a < b > c:", "<appcode>"):
        assert not MARKUP_IN_PYTHON.search(text), text


def test_no_python_module_holds_html_css_or_js() -> None:
    """The page lives in outputs/templates/ (package data); none of it in a .py file."""
    package = Path(gallery.__file__).parents[1]
    found = [
        f"{path.relative_to(package)}: {match.group()!r}"
        for path in sorted(package.rglob("*.py"))
        for match in MARKUP_IN_PYTHON.finditer(path.read_text(encoding="utf-8"))
    ]
    assert found == []


def test_the_page_is_one_file_with_its_css_and_js_inlined_as_written(site: Site) -> None:
    """Offline from file://: the stylesheet and the script are in the page exactly as
    the package's files hold them, and nothing but the images is fetched."""
    page = page_of(site)
    templates = importlib.resources.files("zuotang_cli.outputs") / "templates"
    for name in ("gallery.css", "gallery.js"):
        text = (templates / name).read_text(encoding="utf-8")
        assert text.strip() and text in page, name
    tags = parse(page)
    assert [link["href"] for link in tags.all("link")] == ["data:,"]
    assert [script.get("src") for script in tags.all("script")] == [None]
    assert "@import" not in page and "url(" not in page
    assert page.startswith("<!doctype html>\n") and page.endswith("</html>\n")


# ---------------------------------------------------------------------------------------
# The command


def test_command_prints_the_page_path(site: Site) -> None:
    proc = cli("gallery", "out", cwd=site.root)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"{site.out / 'index.html'}\n"
    assert proc.stderr == ""


def test_command_with_an_explicit_report(site: Site) -> None:
    report = site.root / "elsewhere.csv"
    report.write_bytes((site.out / "report.csv").read_bytes())
    (site.out / "report.csv").unlink()
    proc = cli("gallery", "out", "--report", str(report), cwd=site.root)
    assert proc.returncode == 0, proc.stderr
    assert (site.out / "index.html").is_file()


@pytest.mark.parametrize("empty", [False, True])
def test_command_without_rows_is_a_one_line_error(tmp_path: Path, empty: bool) -> None:
    if empty:
        write_csv(tmp_path / "report.csv", [])
    proc = cli("gallery", str(tmp_path), cwd=tmp_path)
    assert proc.returncode == ExitStatus.USAGE
    assert proc.stdout == ""
    assert proc.stderr.startswith("zuotang: error: ")
    assert proc.stderr.count("\n") == 1


def test_command_open_opens_the_page_in_the_browser(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from zuotang_cli.cli import main
    from zuotang_cli.cli.commands import gallery as gallery_cmd

    opened: list[str] = []
    monkeypatch.setattr(gallery_cmd.webbrowser, "open", lambda url: opened.append(url) or True)
    result = CliRunner().invoke(main.app, ["gallery", "out", "--open"])
    assert result.exit_code == 0, result.output
    assert opened == [(site.out / "index.html").as_uri()]


def test_command_help_has_examples(tmp_path: Path) -> None:
    proc = cli("gallery", "--help", cwd=tmp_path)
    assert "Examples:" in proc.stdout
    assert "zuotang gallery out/ --open" in proc.stdout


# ---------------------------------------------------------------------------------------
# In a real browser


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """``tmp_path/site`` served over loopback: (folder, base URL)."""
    root = tmp_path / "site"
    root.mkdir()
    handler = functools.partial(QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    chromium = find_chromium()
    if chromium is None:
        reason = (
            "no chromium on PATH: the gallery's browser test needs one "
            "(Debian: apt-get update && apt-get install -y chromium)"
        )
        if os.environ.get(REQUIRE_BROWSER) == "1":
            pytest.fail(f"{reason}; {REQUIRE_BROWSER}=1 makes it required")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def open_page(browser: Any, url: str, viewport: dict[str, int]) -> tuple[Any, list[str]]:
    """The page at ``url``, every image scrolled into view and loaded; its console errors."""
    page = browser.new_page(viewport=viewport)
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(url, wait_until="load")
    for img in page.locator("img").all():
        img.scroll_into_view_if_needed()
    page.wait_for_function("Array.from(document.images).every(i => i.complete)", timeout=15000)
    page.evaluate("window.scrollTo(0, 0)")
    return page, errors


def test_page_in_a_headless_browser(browser: Any, served: tuple[Path, str], tmp_path: Path) -> None:
    root, base_url = served
    build_site(root, base_url)
    proc = cli("gallery", "out", cwd=root)
    assert proc.returncode == 0, proc.stderr

    page, errors = open_page(browser, f"{base_url}/out/index.html", {"width": 1280, "height": 900})

    widths = page.evaluate("Array.from(document.images).map(i => [i.src, i.naturalWidth])")
    assert len(widths) == 6
    assert all(width > 0 for _, width in widths), widths
    assert page.evaluate("window.__pwned") is None
    assert page.locator(".compare.broken").count() == 0

    first = page.locator(".compare").first
    before = first.locator("img.before")
    clip_at_half = before.evaluate("el => getComputedStyle(el).clipPath")
    box = first.bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + box["width"] * 0.25, box["y"] + box["height"] / 2)
    pos = first.evaluate("el => el.style.getPropertyValue('--pos')")
    assert 20 <= float(pos.rstrip("%")) <= 30, pos
    clip = before.evaluate("el => getComputedStyle(el).clipPath")
    assert clip.startswith("inset(") and clip != clip_at_half, (clip_at_half, clip)
    slider_on_top = before.evaluate(
        "el => { const r = el.getBoundingClientRect();"
        " return document.elementFromPoint(r.left + r.width * 0.1, r.top + r.height / 2)"
        "   === el.parentElement.querySelector('.slider'); }"
    )
    assert slider_on_top  # the slider covers the whole picture: drag or tap anywhere
    first.locator(".slider").focus()
    page.keyboard.press("End")
    assert first.evaluate("el => el.style.getPropertyValue('--pos')") == "100%"
    page.keyboard.press("Home")
    assert first.evaluate("el => el.style.getPropertyValue('--pos')") == "0%"
    page.keyboard.press("ArrowRight")
    assert float(first.evaluate("el => el.style.getPropertyValue('--pos')").rstrip("%")) > 0
    first.locator(".slider").evaluate(
        "el => { el.value = 60; el.dispatchEvent(new Event('input')); }"
    )
    assert first.evaluate("el => el.style.getPropertyValue('--pos')") == "60%"

    page.screenshot(path=str(tmp_path / "gallery-desktop.png"), full_page=True)
    assert (tmp_path / "gallery-desktop.png").stat().st_size > 0
    assert errors == []
    assert "street" in page.locator(".card").nth(2).inner_text()
    page.close()


def test_page_on_a_phone_and_from_a_file_url(
    browser: Any, served: tuple[Path, str], tmp_path: Path
) -> None:
    root, base_url = served
    site = build_site(root, base_url)
    assert cli("gallery", "out", cwd=root).returncode == 0
    url = (site.out / "index.html").as_uri()  # local images through relative file: paths

    page, errors = open_page(browser, url, {"width": 390, "height": 844})

    assert page.evaluate("Array.from(document.images).every(i => i.naturalWidth > 0)")
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0
    columns = page.evaluate(
        "getComputedStyle(document.querySelector('.grid')).gridTemplateColumns.split(' ').length"
    )
    assert columns == 1
    page.screenshot(path=str(tmp_path / "gallery-phone.png"), full_page=True)
    assert (tmp_path / "gallery-phone.png").stat().st_size > 0
    assert errors == []
    page.close()


def test_an_input_path_column_finds_the_input_from_anywhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = save_image(tmp_path / "photos" / "p.png", (50, 40), (9, 9, 9))
    result = save_image(tmp_path / "out" / "p.png", (200, 160), (9, 9, 9))
    monkeypatch.chdir(tmp_path / "out")  # "photos/p.png" is not found from here
    record = Record("photos/p.png", Outcome.DONE, output=str(result),
                    extra={"input_path": str(source)})  # fmt: skip
    tags = parse(gallery.write_gallery(tmp_path / "out", [record]).read_text(encoding="utf-8"))
    assert [img["src"] for img in tags.all("img")] == ["p.png", "../photos/p.png"]


def test_an_unwritable_out_dir_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="cannot write"):
        gallery.write_gallery(tmp_path / "file", [])
