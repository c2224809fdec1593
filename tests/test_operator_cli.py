"""What a cron operator and a terminal user see (issue 14): exit codes that alert, a summary
that shows money and failures by reason, stderr that scales, a terminal that stays clean,
folder scans that account for every file, and --probe refusing what it proved.

Every test drives the real CLI in a subprocess against the emulator over loopback."""

from __future__ import annotations

import json
import os
import re
import socket
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import EmulatorFactory, ImageMaker
from tests.helpers import Env, cli, enhance_env, report_rows, start, urls, write_list, zuotang
from zuotang_cli.status import ExitStatus

HALT_PREFIX = "zuotang: halted:"


def lines_of(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


def json_summary(stderr: str) -> dict[str, Any]:
    last = lines_of(stderr)[-1]
    document = json.loads(last)
    assert document["summary"] is True
    return document  # type: ignore[no-any-return]


# -- exit codes (status.py) ---------------------------------------------------------


def test_exit_0_when_every_input_is_done(tmp_path: Path, emulator: EmulatorFactory) -> None:
    emu = emulator(cheap=True, qps=50)
    proc = zuotang(*urls(emu, 2), "-o", str(tmp_path / "o"), "--qps", "50", endpoint=emu.endpoint)
    assert proc.returncode == ExitStatus.SUCCESS, proc.stderr
    again = zuotang(*urls(emu, 2), "-o", str(tmp_path / "o"), "--qps", "50", endpoint=emu.endpoint)
    assert again.returncode == ExitStatus.SUCCESS  # skipped as done counts as done
    assert emu.stats()["calls"] == 2


def test_exit_1_when_only_some_images_failed(tmp_path: Path, emulator: EmulatorFactory) -> None:
    emu = emulator(qps=50)
    proc = zuotang(
        emu.file_url("missing.png"),
        "-o",
        str(tmp_path / "o"),
        endpoint=emu.endpoint,
    )
    assert proc.returncode == ExitStatus.SOME_FAILED, proc.stderr


def test_exit_2_for_a_list_file_that_does_not_exist(
    tmp_path: Path, emulator: EmulatorFactory
) -> None:
    emu = emulator(cheap=True)
    proc = zuotang(
        str(tmp_path / "nosuchfile.txt"), "-o", str(tmp_path / "o"), endpoint=emu.endpoint
    )
    assert proc.returncode == ExitStatus.USAGE
    assert "nosuchfile.txt" in proc.stderr and proc.stderr.count("\n") == 1
    assert emu.stats()["calls"] == 0
    assert not (tmp_path / "o").exists()  # refused before anything was written


def test_exit_2_for_a_bad_flag(tmp_path: Path) -> None:
    proc = zuotang("https://example.com/a.jpg", "--qps", "0", endpoint="http://127.0.0.1:9/x")
    assert proc.returncode == ExitStatus.USAGE


def test_exit_2_for_a_wrong_endpoint_path_without_a_request_id_none(
    tmp_path: Path, emulator: EmulatorFactory
) -> None:
    emu = emulator(cheap=True)
    wrong = emu.url + "/__emulator__/no-such-api"  # a bare 404: no X-Ca-Request-Id
    proc = zuotang(*urls(emu, 3), "-o", str(tmp_path / "o"), endpoint=wrong)
    assert proc.returncode == ExitStatus.USAGE, proc.stderr
    assert "HTTP 404" in proc.stderr
    assert "request id None" not in proc.stderr and "None" not in proc.stderr


def test_exit_3_and_a_short_stderr_for_a_wrong_appcode_on_2000_inputs(
    tmp_path: Path, emulator: EmulatorFactory
) -> None:
    emu = emulator(appcodes=frozenset({"the-right-code"}), cheap=True)
    url_list = write_list(tmp_path / "urls.txt", urls(emu, 2000))
    proc = zuotang(str(url_list), "-o", str(tmp_path / "o"), endpoint=emu.endpoint)
    assert proc.returncode == ExitStatus.HALTED
    lines = lines_of(proc.stderr)
    assert len(lines) <= 30, proc.stderr
    assert lines[0].startswith(HALT_PREFIX) and "AppCode was refused" in lines[0]
    assert lines[-1] == lines[0]  # the reason, first and last
    assert any(re.fullmatch(r"zuotang: not attempted: 1999 \(halted: auth\)", x) for x in lines)
    assert len(report_rows(tmp_path / "o")) == 2000


def test_exit_4_when_the_endpoint_is_unreachable(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    args = ("--qps", "50", "--retries", "0", "-o", str(tmp_path / "o"))
    endpoint = f"http://127.0.0.1:{port}/tasks/visual/scale"
    proc = zuotang(*[f"https://example.com/{i}.jpg" for i in range(30)], *args, endpoint=endpoint)
    assert proc.returncode == ExitStatus.TROUBLE, proc.stderr
    assert lines_of(proc.stderr)[-1].startswith(HALT_PREFIX + " cannot reach the endpoint")


def test_exit_4_when_the_output_cannot_be_written(
    tmp_path: Path, emulator: EmulatorFactory, make_image: ImageMaker
) -> None:
    photos = tmp_path / "photos"
    make_image(photos / "sub" / "a.png", (40, 30))
    out = tmp_path / "out"
    out.mkdir()
    (out / "sub").write_text("a file where a folder must go\n")
    emu = emulator(cheap=True, qps=50)
    proc = zuotang(str(photos), "-r", "-o", str(out), "--qps", "50", endpoint=emu.endpoint)
    assert proc.returncode == ExitStatus.TROUBLE, proc.stderr
    assert "disk full or not writable" in lines_of(proc.stderr)[-1]


def test_exit_4_when_the_journal_is_unusable(tmp_path: Path, emulator: EmulatorFactory) -> None:
    emu = emulator(cheap=True)
    out = tmp_path / "out"
    (out / ".zuotang").mkdir(parents=True)
    (out / ".zuotang" / "journal.sqlite").write_bytes(b"this is not a database" * 100)
    proc = zuotang(*urls(emu, 1), "-o", str(out), endpoint=emu.endpoint)
    assert proc.returncode == ExitStatus.TROUBLE, proc.stderr
    assert "journal" in proc.stderr
    assert emu.stats()["calls"] == 0
    with pytest.raises(sqlite3.DatabaseError):
        sqlite3.connect(out / ".zuotang" / "journal.sqlite").execute("select 1 from sqlite_master")


def test_help_and_readme_carry_the_same_exit_codes() -> None:
    proc = cli("enhance", "--help", env={"COLUMNS": "200"})
    assert "4 halted by trouble on the way" in proc.stdout
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    for code in ("| 0 |", "| 1 |", "| 2 |", "| 3 |", "| 4 |", "| 130 |"):
        assert code in readme
    assert 'if [ "$status" -ge 2 ]' in readme  # the cron recipe alerts on >= 2


# -- the summary --------------------------------------------------------------------------


@pytest.mark.timing
def test_the_summary_shows_money_throttling_and_failures_by_reason(
    tmp_path: Path, emulator: EmulatorFactory
) -> None:
    emu = emulator(qps=2)
    good = [emu.file_url(name) for name in ("harbour-320x240.jpg", "garden-480x640.png")]
    bad = [f"ftp://example.com/{i}.jpg" for i in range(30)]
    missing = [emu.file_url(f"missing{i}.png") for i in range(3)]
    url_list = write_list(tmp_path / "u.txt", good + bad + missing)
    summary_file = tmp_path / "summary.json"
    proc = zuotang(
        str(url_list),
        "-o",
        str(tmp_path / "o"),
        "--qps",
        "8",
        "--json",
        "--summary-json",
        str(summary_file),
        endpoint=emu.endpoint,
    )
    assert proc.returncode == ExitStatus.SOME_FAILED, proc.stderr
    lines = lines_of(proc.stderr)
    per_input = [x for x in lines if x.startswith(("zuotang: failed:", "zuotang: invalid:"))]
    assert len(per_input) == 20  # a screenful; the rest counted
    assert any("13 more problem lines not shown" in x for x in lines)
    assert any(re.search(r"bad-input: 30 \(e\.g\. ftp://example\.com/0\.jpg: ", x) for x in lines)
    assert any(re.search(r"state-3: 3 \(e\.g\. ", x) for x in lines)
    stats = emu.stats()
    assert f"zuotang: paid calls: {stats['billed']} (3 without a result)" in proc.stderr
    document = json_summary(proc.stderr)
    assert document == json.loads(summary_file.read_text(encoding="utf-8"))
    assert document["counts"]["done"] == 2 and document["counts"]["invalid"] == 30
    assert document["paid_calls"] == stats["billed"] == 5
    assert document["exit_code"] == 1
    reasons = {group["reason"]: group["count"] for group in document["failures"]}
    assert reasons == {"bad-input": 30, "state-3": 3}
    assert document["throttled"] > 0  # --qps 8 against an account of 2
    assert f"warning: {document['throttled']} throttle repl" in proc.stderr
    assert "lower --qps" in proc.stderr


def test_verbose_shows_every_problem_line(tmp_path: Path, emulator: EmulatorFactory) -> None:
    emu = emulator(cheap=True)
    url_list = write_list(tmp_path / "u.txt", [f"ftp://example.com/{i}.jpg" for i in range(25)])
    proc = zuotang(str(url_list), "-v", "-o", str(tmp_path / "o"), endpoint=emu.endpoint)
    assert proc.returncode == ExitStatus.SOME_FAILED
    assert sum(line.startswith("zuotang: invalid:") for line in lines_of(proc.stderr)) == 25
    assert "more problem lines not shown" not in proc.stderr


def test_summary_json_is_written_in_text_mode_too(
    tmp_path: Path, emulator: EmulatorFactory
) -> None:
    emu = emulator(cheap=True, qps=50)
    target = tmp_path / "s.json"
    proc = zuotang(
        *urls(emu, 3),
        "-o",
        str(tmp_path / "o"),
        "--summary-json",
        str(target),
        endpoint=emu.endpoint,
    )
    assert proc.returncode == ExitStatus.SUCCESS
    document = json.loads(target.read_text(encoding="utf-8"))
    assert document["counts"]["done"] == 3 and document["paid_calls"] == 3
    assert not proc.stderr.lstrip().startswith("{")  # no JSON on stderr without --json


def test_max_calls_says_not_attempted_in_one_line(
    tmp_path: Path, emulator: EmulatorFactory
) -> None:
    emu = emulator(cheap=True, qps=50)
    url_list = write_list(tmp_path / "u.txt", urls(emu, 60))
    proc = zuotang(
        str(url_list), "-o", str(tmp_path / "o"), "--qps", "50", "--max-calls", "5",
        endpoint=emu.endpoint,
    )  # fmt: skip
    assert proc.returncode == ExitStatus.SOME_FAILED
    lines = lines_of(proc.stderr)
    assert len(lines) < 10, proc.stderr
    assert "zuotang: not attempted: 55 (not attempted (max-calls 5 reached))" in lines


def test_dry_run_speaks_plainly_and_exits_as_the_run_would(
    tmp_path: Path, emulator: EmulatorFactory
) -> None:
    emu = emulator(cheap=True)
    one = zuotang(*urls(emu, 1), "--dry-run", "-o", str(tmp_path / "o"), endpoint=emu.endpoint)
    assert one.returncode == ExitStatus.SUCCESS
    assert "1 to call; 1 paid call would take" in one.stderr
    mixed = zuotang(
        *urls(emu, 6), "ftp://example.com/x.jpg", "--dry-run", "-o", str(tmp_path / "o"),
        endpoint=emu.endpoint,
    )  # fmt: skip
    assert mixed.returncode == ExitStatus.SOME_FAILED
    assert "6 to call, 1 invalid; 6 paid calls would take" in mixed.stderr
    assert emu.stats()["calls"] == 0


def test_stats_lines_show_life_when_stderr_is_not_a_terminal(
    tmp_path: Path, emulator: EmulatorFactory
) -> None:
    emu = emulator(cheap=True, qps=50, latency=(0.5, 0.5))
    args = ("-o", str(tmp_path / "o"), "--qps", "2", "--stats-interval", "0.5")
    proc = zuotang(*urls(emu, 6), *args, endpoint=emu.endpoint)
    assert proc.returncode == ExitStatus.SUCCESS
    progress = [x for x in lines_of(proc.stderr) if x.startswith("zuotang: progress: ")]
    assert len(progress) >= 2, proc.stderr
    quiet = zuotang(
        *urls(emu, 3, stem="q"), "-o", str(tmp_path / "p"), "--qps", "2", "--stats-interval", "0",
        endpoint=emu.endpoint,
    )  # fmt: skip
    assert "progress:" not in quiet.stderr


# -- folder scans ---------------------------------------------------------------------------


def test_a_folder_scan_accounts_for_every_file(
    tmp_path: Path, emulator: EmulatorFactory, make_image: ImageMaker
) -> None:
    photos = tmp_path / "photos"
    make_image(photos / "a.png", (40, 30))
    make_image(photos / "b.gif", (40, 30), "GIF")
    make_image(photos / ".hidden.png", (40, 30))
    (photos / "notes.txt").write_text("not an image\n")
    make_image(photos / "sub" / "c.png", (40, 30))
    emu = emulator(cheap=True, qps=50)
    proc = zuotang(str(photos), "-o", str(tmp_path / "o"), "--json", endpoint=emu.endpoint)
    assert proc.returncode == ExitStatus.SUCCESS, proc.stderr
    assert json_summary(proc.stderr)["skipped_files"] == {
        "unsupported extension": 2,
        "hidden": 1,
        "subfolder (no --recursive)": 1,
    }
    assert "folders: 4 files not taken" in proc.stderr
    verbose = zuotang(str(photos), "-v", "-o", str(tmp_path / "o"), endpoint=emu.endpoint)
    assert f"not taken: {photos / 'b.gif'}: unsupported extension" in verbose.stderr
    assert f"not taken: {photos / 'sub'}: subfolder (no --recursive)" in verbose.stderr


def test_a_folder_of_subfolders_without_recursive_gets_a_hint(
    tmp_path: Path, emulator: EmulatorFactory, make_image: ImageMaker
) -> None:
    make_image(tmp_path / "albums" / "2023" / "a.png", (40, 30))
    make_image(tmp_path / "albums" / "2024" / "b.png", (40, 30))
    emu = emulator(cheap=True)
    proc = zuotang(str(tmp_path / "albums"), "-o", str(tmp_path / "o"), endpoint=emu.endpoint)
    assert f"{tmp_path / 'albums'}: 2 subfolders not scanned: add --recursive" in proc.stderr
    assert emu.stats()["calls"] == 0


def test_include_and_exclude_globs_pick_files_in_folders(
    tmp_path: Path, emulator: EmulatorFactory, make_image: ImageMaker
) -> None:
    photos = tmp_path / "photos"
    for name in ("a.png", "b.jpg", "raw/c.png", "raw/d.png", "keep/e.png"):
        make_image(photos / name, (40, 30), "JPEG" if name.endswith(".jpg") else "PNG")
    emu = emulator(cheap=True, qps=50)
    proc = zuotang(
        str(photos), "-r", "--include", "*.png", "--exclude", "raw/*", "--exclude", "keep/x*",
        "-o", str(tmp_path / "o"), "--json", "--qps", "50", endpoint=emu.endpoint,
    )  # fmt: skip
    assert proc.returncode == ExitStatus.SUCCESS, proc.stderr
    done = sorted(
        Path(r["input"]).relative_to(photos).as_posix() for r in report_rows(tmp_path / "o")
    )
    assert done == ["a.png", "keep/e.png"]
    assert json_summary(proc.stderr)["skipped_files"] == {
        "excluded by --exclude": 2,
        "not matched by --include": 1,
    }


# -- --probe ----------------------------------------------------------------------------------


def test_probe_refuses_a_text_body_and_a_404_without_a_paid_call(
    tmp_path: Path, emulator: EmulatorFactory, make_image: ImageMaker
) -> None:
    served = tmp_path / "served"
    make_image(served / "good.png", (60, 40))
    (served / "notes.jpg").write_bytes(b"these are notes, not a photo at al")
    assert (served / "notes.jpg").stat().st_size == 34
    emu = emulator(serve_dir=served, qps=50)
    inputs = [emu.file_url(name) for name in ("good.png", "notes.jpg", "gone.jpg")]
    proc = zuotang(*inputs, "--probe", "-o", str(tmp_path / "o"), endpoint=emu.endpoint)
    assert proc.returncode == ExitStatus.SOME_FAILED, proc.stderr
    rows = {Path(r["input"]).name: r for r in report_rows(tmp_path / "o")}
    assert rows["good.png"]["outcome"] == "done"
    assert (
        rows["notes.jpg"]["outcome"] == "invalid" and "not an image" in rows["notes.jpg"]["message"]
    )
    assert rows["gone.jpg"]["outcome"] == "invalid" and "HTTP 404" in rows["gone.jpg"]["message"]
    stats = emu.stats()
    assert stats["calls"] == 1 and stats["billed_by_input"] == {inputs[0]: 1}


# -- smaller items -----------------------------------------------------------------------------


def test_missing_appcode_points_at_config_set_appcode(tmp_path: Path) -> None:
    proc = zuotang("https://example.com/a.jpg", appcode=None, endpoint="http://127.0.0.1:9/x")
    assert proc.returncode == ExitStatus.USAGE
    assert "zuotang config set-appcode" in proc.stderr


def test_the_emulator_on_a_busy_port_says_so_in_one_line_and_exits_2() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = cli("emulator", "--port", str(port))
    assert proc.returncode == ExitStatus.USAGE
    assert proc.stderr.count("\n") == 1 and "Errno" not in proc.stderr
    assert "in use" in proc.stderr and "--port" in proc.stderr


def config(*args: str) -> subprocess.CompletedProcess[str]:
    return cli("config", *args)


def test_config_set_saves_a_checked_key(isolated_config: Path) -> None:
    assert config("set", "qps", "5").returncode == 0
    assert config("set", "output-dir", "/srv/enhanced").returncode == 0
    shown = json.loads(config("show", "--json").stdout)["settings"]
    assert shown["qps"]["value"] == 5 and shown["qps"]["source"] == "file"
    assert shown["output_dir"]["value"] == "/srv/enhanced"
    bad = config("set", "qps", "fast")
    assert bad.returncode == ExitStatus.USAGE and "qps" in bad.stderr
    assert config("set", "colour", "blue").returncode == ExitStatus.USAGE
    secret = config("set", "appcode", "abc")
    assert secret.returncode == ExitStatus.USAGE and "set-appcode" in secret.stderr
    assert json.loads(config("show", "--json").stdout)["settings"]["qps"]["value"] == 5


# -- the terminal ----------------------------------------------------------------------------


class Screen:
    """Just enough of a terminal to replay what rich and zuotang wrote: CR, LF, cursor up,
    erase line; every other escape sequence is ignored."""

    _CSI = re.compile(r"\x1b\[([0-9;?]*)([A-Za-z])|\x1b[()][A-Za-z0-9]|\x1b[=>]|\x1b\].*?\x07")

    def __init__(self) -> None:
        self.rows: list[list[str]] = [[]]
        self.row = self.col = 0

    def feed(self, text: str) -> None:
        pos = 0
        while pos < len(text):
            match = self._CSI.match(text, pos)
            if match:
                self._control(match.group(1) or "", match.group(2) or "")
                pos = match.end()
                continue
            self._char(text[pos])
            pos += 1

    def _control(self, params: str, final: str) -> None:
        number = int(params) if params.isdigit() else None
        if final == "A":
            self.row = max(0, self.row - (number or 1))
        elif final == "B":
            self._down(number or 1)
        elif final == "G":
            self.col = (number or 1) - 1
        elif final == "K":
            line = self.rows[self.row]
            if number == 2:
                self.rows[self.row] = []
            elif not number:
                del line[self.col :]

    def _down(self, n: int) -> None:
        self.row += n
        while len(self.rows) <= self.row:
            self.rows.append([])

    def _char(self, char: str) -> None:
        if char == "\r":
            self.col = 0
        elif char == "\n":
            self._down(1)
        elif char >= " ":
            line = self.rows[self.row]
            line.extend(" " * (self.col - len(line)))
            if self.col < len(line):
                line[self.col] = char
            else:
                line.append(char)
            self.col += 1

    def lines(self) -> list[str]:
        return ["".join(row).rstrip() for row in self.rows]


def run_on_a_pty(args: list[str], env: Env, stdin_text: str | None = None) -> str:
    """Run zuotang with stdout and stderr on one pseudo-terminal; all it wrote there."""
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
    proc = start(
        "enhance",
        *args,
        env=env,
        text=False,
        stdin=slave if stdin_text is not None else subprocess.DEVNULL,
        stdout=slave,
        stderr=slave,
        close_fds=True,
    )
    os.close(slave)
    if stdin_text is not None:
        os.write(master, stdin_text.encode())
    chunks = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: every end of the slave is closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    proc.wait(timeout=30)
    os.close(master)
    return b"".join(chunks).decode("utf-8", "replace")


def tty_env(endpoint: str) -> Env:
    """A run's variables on a 200 x 50 colour terminal."""
    return {
        **enhance_env(endpoint),
        **{"TERM": "xterm-256color", "COLUMNS": "200", "LINES": "50", "NO_COLOR": None},
    }


def test_saved_paths_never_share_a_line_with_the_live_progress(
    tmp_path: Path, emulator: EmulatorFactory
) -> None:
    emu = emulator(cheap=True, qps=50, latency=(0.2, 0.4))
    out = tmp_path / "out"
    args = [*urls(emu, 16), "-o", str(out), "--qps", "8"]
    written = run_on_a_pty(args, tty_env(emu.endpoint))
    screen = Screen()
    screen.feed(written)
    with_paths = [line for line in screen.lines() if str(out) in line and "report:" not in line]
    assert len(with_paths) == 16, written[-3000:]
    for line in with_paths:
        assert line.startswith(str(out)) and line.endswith(".png"), line
    assert "calls" in written  # the live progress line was drawn


def test_reading_the_list_from_a_terminal_says_so(
    tmp_path: Path, emulator: EmulatorFactory
) -> None:
    emu = emulator(cheap=True)
    out = tmp_path / "out"
    written = run_on_a_pty(
        ["-", "-o", str(out)], tty_env(emu.endpoint), stdin_text=emu.file_url("a.png") + "\n\x04"
    )
    assert "reading the list of inputs from stdin" in written and "Ctrl-D" in written
    assert [row["outcome"] for row in report_rows(out)] == ["done"]
