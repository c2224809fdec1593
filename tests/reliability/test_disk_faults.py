"""Disk faults: an output directory that cannot be written, a folder blocked mid-run, a disk
that fills up during a download.  Each is a clear error; the journal stays intact; a re-run
completes without paying twice.

The tests run as root, so chmod cannot make a folder unwritable.  "Not writable" is
simulated by -o pointing at a regular file, or below one, or into sysfs (where even root
cannot create a folder); "a folder blocked mid-run" by a regular file where the output
layout needs a folder; "disk full" by RLIMIT_FSIZE set in the child (writes past the limit
fail with EFBIG, SIGXFSZ ignored) while the results are larger than the limit.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.disk import grow_disk, small_disk
from tests.helpers import report_rows, write_list
from tests.reliability.support import (
    Trial,
    check_saved,
    enhance,
    saved_images,
)
from zuotang_cli.status import ExitStatus

resource = pytest.importorskip("resource", reason="POSIX resource limits (RLIMIT_FSIZE)")

SUITE = "Disk faults"
DISK_ADVICE = "cannot save results"
"""The start of what the halt says on stderr."""


def journal_statuses(out: Path) -> Counter[str]:
    """The journal's entries by status, read straight from SQLite after an integrity check."""
    db = sqlite3.connect(out / ".zuotang" / "journal.sqlite")
    try:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        return Counter(status for (status,) in db.execute("SELECT status FROM entries"))
    finally:
        db.close()


@pytest.mark.parametrize(
    "where",
    ["a regular file", "below a regular file", "inside sysfs"],
)
def test_an_output_directory_that_cannot_be_written_is_refused_before_any_call(
    trial: Trial, emulator: Any, tmp_path: Path, where: str
) -> None:
    """-o names something that cannot be a writable folder: exit 2, one line, no call."""
    emu = emulator(cheap=True, qps=100)
    blocker = tmp_path / "blocker.txt"
    blocker.write_text("keep me\n")
    out = {
        "a regular file": blocker,
        "below a regular file": blocker / "out",
        "inside sysfs": Path("/sys/zuotang-reliability-out"),
    }[where]
    if where == "inside sysfs" and not Path("/sys/kernel").is_dir():
        pytest.skip("no sysfs here")
    run = enhance(trial, emu.file_url("a.png"), "-o", str(out), endpoint=emu.endpoint)
    trial.inputs += 1
    assert run.returncode == ExitStatus.USAGE, run.stderr
    assert run.stderr.count("\n") == 1 and "cannot write to output directory" in run.stderr
    assert run.stdout == ""
    assert blocker.read_text() == "keep me\n"
    assert emu.stats()["calls"] == 0
    assert not out.exists() or out == blocker
    trial.note(f"-o {where}: exit 2 before any call: {run.stderr.strip()!r}")


def test_a_report_path_that_cannot_be_written_is_refused_before_any_call(
    trial: Trial, emulator: Any, tmp_path: Path
) -> None:
    """--report below a regular file: exit 2, one line, no call."""
    emu = emulator(cheap=True, qps=100)
    blocker = tmp_path / "blocker.txt"
    blocker.write_text("keep me\n")
    run = enhance(
        trial,
        emu.file_url("a.png"),
        "-o",
        str(tmp_path / "out"),
        "--report",
        str(blocker / "run.jsonl"),
        endpoint=emu.endpoint,
    )
    trial.inputs += 1
    assert run.returncode == ExitStatus.USAGE, run.stderr
    assert run.stderr.count("\n") == 1 and "report" in run.stderr
    assert emu.stats()["calls"] == 0
    assert blocker.read_text() == "keep me\n"
    trial.note(f"--report below a regular file: exit 2 before any call: {run.stderr.strip()!r}")


def test_a_folder_blocked_mid_run_halts_and_a_rerun_downloads_without_paying(
    trial: Trial, emulator: Any, tmp_path: Path, make_image: Callable[..., Path]
) -> None:
    """A regular file stands where the mirrored layout needs a folder."""
    photos = tmp_path / "photos"
    for name, size in {"a.png": (30, 20), "b.png": (31, 20), "sub/c.png": (32, 20)}.items():
        make_image(photos / name, size)
    for i in range(6):
        make_image(photos / "sub" / f"d{i}.png", (33 + i, 20))
    n = 9
    out = tmp_path / "out"
    out.mkdir()
    (out / "sub").write_text("I am a file, not a folder\n")
    emu = emulator(cheap=True, qps=100, latency=(0.05, 0.05))
    args = (str(photos), "--recursive", "-o", str(out), "--qps", "20", "--concurrency", "2")
    first = enhance(trial, *args, endpoint=emu.endpoint)
    trial.inputs += n
    assert first.returncode == ExitStatus.TROUBLE, first.stderr[-2000:]
    assert DISK_ADVICE in first.stderr
    rows = {row["input"].removeprefix(str(photos) + "/"): row for row in report_rows(out)}
    assert len(rows) == n
    blocked = [name for name, row in rows.items() if row["error_class"] == "disk-error"]
    assert blocked and all(name.startswith("sub/") for name in blocked)
    assert all(str(out / "sub") in rows[name]["message"] for name in blocked), rows
    assert {rows[name]["outcome"] for name in ("a.png", "b.png")} == {"done"}
    outcomes = Counter(row["outcome"] for row in rows.values())
    assert outcomes["not-attempted"] >= 1  # the halt started nothing new
    statuses = journal_statuses(out)
    assert statuses["paid"] >= len(blocked)  # paid for, kept for the re-run
    billed_first = emu.stats()["billed"]

    (out / "sub").unlink()
    again = enhance(trial, *args, endpoint=emu.endpoint)
    assert again.returncode == ExitStatus.SUCCESS, again.stderr[-2000:]
    rows_again = report_rows(out)
    saved = check_saved(out, rows_again)
    assert len(saved) == n == len(saved_images(out))
    stats = emu.stats()
    assert all(count == 1 for count in stats["billed_by_input"].values())
    assert stats["billed"] == n  # the blocked ones were downloaded again, not paid again
    assert journal_statuses(out) == Counter({"saved": n})
    trial.saved += n
    trial.note(
        f"a regular file where the folder 'sub/' must go: {len(blocked)} result(s) failed "
        f"'disk-error' naming the path, the run halted (exit 4, {outcomes['not-attempted']} not "
        f"attempted), the journal kept them paid; after removing the file a re-run saved "
        f"all {n}, {n - billed_first} new paid calls, none paid twice"
    )


def limit_file_size(limit: int) -> Callable[[], None]:
    """preexec_fn: files may not grow past ``limit`` bytes (EFBIG, not SIGXFSZ)."""

    def preexec() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return preexec


def test_a_disk_full_during_downloads_halts_and_a_rerun_completes(
    trial: Trial, emulator: Any, tmp_path: Path
) -> None:
    """Results of ~3 MB each; the process may write files of at most 1.5 MiB."""
    host = tmp_path / "host"
    host.mkdir()
    n = 6
    for i in range(n):  # noise: its enlargement does not compress below the limit
        noise = Image.frombytes("RGB", (300, 300), os.urandom(300 * 300 * 3))
        noise.save(host / f"noise{i}.png")
    emu = emulator(serve_dir=host, qps=100, latency=(0.0, 0.0))
    urls = write_list(tmp_path / "u.txt", [emu.file_url(f"noise{i}.png") for i in range(n)])
    out = tmp_path / "out"
    args = (str(urls), "-o", str(out), "--qps", "20", "--concurrency", "2")
    full = enhance(
        trial, *args, endpoint=emu.endpoint, preexec_fn=limit_file_size(3 * 1024 * 1024 // 2)
    )
    trial.inputs += n
    assert full.returncode == ExitStatus.TROUBLE, full.stderr[-2000:]
    assert DISK_ADVICE in full.stderr
    rows = report_rows(out)
    assert len(rows) == n  # the report itself fits: every row written
    outcomes = Counter(row["outcome"] for row in rows)
    failed = [row for row in rows if row["outcome"] == "failed"]
    assert failed and all(row["error_class"] == "disk-error" for row in failed), rows
    assert all("File too large" in row["message"] for row in failed), failed
    assert outcomes["done"] == 0 and outcomes["not-attempted"] >= 1
    assert saved_images(out) == [] and not list(out.rglob("*.part"))  # no half file anywhere
    assert journal_statuses(out)["paid"] == len(failed)
    billed_first = emu.stats()["billed"]
    assert billed_first == len(failed)

    again = enhance(trial, *args, endpoint=emu.endpoint)
    assert again.returncode == ExitStatus.SUCCESS, again.stderr[-2000:]
    saved = check_saved(out, report_rows(out))
    assert len(saved) == n
    stats = emu.stats()
    assert stats["billed"] == n and all(c == 1 for c in stats["billed_by_input"].values())
    assert journal_statuses(out) == Counter({"saved": n})
    trial.saved += n
    trial.note(
        f"disk full (RLIMIT_FSIZE 1.5 MiB, results ~3 MB): {len(failed)} downloads failed "
        f"'disk-error: File too large', the run halted (exit 4, {outcomes['not-attempted']} not "
        f"attempted, report complete, no .part or half file left, journal intact with "
        f"{len(failed)} paid); the re-run saved all {n} and downloaded the {billed_first} paid "
        f"ones without a new call"
    )


def test_a_journal_that_cannot_grow_halts_and_a_rerun_completes(
    trial: Trial, emulator: Any, tmp_path: Path
) -> None:
    """The disk fills while the journal is written (RLIMIT_FSIZE 100 KB, its WAL grows)."""
    n, concurrency = 200, 4
    emu = emulator(cheap=True, qps=1000, latency=(0.0, 0.01))
    urls = write_list(tmp_path / "u.txt", [emu.file_url(f"j{i}.png") for i in range(n)])
    out = tmp_path / "out"
    args = (str(urls), "-o", str(out), "--qps", "100", "--concurrency", str(concurrency))
    full = enhance(trial, *args, endpoint=emu.endpoint, preexec_fn=limit_file_size(100_000))
    trial.inputs += n
    assert full.returncode == ExitStatus.TROUBLE, full.stderr[-2000:]
    assert DISK_ADVICE in full.stderr and "journal" in full.stderr
    rows = report_rows(out)
    assert len(rows) == n
    outcomes = Counter(row["outcome"] for row in rows)
    assert set(outcomes) <= {"done", "failed", "not-attempted"}
    assert {row["error_class"] for row in rows if row["outcome"] == "failed"} == {"disk-error"}
    assert outcomes["not-attempted"] >= n // 2  # the halt started nothing new
    journal_statuses(out)  # still a sound database
    first = emu.stats()

    again = enhance(trial, *args, endpoint=emu.endpoint)
    assert again.returncode == ExitStatus.SUCCESS, again.stderr[-2000:]
    saved = check_saved(out, report_rows(out))
    assert len(saved) == n
    stats = emu.stats()
    twice = sum(1 for count in stats["billed_by_input"].values() if count > 1)
    # Only a call in flight when the journal stopped taking writes can be paid twice (its
    # result could not be recorded), like a kill -9 at that instant.
    assert twice <= concurrency
    assert journal_statuses(out) == Counter({"saved": n})
    trial.saved += n
    trial.billed_twice += twice
    trial.note(
        f"the journal's disk filled after {first['billed']} paid calls: "
        f"{outcomes['failed']} rows 'disk-error', {outcomes['not-attempted']} not attempted, "
        f"exit 4, report complete, journal sound; the re-run saved all {n}, {twice} paid "
        f"twice (in flight when the journal stopped, at most --concurrency {concurrency})"
    )


SCALE_SEED = 2000
"""Seeds where the disk fills in the 2,000-input run."""


def journal_results(out: Path) -> set[str]:
    """The URLs whose paid result the journal booked (a link to download, or saved)."""
    db = sqlite3.connect(out / ".zuotang" / "journal.sqlite")
    try:
        rows = db.execute(
            "SELECT key FROM entries WHERE status IN ('paid', 'pending', 'saved')"
        ).fetchall()
    finally:
        db.close()
    return {key.rsplit("\0", 1)[-1] for (key,) in rows}


@pytest.mark.reliability
@pytest.mark.timeout(600)
def test_a_disk_that_fills_mid_run_of_2000_halts_and_a_rerun_pays_nothing_it_has(
    trial: Trial, emulator: Any, tmp_path: Path
) -> None:
    """A real (tmpfs) disk of a seeded size fills during a 2,000-input run: exit 4."""
    n, concurrency = 2000, 8
    size = random.Random(SCALE_SEED).randrange(1_500_000, 5_000_000, 4096)
    emu = emulator(cheap=True, qps=1000, latency=(0.0, 0.01))
    urls = write_list(tmp_path / "u.txt", [emu.file_url(f"d{i}.png") for i in range(n)])
    with small_disk(tmp_path / "disk", size) as disk:
        out = disk / "out"
        report = tmp_path / "run.csv"  # on a disk with room: every row can be checked
        args = (str(urls), "-o", str(out), "--qps", "200", "--concurrency", str(concurrency))
        full = enhance(trial, *args, "--report", str(report), endpoint=emu.endpoint)
        trial.inputs += n
        assert full.returncode == ExitStatus.TROUBLE, full.stderr[-2000:]
        assert DISK_ADVICE in full.stderr
        rows = report_rows(tmp_path, report.name)
        first_rows = {row["input"]: row for row in rows}
        assert len(rows) == n
        outcomes = Counter(row["outcome"] for row in rows)
        assert set(outcomes) <= {"done", "failed", "not-attempted"}, outcomes
        failed = {row["error_class"] for row in rows if row["outcome"] == "failed"}
        assert failed <= {"disk-error"}, failed
        assert outcomes["not-attempted"] >= 1  # the halt started nothing new
        assert 0 < outcomes["done"] < n
        check_saved(out, rows)  # what it says it saved is whole
        assert not [p for p in out.rglob("*") if p.is_file() and p.suffix == ".part"]
        journal_statuses(out)  # still a sound database
        first = dict(emu.stats()["billed_by_input"])
        booked = journal_results(out)

        grow_disk(disk, 256 * 1024 * 1024)
        again = enhance(trial, *args, "--report", str(report), endpoint=emu.endpoint)
        assert again.returncode == ExitStatus.SUCCESS, again.stderr[-2000:]
        rows = report_rows(tmp_path, report.name)
        saved = check_saved(out, rows)
        assert len(saved) == n == len(saved_images(out))
        assert journal_statuses(out) == Counter({"saved": n})
        billed = emu.stats()["billed_by_input"]
        assert len(billed) == n and all(count >= 1 for count in billed.values())
        # What the journal had booked as a paid result, the re-run did not pay again.
        kept = sorted(booked)
        assert all(billed[url] == first[url] for url in kept)
        # Paid twice: only calls in flight when the journal could no longer write, and
        # their rows said so.
        twice = [url for url, count in billed.items() if count > 1]
        assert len(twice) <= concurrency, twice
        unbooked = [url for url in twice if "could not book it" in first_rows[url]["message"]]
        assert unbooked == twice, [first_rows[url] for url in twice]
    trial.saved += n
    trial.billed_twice += len(twice)
    trial.note(
        f"a tmpfs of {size:,} bytes (seeded) filled after {outcomes['done']} of {n} inputs "
        f"were saved: exit 4, {sum(1 for r in rows if r)} report rows, "
        f"{outcomes['failed']} 'disk-error', {outcomes['not-attempted']} not attempted, no "
        f".part file, journal sound; {len(first)} inputs billed, {len(kept)} booked paid; "
        f"after the disk grew the re-run saved all {n}, paid none of the {len(kept)} booked "
        f"again, {len(twice)} paid twice (in flight when the disk filled, at most "
        f"--concurrency {concurrency})"
    )


def limit_open_files(limit: int) -> Callable[[], None]:
    """preexec_fn: the child may hold at most ``limit`` descriptors (soft and hard)."""

    def preexec() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    return preexec


@pytest.mark.reliability
@pytest.mark.timeout(600)
def test_a_2000_input_run_at_ulimit_n_256_completes_and_a_rerun_pays_nothing(
    trial: Trial, emulator: Any, tmp_path: Path
) -> None:
    """ulimit -n 256 at --qps 200 (its default concurrency needs thousands): exit 0."""
    n = 2000
    emu = emulator(cheap=True, qps=1000, latency=(0.2, 0.5))
    urls = write_list(tmp_path / "u.txt", [emu.file_url(f"n{i}.png") for i in range(n)])
    out = tmp_path / "out"
    args = (str(urls), "-o", str(out), "--qps", "200")
    run = enhance(trial, *args, endpoint=emu.endpoint, preexec_fn=limit_open_files(256))
    trial.inputs += n
    assert run.returncode == ExitStatus.SUCCESS, run.stderr[-2000:]
    assert "open-file limit is 256" in run.stderr  # said once that the calls in flight were capped
    rows = report_rows(out)
    assert Counter(row["outcome"] for row in rows) == Counter({"done": n})
    assert len(check_saved(out, rows)) == n == len(saved_images(out))
    first = dict(emu.stats()["billed_by_input"])
    assert len(first) == n and set(first.values()) == {1}
    again = enhance(trial, *args, endpoint=emu.endpoint, preexec_fn=limit_open_files(256))
    assert again.returncode == ExitStatus.SUCCESS, again.stderr[-2000:]
    assert emu.stats()["billed_by_input"] == first  # the re-run paid nothing
    assert Counter(row["outcome"] for row in report_rows(out)) == Counter({"skipped": n})
    trial.saved += n
    trial.note(
        f"ulimit -n 256, {n} inputs at --qps 200 in {run.seconds:.0f} s: exit 0, all saved, "
        f"each billed once (max {emu.stats()['max_in_flight']} calls in flight); the re-run "
        f"({again.seconds:.0f} s) skipped all {n} and paid nothing"
    )
