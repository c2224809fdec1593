"""A disk that fills mid-run: the run halts (exit 4), yet every input keeps its one row in
a report on a disk with room, what was paid and not saved says so, and the re-run pays
nothing it already has.  A real full disk: a small tmpfs (root only, skipped elsewhere)."""

from __future__ import annotations

import csv
import io
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.disk import grow_disk, small_disk
from tests.helpers import cli, report_rows, write_list, zuotang
from zuotang_cli.status import ExitStatus

N = 200
DISK_SIZE = 400_000
"""Room for the journal and some 60 results: the disk fills early in the run."""


def rebuilt_report(out: Path) -> list[dict[str, str]]:
    """``zuotang report OUT``: the report rebuilt from the journal."""
    proc = cli("report", str(out), "--format", "csv")
    assert proc.returncode == 0, proc.stderr
    return list(csv.DictReader(io.StringIO(proc.stdout)))


@pytest.mark.parametrize("journal", ["on the full disk", "on a disk with room"])
def test_a_disk_that_fills_mid_run_leaves_one_row_per_input_and_a_rerun_pays_nothing_it_has(
    tmp_path: Path, emulator: Any, journal: str
) -> None:
    emu = emulator(cheap=True, qps=1000, latency=(0.0, 0.01))
    urls = [emu.file_url(f"f{i}.png") for i in range(N)]
    url_file = write_list(tmp_path / "u.txt", urls)
    report = tmp_path / "run.csv"  # on a disk with room
    with small_disk(tmp_path / "disk", DISK_SIZE) as disk:
        out = disk / "out"
        if journal == "on a disk with room":
            (out / ".zuotang").mkdir(parents=True)
            (tmp_path / "roomy").mkdir()
            (out / ".zuotang" / "journal.sqlite").symlink_to(tmp_path / "roomy" / "j.sqlite")
        args = (str(url_file), "-o", str(out), "--qps", "200", "--concurrency", "4")
        full = zuotang(*args, "--report", str(report), endpoint=emu.endpoint)
        assert full.returncode == ExitStatus.TROUBLE, full.stderr[-3000:]
        assert "cannot save results" in full.stderr
        assert "Traceback" not in full.stderr

        rows = report_rows(tmp_path, "run.csv")
        assert Counter(row["input"] for row in rows) == Counter(urls)  # one row each
        first = dict(emu.stats()["billed_by_input"])
        by_input = {row["input"]: row for row in rows}
        unsaved = [url for url in first if by_input[url]["outcome"] != "done"]
        assert unsaved, "the disk filled before any paid result failed to be saved"
        for url in unsaved:  # paid, not saved: the row says so
            row = by_input[url]
            assert int(row["paid_calls"]) >= 1 and "paid" in row["message"], row
        if journal == "on a disk with room":
            rebuilt = rebuilt_report(out)
            assert Counter(row["input"] for row in rebuilt) == Counter(urls)

        grow_disk(disk, 64 * 1024 * 1024)
        again = zuotang(*args, "--report", str(report), endpoint=emu.endpoint)
        assert again.returncode == ExitStatus.SUCCESS, again.stderr[-3000:]
        rows = report_rows(tmp_path, "run.csv")
        assert Counter(row["input"] for row in rows) == Counter(urls)
        assert {row["outcome"] for row in rows} <= {"done", "skipped"}
        billed = emu.stats()["billed_by_input"]
        assert set(billed) == set(urls)
        # what the first run booked as paid (and said so), the re-run did not pay again
        booked = [url for url in unsaved if "without a new call" in by_input[url]["message"]]
        assert all(billed[url] == first[url] for url in booked)
        # paid twice: only results the journal could not book, and the row said so
        twice = [url for url, count in billed.items() if count > 1]
        assert all("could not book it" in by_input[url]["message"] for url in twice), twice
        assert len(twice) <= 4  # --concurrency: in flight when the journal filled
        if journal == "on a disk with room":  # it booked every paid result
            assert booked == unsaved and not twice
