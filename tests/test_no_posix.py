"""zuotang as on Windows, proved on this machine: the CLI run in a subprocess where the
POSIX-only modules cannot be imported (``fcntl``, ``termios``, ``resource``) and
``loop.add_signal_handler`` raises NotImplementedError, as Windows' event loops do.

What Windows would have instead (msvcrt locks, its own signal delivery) cannot run here;
everything zuotang decides on its own when those modules or that method are missing can.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import cli, enhance_env, start, url_list, wait_until
from zuotang_cli.outputs.report import read_report
from zuotang_cli.status import ExitStatus

BLOCKED = ("fcntl", "termios", "resource")

BOOTSTRAP = f"""
import importlib.abc, sys

BLOCKED = {BLOCKED!r}


class RefusePosixOnly(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}} (as on Windows)", name=name)
        return None


for loaded in [name for name in sys.modules if name.partition(".")[0] in BLOCKED]:
    del sys.modules[loaded]
sys.meta_path.insert(0, RefusePosixOnly())

import asyncio


def add_signal_handler(self, sig, callback, *args):
    raise NotImplementedError("no add_signal_handler (as on Windows)")


asyncio.AbstractEventLoop.add_signal_handler = add_signal_handler
asyncio.SelectorEventLoop.add_signal_handler = add_signal_handler
"""
RUN_CLI = BOOTSTRAP + "\nfrom zuotang_cli.cli.entry import main\nmain()\n"

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="this is Windows already")


NO_POSIX = ("-c", RUN_CLI)
"""How the interpreter runs zuotang here (``entry`` of tests.helpers.cli and start)."""


def test_the_bootstrap_really_refuses_them() -> None:
    probe = BOOTSTRAP + (
        "\nimport asyncio\n"
        "for name in BLOCKED:\n"
        "    try:\n"
        "        __import__(name)\n"
        "    except ModuleNotFoundError:\n"
        "        print('refused', name)\n"
        "loop = asyncio.new_event_loop()\n"
        "try:\n"
        "    loop.add_signal_handler(2, print)\n"
        "except NotImplementedError:\n"
        "    print('no add_signal_handler')\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.stdout.split("\n")[:4] == [
        *(f"refused {name}" for name in BLOCKED),
        "no add_signal_handler",
    ], done.stderr


def test_the_python_api_imports(tmp_path: Path) -> None:
    code = BOOTSTRAP + "\nfrom zuotang_cli import enhance, ScaleClient\nprint(enhance.__name__)\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "enhance"


def test_dry_run(tmp_path: Path) -> None:
    urls = tmp_path / "u.txt"
    urls.write_text("https://example.com/a.jpg\nhttps://example.com/b.jpg\nftp://nope\n")
    done = cli(
        "enhance",
        str(urls),
        "-o",
        str(tmp_path / "out"),
        "--dry-run",
        entry=NO_POSIX,
        env=enhance_env(None),
    )
    assert done.returncode == ExitStatus.SOME_FAILED, done.stderr  # as the run: one invalid
    assert [line.split("\t")[0] for line in done.stdout.splitlines()] == [
        "call",
        "call",
        "invalid",
    ]
    assert "would take about" in done.stderr and "Traceback" not in done.stderr


def test_a_real_batch_saves_every_image_with_its_report(tmp_path: Path, emulator: Any) -> None:
    emu = emulator(cheap=True, qps=50)
    out = tmp_path / "out"
    urls = url_list(tmp_path, emu, 12)
    done = cli(
        "enhance",
        str(urls),
        "-o",
        str(out),
        "--qps",
        "20",
        entry=NO_POSIX,
        env=enhance_env(emu.endpoint),
    )
    assert done.returncode == ExitStatus.SUCCESS, done.stderr
    assert "Traceback" not in done.stderr
    rows = read_report(out / "report.csv")
    assert [row["outcome"] for row in rows] == ["done"] * 12
    assert all(Path(row["output"]).is_file() for row in rows)
    assert sorted(done.stdout.split()) == sorted(row["output"] for row in rows)
    assert emu.stats()["billed"] == 12
    again = cli("enhance", str(urls), "-o", str(out), entry=NO_POSIX, env=enhance_env(emu.endpoint))
    assert again.returncode == ExitStatus.SUCCESS, again.stderr  # the lock, the journal
    assert {row["outcome"] for row in read_report(out / "report.csv")} == {"skipped"}
    assert emu.stats()["billed"] == 12


@pytest.mark.timing
def test_ctrl_c_still_finishes_the_calls_in_flight(tmp_path: Path, emulator: Any) -> None:
    emu = emulator(cheap=True, qps=50, latency=(1.5, 1.5))
    out = tmp_path / "out"
    proc = start(
        *("enhance", str(url_list(tmp_path, emu, 200))),
        entry=NO_POSIX,
        env={**enhance_env(emu.endpoint), "ZUOTANG_QPS": "10", "ZUOTANG_OUTPUT_DIR": str(out)},
    )
    wait_until(lambda: emu.stats()["in_flight"] >= 2, timeout=20)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == ExitStatus.INTERRUPTED, stderr
    assert "calls in flight" in stderr and "Traceback" not in stderr
    rows = read_report(out / "report.csv")
    done = [row for row in rows if row["outcome"] == "done"]
    assert len(done) >= 2  # those in flight at Ctrl-C were saved, not thrown away
    assert emu.stats()["billed"] == len(done)
    assert len(stdout.split()) == len(done)
