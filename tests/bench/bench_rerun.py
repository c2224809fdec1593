"""Re-runs over a list that is already done (the nightly cron case), before and after.

An output directory of N done URL inputs is built here: its journal written with SQL in
the layout the product reads (keys, names and records made by the product's own
functions, each record in the full JSON an existing journal holds), and every output a
hard link to one of a few small images (a file takes 65,000 links on ext4), so that a
million outputs cost a million directory entries and 50 files.  ``zuotang enhance LIST
-o OUT`` then runs over it with an endpoint nothing listens on: every input must come
back ``skipped``, with no call.  The same run is made
with the code of ``BEFORE`` (the commit before the re-run speed-up, taken from git into
a temporary folder and imported instead of the installed package) on the same directory.
"""

from __future__ import annotations

import collections
import csv
import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from PIL import Image

from tests.bench.bench_procs import APPCODE, KIB, REPO
from zuotang_cli.cells import stored_cells
from zuotang_cli.inputs.reader import iter_inputs
from zuotang_cli.models import Outcome, Record
from zuotang_cli.store import naming
from zuotang_cli.store.journal import FORMAT, Journal, entry_key, folded
from zuotang_cli.store.layout import Layout

BEFORE = "00db211"
"""The last commit before "done is done" (issue 19): a done input's file was looked at
and its stored record decoded on every re-run (7,741 lines a second at 1M here)."""
BEFORE_FORMAT = "2"
"""The journal format the code of ``BEFORE`` writes: the journal is marked so for its run
(the layout it reads is the same), else it would spend its run migrating it."""
UNREACHABLE = "http://127.0.0.1:9/tasks/visual/scale"
"""Nothing listens there: a single call would show as a failed row."""
TYPE = "clean"
BATCH = 20_000


def url(i: int) -> str:
    return f"https://img.example.com/photos/{i // 1000}/pic{i}.jpg"


def build_done(n: int, root: Path) -> tuple[Path, Path]:
    """A list of ``n`` URLs and an output directory where each one is done."""
    root.mkdir(parents=True, exist_ok=True)
    listing, out = root / "list.txt", root / "out"
    with listing.open("w", encoding="utf-8") as fh:
        fh.writelines(f"{url(i)}\n" for i in range(n))
    result = root / "result.png"
    Image.new("RGB", (32, 24), (40, 90, 160)).save(result)
    size = result.stat().st_size
    Journal.open(out).close()  # the schema and format, by the product
    db = sqlite3.connect(Layout(out).journal)
    now = time.time()
    items = iter_inputs([str(listing)], stdin=io.BytesIO())
    done = 0
    while batch := [item for _, item in zip(range(BATCH), items)]:  # noqa: B905
        # a copy of the image a batch: a file takes at most 65,000 links on ext4
        source = root / f"result-{done // BATCH}.png"
        shutil.copyfile(result, source)
        mtime_ns = source.stat().st_mtime_ns
        done += len(batch)
        entries, names = [], []
        for item in batch:
            key = entry_key(item, TYPE, None)
            relpath = naming.legacy_relpath(item, "png")  # unique without the journal
            record = Record(
                input=item.source,
                outcome=Outcome.DONE,
                output=relpath.as_posix(),
                http_status=200,
                status=200,
                state=1,
                attempts=1,
                elapsed=1.5,
                result_bytes=size,
                width=128,
                height=96,
                input_width=32,
                input_height=24,
                factor=4.0,
                paid_calls=1,
            )
            stored = json.dumps(record.as_dict(), ensure_ascii=False)
            cells = stored_cells(record)
            entries.append((key, stored, relpath.as_posix(), "0" * 64, size, mtime_ns, now, cells))
            names.append((folded(relpath), relpath.as_posix(), key))
            os.link(source, out / relpath)
        with db:
            db.executemany(
                "INSERT INTO entries (key, status, record, output, checksum, size, mtime_ns,"
                " updated, cells, paid_calls) VALUES (?, 'saved', ?, ?, ?, ?, ?, ?, ?, 1)",
                entries,
            )
            db.executemany("INSERT INTO names (folded, relpath, key) VALUES (?, ?, ?)", names)
    db.close()
    return listing, out


def code_before(workdir: Path) -> Path | None:
    """The package as it was at ``BEFORE``, unpacked under ``workdir`` (None: no git)."""
    try:
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", "--format=tar", BEFORE, "zuotang_cli"],
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    target = workdir / f"zuotang-{BEFORE}"
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(target, filter="data")
        else:  # an older Python: our own archive, nothing to filter
            tar.extractall(target)
    return target


def rerun(listing: Path, out: Path, code: Path | None) -> dict[str, Any]:
    """Time ``zuotang enhance LISTING -o OUT`` (``code``: import the package from there)."""
    env = {**os.environ, "ZUOTANG_APPCODE": APPCODE, "ZUOTANG_ENDPOINT": UNREACHABLE}
    mark_format(out, str(FORMAT) if code is None else BEFORE_FORMAT)
    if code is not None:
        env["PYTHONPATH"] = str(code)
    command = [sys.executable, "-m", "zuotang_cli", "enhance", str(listing), "-o", str(out)]
    stdout_path = out.parent / "stdout.txt"
    with stdout_path.open("wb") as stdout:
        started = time.monotonic()
        proc = subprocess.Popen(
            [*command, "-q"],
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=subprocess.PIPE,
            env=env,
            cwd=out.parent,  # not the checkout: ``-m`` would import the package from there
        )
        assert proc.stderr is not None
        stderr = proc.stderr.read()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - started
    outcomes = collections.Counter(row["outcome"] for row in _rows(out / "report.csv"))
    return {
        "exit_code": os.waitstatus_to_exitcode(status),
        "wall_s": round(wall, 2),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "peak_rss_mb": round(usage.ru_maxrss / KIB, 1),
        "outcomes": dict(outcomes),
        "stdout_lines": sum(1 for _ in stdout_path.open("rb")),
        "stderr_tail": stderr.decode(errors="replace")[-500:],
    }


def mark_format(out: Path, value: str) -> None:
    db = sqlite3.connect(Layout(out).journal)
    with db:
        db.execute("UPDATE meta SET value = ? WHERE name = 'format'", (value,))
    db.close()


def _rows(path: Path) -> Iterator[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        yield from csv.DictReader(fh)


def measure(sizes: tuple[int, ...], workdir: Path, log: Any) -> list[dict[str, Any]]:
    """One row per size: the re-run with this code, and with the code before."""
    before = code_before(workdir)
    rows = []
    for n in sizes:
        root = workdir / f"rerun-{n}"
        started = time.monotonic()
        listing, out = build_done(n, root)
        log(f"re-run over {n:,} done inputs (built in {time.monotonic() - started:.0f} s)")
        row: dict[str, Any] = {"n": n, "after": rerun(listing, out, None)}
        if before is not None:
            log(f"the same with the code of {BEFORE}")
            row["before"] = rerun(listing, out, before)
        for side in ("after", "before"):
            if side in row:
                figures = row[side]
                figures["lines_per_s"] = round(n / figures["wall_s"])
                figures["all_skipped"] = figures["outcomes"] == {"skipped": n}
        rows.append(row)
        shutil.rmtree(root)
    return rows
