"""File descriptors and OS errors: a run fits the open-file limit, only the disk's own
refusals are disk errors, and a stderr that is gone never fails an image."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import start_zuotang, url_list, write_list
from zuotang_cli.engine import fdlimit
from zuotang_cli.outputs.report import read_report
from zuotang_cli.status import ExitStatus
from zuotang_cli.store import download
from zuotang_cli.store.download import DownloadFailed

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX resource limits")


# -- the open-file limit ------------------------------------------------------------------


def test_what_fits_is_left_alone() -> None:
    assert fdlimit.fit(100, 10, 4096) == fdlimit.Fit(100, 10)
    assert fdlimit.fit(3000, 64, None) == fdlimit.Fit(3000, 64)


def test_too_many_for_the_limit_are_cut_to_fit_and_said_once() -> None:
    fitted = fdlimit.fit(960, 60, 128)
    used = fdlimit.RESERVED + fitted.calls + fdlimit.PER_DOWNLOAD * fitted.downloads
    assert used <= 128 and fitted.calls >= 40 and fitted.downloads >= 4
    assert fitted.note is not None and "128" in fitted.note and "ulimit -n" in fitted.note


def test_even_a_tiny_limit_leaves_a_working_batch() -> None:
    fitted = fdlimit.fit(960, 60, 20)
    assert fitted.calls >= fdlimit.MIN_CALLS and fitted.downloads >= fdlimit.MIN_DOWNLOADS


@posix_only
def test_the_soft_limit_is_raised_toward_the_hard_one() -> None:
    code = (
        "import resource; from zuotang_cli.engine import fdlimit\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (64, 4096))\n"
        "print(fdlimit.open_file_limit(), resource.getrlimit(resource.RLIMIT_NOFILE)[0])\n"
    )
    hard = _hard_limit()
    if hard < 4096:
        pytest.skip(f"the hard limit here is {hard}")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["4096", "4096"]


def _hard_limit() -> int:
    import resource

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return 1 << 30 if hard == resource.RLIM_INFINITY else hard


def _limit_open_files(limit: int) -> Callable[[], None]:
    def apply() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    return apply


@posix_only
@pytest.mark.slow
def test_at_ulimit_128_every_image_is_saved(tmp_path: Path, emulator: Any) -> None:
    """Soft and hard 128 (cannot be raised), --qps 30, calls of 1-2 s: 960 calls in flight
    would need far more descriptors; the run fits itself to the limit and saves all."""
    emu = emulator(cheap=True, qps=30, latency=(1.0, 2.0))
    out = tmp_path / "out"
    proc = start_zuotang(
        str(url_list(tmp_path, emu, 150)),
        *("-o", str(out), "--qps", "30"),
        endpoint=emu.endpoint,
        preexec_fn=_limit_open_files(128),
        stdout=subprocess.DEVNULL,
        text=False,
    )
    _, stderr = proc.communicate(timeout=120)
    text = stderr.decode()
    assert proc.returncode == ExitStatus.SUCCESS, text
    assert text.count("the open-file limit is 128") == 1
    rows = read_report(out / "report.csv")
    assert len(rows) == 150 and {row["outcome"] for row in rows} == {"done"}
    assert emu.stats()["billed"] == 150


# -- what an OS error is ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "error_class", "retryable"),
    [
        (errno.ENOSPC, "disk-error", False),
        (errno.EROFS, "disk-error", False),
        (errno.EACCES, "disk-error", False),
        (errno.EPERM, "disk-error", False),
        (errno.EMFILE, "too-many-open-files", True),
        (errno.ENFILE, "too-many-open-files", True),
        (errno.EPIPE, "os-error", True),
        (errno.EIO, "os-error", True),
    ],
)
def test_only_the_disk_own_refusals_are_disk_errors(
    tmp_path: Path, code: int, error_class: str, retryable: bool
) -> None:
    with pytest.raises(DownloadFailed) as caught, download._disk_errors(tmp_path / "x.png"):
        raise OSError(code, os.strerror(code))
    assert (caught.value.error_class, caught.value.retryable) == (error_class, retryable)


@posix_only
def test_a_reader_of_stderr_that_went_away_fails_no_image(tmp_path: Path, emulator: Any) -> None:
    """`zuotang enhance -v ... 2>&1 | head -1`: stdout and stderr into a pipe whose reader
    leaves after one line; every paid result is still saved, none a disk error."""
    emu = emulator(cheap=True, qps=100)
    out = tmp_path / "out"
    read_end, write_end = os.pipe()
    proc = start_zuotang(
        str(url_list(tmp_path, emu, 40)),
        *("-o", str(out), "--qps", "50", "-v"),
        endpoint=emu.endpoint,
        stdout=write_end,
        stderr=write_end,
    )
    os.close(write_end)
    with os.fdopen(read_end, "rb") as reader:
        assert reader.readline()
    assert proc.wait(timeout=120) == ExitStatus.SUCCESS
    rows = read_report(out / "report.csv")
    assert [row["outcome"] for row in rows] == ["done"] * 40


@posix_only
def test_a_closed_stderr_fails_no_image(tmp_path: Path, emulator: Any) -> None:
    emu = emulator(cheap=True, qps=100)
    out = tmp_path / "out"
    lines = [emu.file_url("i0.png"), "ftp://not-http", emu.file_url("i1.png")]
    proc = start_zuotang(
        str(write_list(tmp_path / "u.txt", lines)),
        *("-o", str(out), "-v"),
        endpoint=emu.endpoint,
        preexec_fn=lambda: os.close(2),
        stdout=subprocess.DEVNULL,
        stderr=None,
    )
    assert proc.wait(timeout=120) == ExitStatus.SOME_FAILED  # the ftp line, nothing else
    outcomes = [row["outcome"] for row in read_report(out / "report.csv")]
    assert sorted(outcomes) == ["done", "done", "invalid"]
