"""Speaking the users' language (docs/i18n.md): the catalog is complete, the language is
chosen in the documented order, and every scenario of a run says its sentences in Chinese
under ``LANG=zh_CN.UTF-8``, nothing Chinese under ``LANG=C``, while what programs read
(stdout, the report, the JSON summary, exit codes) is the same in both."""

from __future__ import annotations

import csv
import gettext
import io
import json
import re
import string
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from tests.helpers import APPCODE, Env, cli, write_list
from zuotang_cli import i18n, reasons
from zuotang_cli.app import settings
from zuotang_cli.cli.main import _lang_flag
from zuotang_cli.status import ExitStatus

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "zuotang_cli"
PO = PACKAGE / "locale" / "zh_CN" / "LC_MESSAGES" / "zuotang.po"
MO = PO.with_suffix(".mo")
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None}
"""What babel.cfg and `make i18n` extract (Babel's defaults and N_)."""

CJK = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")
ENGLISH_SENTENCE = re.compile(r"[A-Za-z]{2,}[ ,;]+[A-Za-z]{2,}[ ,;]+[A-Za-z]{2,}")
"""Three English words in a row: a sentence left untranslated."""
TOKENS = re.compile(
    r"https?://\S+"  # URLs
    r"|--[a-z0-9-]+(?:[ =][^\s，；：（）]+)?"  # flags and their values
    r"|\b[a-z]+(?:[-_][a-z0-9]+)+\b"  # machine words: error classes, outcome words
    r"|\bstate -?\d\b|\bHTTP \d+\b"
    r"|'[^']*'"  # quoted names and commands
    r"|\bzuotang(?: [a-z][a-z_-]*)+"  # a command to run
)
"""Machine tokens a Chinese line keeps as they are."""


# -- the catalog --------------------------------------------------------------------------


def _extracted() -> dict[str, str | tuple[str, ...]]:
    found: dict[str, str | tuple[str, ...]] = {}
    method_map = [
        ("zuotang_cli/**.py", "python"),
        ("zuotang_cli/outputs/templates/**.j2", "jinja2"),
    ]
    options = {"zuotang_cli/outputs/templates/**.j2": {"extensions": "jinja2.ext.i18n"}}
    for _filename, _lineno, message, _comments, _context in extract_from_dir(
        str(ROOT), method_map, options, keywords=KEYWORDS
    ):
        key = message[0] if isinstance(message, tuple) else message
        if key:
            found[key] = message
    return found


def _fields(text: str) -> set[str]:
    """``{name}`` fields (Python's format) and ``%(name)s`` ones (the gallery's template)."""
    fields = {field for _, field, _, _ in string.Formatter().parse(text) if field is not None}
    return fields | set(re.findall(r"%\((\w+)\)s", text))


@pytest.fixture(scope="module")
def catalog() -> Any:
    with PO.open("rb") as handle:
        return read_po(handle, locale="zh_CN")


def test_every_message_in_the_code_is_in_the_catalog_and_translated(catalog: Any) -> None:
    """An extraction diff: a message marked in the code and missing from the .po, or
    there untranslated or fuzzy, fails here (run `make i18n`, translate, run it again)."""
    extracted = _extracted()
    assert len(extracted) > 300
    in_catalog = {m.id[0] if isinstance(m.id, tuple) else m.id: m for m in catalog if m.id}
    missing = sorted(set(extracted) - set(in_catalog))
    assert missing == [], "not in the catalog (make i18n):\n" + "\n".join(missing)
    stale = sorted(set(in_catalog) - set(extracted))
    assert stale == [], "in the catalog, gone from the code (make i18n):\n" + "\n".join(stale)
    for key, message in in_catalog.items():
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        assert all(strings), f"untranslated: {key!r}"
        assert not message.fuzzy, f"fuzzy: {key!r}"


def test_translations_keep_every_placeholder(catalog: Any) -> None:
    """A translation that drops or invents a ``{name}`` would fail at run time."""
    for message in catalog:
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        for text in strings:
            assert _fields(text) == _fields(ids[-1]), (message.id, text)


def test_the_compiled_catalog_is_the_po(catalog: Any) -> None:
    """The shipped .mo says what the .po says (`make i18n` compiles it)."""
    with MO.open("rb") as handle:
        compiled = gettext.GNUTranslations(handle)
    for message in catalog:
        if not message.id:
            continue
        if isinstance(message.id, tuple):
            assert compiled.ngettext(message.id[0], message.id[1], 2) == message.string[0]
        else:
            assert compiled.gettext(message.id) == message.string, message.id


def test_the_glossary_terms_are_the_catalogs(catalog: Any) -> None:
    """The state codes read as the marketplace document says them (docs/glossary.md)."""
    by_id = {m.id: m.string for m in catalog if isinstance(m.id, str)}
    glossary = (ROOT / "docs" / "glossary.md").read_text(encoding="utf-8")
    for english, chinese in {
        "processing failed": "修复失败",
        "result upload failed": "上传失败",
        "could not download image_url": "image_url 下载失败",
    }.items():
        assert by_id[english] == chinese and chinese in glossary
    translations = "\n".join(str(m.string) for m in catalog if m.id)
    for term in ("已购买的服务", "签名", "任务记录", "计费调用", "限流", "欠费", "调用额度"):
        assert term in glossary and term in translations, term


# -- which language -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--lang", "zh_CN", "enhance", "x"], "zh_CN"),
        (["--lang=en", "--help"], "en"),
        (["enhance", "--lang", "zh_CN"], None),  # an option of zuotang, not of enhance
        (["--version"], None),
        (["--lang"], None),
    ],
)
def test_lang_is_read_from_zuotangs_own_options(argv: list[str], expected: str | None) -> None:
    assert _lang_flag(argv) == expected


def test_the_flag_beats_the_variable_beats_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('lang = "zh_CN"\n', encoding="utf-8")
    env = {settings.CONFIG_ENV_VAR: str(config)}
    assert settings.language(None, env) == "zh_CN"
    assert settings.language(None, {**env, i18n.LANG_VARIABLE: "en"}) == "en"
    assert settings.language("zh-CN", {**env, i18n.LANG_VARIABLE: "en"}) == "zh-CN"
    assert settings.language(None, {}) is None  # the locale decides


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"LANG": "zh_CN.UTF-8"}, "zh_CN"),
        ({"LANG": "C"}, "en"),
        ({"LANG": "zh_CN.UTF-8", "LC_ALL": "C"}, "en"),
        ({"LANG": "C", "LC_MESSAGES": "zh_CN.utf8"}, "zh_CN"),
        ({"LANGUAGE": "zh_CN:en", "LANG": "C"}, "zh_CN"),
        ({"LANG": "fr_FR.UTF-8"}, "en"),
        ({}, "en"),
    ],
)
def test_the_locale_is_read_as_gettext_reads_it(environ: dict[str, str], expected: str) -> None:
    assert i18n.find(None, environ) == expected


@pytest.fixture
def chinese() -> Iterator[None]:
    """This process speaks Chinese for the test, English again after it."""
    i18n.activate("zh_CN")
    try:
        yield
    finally:
        i18n.activate("en")


def test_a_reason_from_a_report_row_is_shown_translated_with_its_values(chinese: None) -> None:
    assert reasons.shown("not attempted (max-calls 42 reached)") == "未尝试（已达到 max-calls 42）"
    assert reasons.shown("halted: auth") == "已中止：auth"
    assert reasons.shown("processing failed") == "修复失败"
    assert reasons.shown("Invalid AppCode `not exists`") == "Invalid AppCode `not exists`"
    assert reasons.shown("") == ""


def test_in_english_a_reason_is_shown_as_the_report_has_it() -> None:
    assert i18n.active() == "en"
    assert reasons.shown("not attempted (max-calls 42 reached)") == (
        "not attempted (max-calls 42 reached)"
    )


@pytest.mark.parametrize("tag", ["zh_CN", "zh-CN", "zh-cn", "zh_CN.UTF-8", "zh"])
def test_every_spelling_of_chinese_chooses_the_catalog(tag: str) -> None:
    assert i18n.find(tag) == "zh_CN"


# -- the command line in both languages -------------------------------------------------------

LOCALE: Env = {"LC_ALL": None, "LC_MESSAGES": None, "LANGUAGE": None, i18n.LANG_VARIABLE: None}
ZH: Env = {**LOCALE, "LANG": "zh_CN.UTF-8"}
C: Env = {**LOCALE, "LANG": "C"}


def stderr_lines(proc: subprocess.CompletedProcess[str]) -> list[str]:
    return [line.removeprefix("zuotang: ") for line in proc.stderr.splitlines() if line.strip()]


def assert_chinese(lines: list[str], outside: set[str]) -> None:
    """Every line of human text is Chinese: once the text from outside (inputs, paths,
    server messages) and the machine tokens are taken out, a CJK character is left and no
    run of English words."""
    assert lines
    for line in lines:
        rest = line
        for text in sorted(outside, key=len, reverse=True):
            rest = rest.replace(text, " ")
        rest = TOKENS.sub(" ", rest)
        assert CJK.search(rest), f"not Chinese: {line!r}"
        assert not ENGLISH_SENTENCE.search(rest), f"English left in: {line!r}"


def assert_no_chinese(text: str) -> None:
    assert not CJK.search(text), text


def outside_text(out: Path) -> set[str]:
    """What a run shows as it came: the inputs and outputs of its report, the messages of
    its failed rows (the service's), and the folders it wrote."""
    found = {str(out), "out"}
    report = out / "report.csv"
    if report.exists():
        for row in csv.DictReader(io.StringIO(report.read_text(encoding="utf-8"))):
            found |= {row["input"], row["output"]} - {""}
            if row["outcome"] == "failed":  # the service's words; zuotang's own are translated
                found.add(row["message"] or row["state_meaning"])
    return found


VOLATILE = ("elapsed", "created_at", "completed_at", "request_id", "task_id")
"""Report and JSON fields that differ between any two runs (times, server ids)."""


def steady_report(out: Path) -> list[dict[str, str]]:
    report = out / "report.csv"
    if not report.exists():
        return []
    text = report.read_text(encoding="utf-8").replace(str(out.parent.resolve()), "RUN")
    rows = csv.DictReader(io.StringIO(text))
    return [{k: v for k, v in row.items() if k not in VOLATILE} for row in rows]


def steady_json(line: str) -> Any:
    """A JSON record or summary, its run folder (after ``run_in``: ``RUN``) and its times
    and server ids taken out."""
    data = json.loads(re.sub(r'"/[^"]*/(zh|C)/out', '"RUN/out', line))
    for field in VOLATILE:
        data.pop(field, None)
    return data


Scenario = Callable[[Any, Path], tuple[list[str], Env]]


def _urls(emu: Any, *names: str) -> list[str]:
    return [emu.file_url(name) for name in names]


GOOD = ("harbour-320x240.jpg", "old-photo-256x192.bmp", "scan-400x300.tiff")
"""Sample images (samples/, served by the emulator under /files/)."""


def success(emulator: Any, _tmp: Path) -> tuple[list[str], Env]:
    emu = emulator(cheap=True, qps=100)
    return ["enhance", *_urls(emu, "a1.png", "a2.png", "a3.png"), "-o", "out"], _env(emu)


def some_failures(emulator: Any, tmp: Path) -> tuple[list[str], Env]:
    emu = emulator(qps=100)  # not cheap: the service fetches, and a missing image is -3
    lines = [*_urls(emu, GOOD[0], "missing.png"), "ftp://example.com/x.png", "not a url"]
    listing = write_list(tmp / "list.txt", lines)
    return ["enhance", str(listing), "-o", "out"], _env(emu)


def wrong_appcode(emulator: Any, _tmp: Path) -> tuple[list[str], Env]:
    emu = emulator(cheap=True, qps=100, appcodes=frozenset({"the-right-one"}))
    urls = _urls(emu, "c1.png", "c2.png", "c3.png", "c4.png")
    return ["enhance", *urls, "-o", "out", "--concurrency", "1"], _env(emu)


def missing_appcode(emulator: Any, _tmp: Path) -> tuple[list[str], Env]:
    emu = emulator(cheap=True, qps=100)
    return ["enhance", *_urls(emu, "d1.png"), "-o", "out"], _env(emu, appcode=None)


def dry_run(emulator: Any, _tmp: Path) -> tuple[list[str], Env]:
    emu = emulator(cheap=True, qps=100)
    urls = [*_urls(emu, "e1.png", "e2.png"), "ftp://example.com/y.png"]
    return ["enhance", *urls, "-o", "out", "--dry-run", "--scale", "2"], _env(emu)


def cron_log(emulator: Any, _tmp: Path) -> tuple[list[str], Env]:
    emu = emulator(qps=100, latency=(0.3, 0.3))
    urls = _urls(emu, *GOOD[:2], "missing.png")
    return ["enhance", *urls, "-o", "out", "--stats-interval", "0.1", "--json"], _env(emu)


def doctor(emulator: Any, _tmp: Path) -> tuple[list[str], Env]:
    emu = emulator(qps=100, appcodes=frozenset({APPCODE}))
    paid = emu.file_url(GOOD[0])
    return ["doctor", "--paid-check", paid], {**_env(emu), "ZUOTANG_QPS": "50"}


def _env(emu: Any, appcode: str | None = APPCODE) -> Env:
    return {"ZUOTANG_ENDPOINT": emu.endpoint, "ZUOTANG_APPCODE": appcode}


SCENARIOS: dict[str, tuple[Scenario, ExitStatus]] = {
    "success": (success, ExitStatus.SUCCESS),
    "some failures": (some_failures, ExitStatus.SOME_FAILED),
    "halt on a wrong AppCode": (wrong_appcode, ExitStatus.HALTED),
    "missing AppCode": (missing_appcode, ExitStatus.USAGE),
    "dry run": (dry_run, ExitStatus.SOME_FAILED),
    "doctor": (doctor, ExitStatus.SUCCESS),
}


def run_in(
    folder: Path, args: list[str], env: Env, language: Env
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """The run in a folder of its own (its output directory ``out`` there), its stdout
    with that folder's path taken out, so that two runs can be compared."""
    folder.mkdir()
    proc = cli(*args, env={**env, **language}, cwd=folder)
    proc.stdout = proc.stdout.replace(str(folder.resolve()), "RUN")
    return proc, folder / "out"


def run_both(
    scenario: Scenario, emulator: Any, tmp_path: Path
) -> dict[str, tuple[subprocess.CompletedProcess[str], Path]]:
    """One scenario run under LANG=zh_CN.UTF-8 and under LANG=C, against one emulator
    (the same inputs), each in an output directory of its own."""
    args, env = scenario(emulator, tmp_path)
    return {
        "zh": run_in(tmp_path / "zh", args, env, ZH),
        "C": run_in(tmp_path / "C", args, env, C),
    }


@pytest.fixture(params=list(SCENARIOS))
def both(
    request: pytest.FixtureRequest, tmp_path: Path, emulator: Any
) -> Iterator[tuple[str, dict[str, tuple[subprocess.CompletedProcess[str], Path]]]]:
    """One scenario run under LANG=zh_CN.UTF-8 and under LANG=C."""
    name = request.param
    yield name, run_both(SCENARIOS[name][0], emulator, tmp_path)


def test_sentences_are_chinese_under_zh_cn_english_under_c_and_machine_output_the_same(
    both: Any,
) -> None:
    name, runs = both
    (zh, zh_out), (c, c_out) = runs["zh"], runs["C"]
    expected = SCENARIOS[name][1]
    assert (zh.returncode, c.returncode) == (expected, expected), zh.stderr + c.stderr
    assert_chinese(stderr_lines(zh), outside_text(zh_out))
    assert_no_chinese(c.stderr)
    if name == "doctor":  # its table is for people too
        assert_chinese(zh.stdout.splitlines(), {"sync=1", "IMAGE_URL", "/tasks/visual/scale"})
    else:
        assert zh.stdout == c.stdout  # saved paths, the dry run's plan lines: byte for byte
    assert steady_report(zh_out) == steady_report(c_out)


@pytest.mark.timing
def test_a_cron_log_with_progress_lines(tmp_path: Path, emulator: Any) -> None:
    """Without a terminal, `progress:` lines come every --stats-interval: in Chinese under
    zh_CN, and the --json records and summary stay the English ones."""
    runs = run_both(cron_log, emulator, tmp_path)
    (zh, zh_out), (c, c_out) = runs["zh"], runs["C"]
    assert zh.returncode == c.returncode == ExitStatus.SOME_FAILED, zh.stderr
    *zh_human, zh_summary = stderr_lines(zh)
    *c_human, c_summary = stderr_lines(c)
    assert any(line.startswith("进度：") for line in zh_human), zh.stderr
    assert any(line.startswith("progress: ") for line in c_human), c.stderr
    assert_chinese(zh_human, outside_text(zh_out))
    assert_no_chinese(c.stderr)
    assert steady_json(zh_summary) == steady_json(c_summary)
    zh_records = [steady_json(line) for line in zh.stdout.splitlines()]
    assert zh_records == [steady_json(line) for line in c.stdout.splitlines()]
    assert steady_report(zh_out) == steady_report(c_out)


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["--lang", "zh_CN", "--help"], C),
        (["--help"], ZH),
        (["enhance", "--help"], {**C, "ZUOTANG_LANG": "zh_CN"}),
        (["config", "show", "--help"], ZH),
    ],
)
def test_help_is_chinese(args: list[str], env: Env) -> None:
    proc = cli(*args, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "用法：zuotang" in proc.stdout and "显示此帮助信息并退出。" in proc.stdout
    assert "Usage:" not in proc.stdout and "Show this message" not in proc.stdout


def test_help_is_english_under_c() -> None:
    proc = cli("enhance", "--help", env=C)
    assert "Usage: zuotang enhance" in proc.stdout
    assert "--dry-run" in proc.stdout and "Say what would be called" in proc.stdout


def test_a_usage_error_is_framed_in_chinese_and_keeps_its_exit_code() -> None:
    """click's own message stays English (docs/i18n.md); its frame is translated."""
    proc = cli("--lang", "zh_CN", "enhance", "--no-such-flag", "x", env=C)
    assert proc.returncode == ExitStatus.USAGE
    assert "用法：zuotang enhance" in proc.stderr and "No such option" in proc.stderr


def test_the_gallery_page_speaks_the_language_and_keeps_the_reports_words(
    tmp_path: Path,
) -> None:
    """`zuotang gallery` under zh_CN: the page's own words in Chinese, the report's (error
    classes, outcomes, messages) as the report has them."""
    out = tmp_path / "out"
    out.mkdir()
    fields = ["input", "outcome", "output", "http_status", "state", "message", "error_class"]
    rows = [
        ["https://example.com/a.png", "done", str(out / "a.png"), "200", "1", "", ""],
        ["https://example.com/b.png", "failed", "", "200", "-7", "invalid image", "state-7"],
    ]
    with (out / "report.csv").open("w", encoding="utf-8", newline="") as stream:
        csv.writer(stream).writerows([fields, *rows])
    pages = {}
    for name, language in (("zh", ZH), ("C", C)):
        proc = cli("gallery", str(out), env=language)
        assert proc.returncode == ExitStatus.SUCCESS, proc.stderr
        pages[name] = (out / "index.html").read_text(encoding="utf-8")
    zh, c = pages["zh"], pages["C"]
    assert '<html lang="zh-CN">' in zh and "未完成" in zh and "处理后" in zh and "2 个输入" in zh
    assert '<html lang="en">' in c and "Not done" in c and not CJK.search(c)
    for machine in ("state-7", "invalid image", ">failed<", ">done<"):
        assert machine in zh and machine in c
