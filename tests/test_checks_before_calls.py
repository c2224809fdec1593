"""Options are checked before any paid call: every number finite and in its range, every
file the run will write (--report, --summary-json, the output directory) writable.

Before, ``--timeout inf`` was accepted and every row failed with ``internal-error:
OverflowError``, and ``--summary-json /nonexistent/x.json`` failed only after the calls
were paid.
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import zuotang
from zuotang_cli import enhance
from zuotang_cli.app.options import EnhanceOptions
from zuotang_cli.app.session import check_numbers
from zuotang_cli.errors import UsageError
from zuotang_cli.status import ExitStatus


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--timeout", "inf"),
        ("--timeout", "nan"),
        ("--timeout", "1e9"),
        ("--qps", "nan"),
        ("--qps", "inf"),
        ("--qps", "1e9"),
        ("--stats-interval", "inf"),
        ("--max-upload", "inf"),
        ("--max-upload", "nan"),
    ],
)
def test_a_number_out_of_range_is_refused_before_any_call(
    tmp_path: Path, emulator: Any, flag: str, value: str
) -> None:
    emu = emulator(cheap=True)
    out = tmp_path / "out"
    proc = zuotang(emu.file_url("a.png"), "-o", str(out), flag, value, endpoint=emu.endpoint)
    assert proc.returncode == ExitStatus.USAGE, proc.stderr
    assert flag in proc.stderr and "Traceback" not in proc.stderr
    assert emu.stats()["calls"] == 0
    assert not out.exists()  # refused before anything was written


def blocker(tmp_path: Path) -> Path:
    path = tmp_path / "a-file"
    path.write_text("not a folder")
    return path


@pytest.mark.parametrize(
    ("flag", "where"),
    [
        ("--summary-json", lambda tmp: blocker(tmp) / "x.json"),  # its folder is a file
        ("--summary-json", lambda tmp: tmp),  # a folder where the file goes
        ("--report", lambda tmp: blocker(tmp) / "r.csv"),
    ],
)
def test_a_file_the_run_cannot_write_is_refused_before_any_call(
    tmp_path: Path, emulator: Any, flag: str, where: Any
) -> None:
    emu = emulator(cheap=True)
    target = where(tmp_path)
    proc = zuotang(
        emu.file_url("a.png"), "-o", str(tmp_path / "out"), flag, str(target), endpoint=emu.endpoint
    )
    assert proc.returncode == ExitStatus.USAGE, proc.stderr
    assert f"cannot write {flag} {target}" in proc.stderr
    assert emu.stats()["calls"] == 0


def test_the_summary_file_is_written_where_it_was_checked(tmp_path: Path, emulator: Any) -> None:
    emu = emulator(cheap=True)
    target = tmp_path / "new" / "folder" / "summary.json"
    proc = zuotang(
        emu.file_url("a.png"), "-o", str(tmp_path / "out"), "--summary-json", str(target),
        endpoint=emu.endpoint,
    )  # fmt: skip
    assert proc.returncode == ExitStatus.SUCCESS, proc.stderr
    assert target.is_file() and not list(target.parent.glob(".*"))  # no probe left


def test_the_python_api_checks_the_same_numbers(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--timeout"):
        asyncio.run(enhance(["https://example.com/a.png"], appcode="code", timeout=math.inf))
    with pytest.raises(UsageError, match="--concurrency"):
        check_numbers(EnhanceOptions(inputs=[], concurrency=0))
    check_numbers(EnhanceOptions(inputs=[]))  # the defaults are in range
