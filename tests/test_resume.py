"""Safe to re-run: the journal, the lock, crash safety and the cost guard, against the
emulator's billed counters."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import (
    cli,
    enhance,
    report_rows,
    start_zuotang,
    url_list,
    wait_until,
    write_list,
    zuotang,
)
from zuotang_cli.models import InputItem, InputKind, Outcome, Record
from zuotang_cli.status import ExitStatus
from zuotang_cli.store import planner
from zuotang_cli.store.journal import Entry, Journal, Status, entry_key
from zuotang_cli.store.planner import Action, OutputListing, Plan

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tiff"}


def saved_images(out: Path) -> list[Path]:
    return sorted(
        p for p in out.rglob("*") if p.suffix in IMAGE_SUFFIXES and ".zuotang" not in p.parts
    )


def part_files(out: Path) -> list[Path]:
    return list(out.rglob("*.part"))


def test_a_rerun_makes_no_new_call_and_skips_everything(tmp_path: Path, emulator: Any) -> None:
    emu = emulator(cheap=True, qps=100)
    urls, out = url_list(tmp_path, emu, 12), tmp_path / "out"
    first = enhance(emu, str(urls), "-o", str(out))
    assert first.returncode == ExitStatus.SUCCESS, first.stderr
    calls = emu.stats()["calls"]
    again = enhance(emu, str(urls), "-o", str(out))
    assert again.returncode == ExitStatus.SUCCESS, again.stderr
    assert emu.stats()["calls"] == calls == 12
    rows = report_rows(out)
    assert [r["outcome"] for r in rows] == ["skipped"] * 12
    assert sorted(again.stdout.split()) == sorted(first.stdout.split())  # paths still listed


def test_appending_ten_urls_makes_exactly_ten_calls(tmp_path: Path, emulator: Any) -> None:
    emu = emulator(cheap=True, qps=100)
    out = tmp_path / "out"
    assert enhance(emu, str(url_list(tmp_path, emu, 15)), "-o", str(out)).returncode == 0
    before = emu.stats()
    assert enhance(emu, str(url_list(tmp_path, emu, 25)), "-o", str(out)).returncode == 0
    after = emu.stats()
    assert after["calls"] - before["calls"] == 10
    assert after["billed"] - before["billed"] == 10
    assert all(n == 1 for n in after["billed_by_input"].values())
    assert len(saved_images(out)) == 25


def test_a_deleted_output_is_downloaded_again_without_a_call(tmp_path: Path, emulator: Any) -> None:
    emu = emulator(cheap=True, qps=100)
    urls, out = url_list(tmp_path, emu, 5), tmp_path / "out"
    first = enhance(emu, str(urls), "-o", str(out))
    victim = Path(first.stdout.split()[2])
    victim.unlink()
    before = emu.stats()
    again = enhance(emu, str(urls), "-o", str(out))
    assert again.returncode == ExitStatus.SUCCESS, again.stderr
    after = emu.stats()
    assert after["calls"] == before["calls"]
    assert after["downloads"] == before["downloads"] + 1
    assert victim.is_file()
    redone = [r for r in report_rows(out) if r["outcome"] == "done"]
    assert len(redone) == 1 and "moved or deleted" in redone[0]["message"]


def test_an_output_touched_but_unchanged_is_still_skipped(tmp_path: Path, emulator: Any) -> None:
    """A new mtime alone sends the check to the SHA-256 taken while downloading: it must be
    the file's, or every touched output would be paid for again."""
    emu = emulator(cheap=True, qps=100)
    urls, out = url_list(tmp_path, emu, 4), tmp_path / "out"
    first = enhance(emu, str(urls), "-o", str(out))
    for path in first.stdout.split():
        os.utime(path, ns=(0, 1_000_000_000))
    again = enhance(emu, str(urls), "-o", str(out))
    assert again.returncode == ExitStatus.SUCCESS, again.stderr
    assert emu.stats()["calls"] == 4
    assert emu.stats()["downloads"] == 4
    assert [r["outcome"] for r in report_rows(out)] == ["skipped"] * 4


def test_force_calls_again(tmp_path: Path, emulator: Any) -> None:
    emu = emulator(cheap=True, qps=100)
    urls, out = url_list(tmp_path, emu, 3), tmp_path / "out"
    enhance(emu, str(urls), "-o", str(out))
    assert enhance(emu, str(urls), "-o", str(out), "--force").returncode == 0
    assert emu.stats()["billed"] == 6


def plan_of(journal: Journal, entry: Entry | None, **rules: Any) -> Plan:
    root = str(journal.root)
    return planner.plan(entry, present=OutputListing(root), root=root, **rules)


def test_a_paid_but_unsaved_result_is_downloaded_not_paid_again(tmp_path: Path) -> None:
    """The journal's plan for each state (pure; the entry written by hand)."""
    item = InputItem(0, "https://x/a.png", InputKind.URL, url="https://x/a.png")
    key = entry_key(item, "clean", None)
    record = Record(input=item.source, outcome=Outcome.FAILED)
    with Journal.open(tmp_path) as journal:
        now = time.time()

        def action(at: float) -> Action:
            return plan_of(
                journal, journal.get(key), force=False, retry_failed=False, now=at
            ).action

        assert action(now) is Action.CALL
        journal.calling(key, record)
        assert action(now) is Action.CALL
        journal.paid(key, record, "https://cdn/x.png", now)
        plan = plan_of(journal, journal.get(key), force=False, retry_failed=False, now=now)
        assert plan.action is Action.DOWNLOAD
        later = now + 3600
        assert action(later) is Action.CALL
        journal.failed(key, Record(input=item.source, outcome=Outcome.FAILED, error_class="x"))
        entry = journal.get(key)
        assert entry is not None and entry.status is Status.PAID  # the paid link is kept
        journal.failed(key, record)
        failed = Record(input=item.source, outcome=Outcome.FAILED, error_class="state-7")
        key2 = entry_key(item, "face", 2)
        journal.failed(key2, failed)
        skip = plan_of(journal, journal.get(key2), force=False, retry_failed=False, now=now)
        assert skip.action is Action.SKIP_FAILED
        retry = plan_of(journal, journal.get(key2), force=False, retry_failed=True, now=now)
        assert retry.action is Action.CALL


def test_final_failures_are_skipped_unless_retry_failed(tmp_path: Path, emulator: Any) -> None:
    emu = emulator(qps=100)
    missing = emu.file_url("no-such-file.png")  # state -3: final
    urls, out = write_list(tmp_path / "u.txt", [missing]), tmp_path / "out"
    assert enhance(emu, str(urls), "-o", str(out)).returncode == ExitStatus.SOME_FAILED
    assert enhance(emu, str(urls), "-o", str(out)).returncode == ExitStatus.SOME_FAILED
    assert emu.stats()["calls"] == 1
    row = report_rows(out)[0]
    assert row["outcome"] == "failed" and "--retry-failed" in row["message"]
    enhance(emu, str(urls), "-o", str(out), "--retry-failed")
    assert emu.stats()["calls"] == 2


def test_max_calls_caps_paid_calls_and_the_rest_waits(tmp_path: Path, emulator: Any) -> None:
    emu = emulator(cheap=True, qps=100)
    urls, out = url_list(tmp_path, emu, 10), tmp_path / "out"
    capped = enhance(emu, str(urls), "-o", str(out), "--max-calls", "3")
    assert capped.returncode == ExitStatus.SOME_FAILED
    assert emu.stats()["billed"] == 3
    rows = report_rows(out)
    assert sum(r["outcome"] == "done" for r in rows) == 3
    left = [r for r in rows if r["outcome"] == "not-attempted"]
    assert len(left) == 7 and all("max-calls" in r["message"] for r in left)
    assert enhance(emu, str(urls), "-o", str(out)).returncode == ExitStatus.SUCCESS
    assert emu.stats()["billed"] == 10


def test_dry_run_says_what_would_happen_and_calls_nothing(tmp_path: Path, emulator: Any) -> None:
    emu = emulator(cheap=True, qps=100)
    out = tmp_path / "out"
    enhance(emu, str(url_list(tmp_path, emu, 4)), "-o", str(out))
    urls = url_list(tmp_path, emu, 6)
    (tmp_path / "bad.txt").write_text("ftp://nope\n")
    calls = emu.stats()["calls"]
    proc = zuotang(
        str(urls),
        str(tmp_path / "bad.txt"),
        "-o",
        str(out),
        "--dry-run",
        endpoint=emu.endpoint,
        appcode=None,
    )
    assert proc.returncode == ExitStatus.SOME_FAILED, proc.stderr  # as the run would: 1 invalid
    assert emu.stats()["calls"] == calls
    actions = [line.split("\t")[0] for line in proc.stdout.splitlines()]
    assert actions.count("skip") == 4 and actions.count("call") == 2
    assert actions.count("invalid") == 1
    assert "would take about" in proc.stderr
    as_json = zuotang(str(urls), "-o", str(out), "--dry-run", "--json", endpoint=emu.endpoint)
    assert {json.loads(line)["action"] for line in as_json.stdout.splitlines()} == {
        "skip",
        "call",
    }


def test_a_second_run_on_the_same_directory_refuses(tmp_path: Path, emulator: Any) -> None:
    emu = emulator(cheap=True, qps=100, latency=(1.0, 1.0))
    urls, out = url_list(tmp_path, emu, 20), tmp_path / "out"
    first = start_zuotang(str(urls), "-o", str(out), "--qps", "5", "-q", endpoint=emu.endpoint)
    try:
        wait_until((out / ".zuotang" / "journal.sqlite").exists, timeout=20)
        second = enhance(emu, str(urls), "-o", str(out))
        assert second.returncode == ExitStatus.USAGE
        assert "in use by another zuotang run" in second.stderr
        assert second.stderr.count("\n") == 1
        waiting = enhance(emu, str(urls), "-o", str(out), "--wait-lock")
        assert waiting.returncode == ExitStatus.SUCCESS, waiting.stderr
        # It waited for the first run to end: every input was already done when it started.
        # (Not first.poll(): the first run lets go of the lock before its interpreter exits,
        # and a run that only skips can finish inside that gap.)
        assert {r["outcome"] for r in report_rows(out)} == {"skipped"}
        assert emu.stats()["calls"] == 20
    finally:
        first.wait(timeout=60)
    assert first.returncode == ExitStatus.SUCCESS
    assert emu.stats()["billed"] == 20


def test_zuotang_report_rebuilds_the_report_from_the_journal(tmp_path: Path, emulator: Any) -> None:
    emu = emulator(cheap=True, qps=100)
    out = tmp_path / "out"
    lines = [emu.file_url("a.png"), emu.file_url("b.png"), "ftp://bad"]
    enhance(emu, str(write_list(tmp_path / "u.txt", lines)), "-o", str(out))
    (out / "report.csv").unlink()
    for fmt in ("csv", "json", "jsonl"):
        proc = cli("report", str(out), "--format", fmt)
        assert proc.returncode == 0, proc.stderr
        assert "2 done" in proc.stderr
        if fmt == "json":
            assert len(json.loads(proc.stdout)) == 2
    missing = cli("report", str(tmp_path / "nothing"))
    assert missing.returncode == ExitStatus.USAGE and "no journal" in missing.stderr


@pytest.mark.parametrize(
    ("label", "kill_after", "wait_for"),
    [
        ("before any call", 0.0, None),
        ("mid-calls", None, "calls"),
        ("mid-download", None, "downloads"),
        ("late in the run", 4.0, None),
    ],
)
def test_kill_9_at_any_point_then_a_rerun_completes_with_nothing_paid_twice(
    tmp_path: Path,
    emulator: Any,
    label: str,
    kill_after: float | None,
    wait_for: str | None,
) -> None:
    n = 30
    emu = emulator(cheap=True, qps=100, latency=(0.3, 0.8), download_latency=0.4)
    urls, out = url_list(tmp_path, emu, n), tmp_path / "out"
    proc = start_zuotang(str(urls), "-o", str(out), "--qps", "10", "-q", endpoint=emu.endpoint)
    wait_until(lambda: _ready(emu, kill_after, wait_for, proc), timeout=30)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    # What the journal could not know at the kill: calls started and not recorded as
    # paid, whether still in the emulator or already billed with the reply on its way.
    # Only these may be paid again; counting the emulator's calls in flight instead
    # misses the second kind.
    unsettled = _calling_inputs(out)
    again = enhance(emu, str(urls), "-o", str(out))
    assert again.returncode == ExitStatus.SUCCESS, (label, again.stderr)
    stats = emu.stats()
    assert len(saved_images(out)) == n
    assert part_files(out) == []
    rows = report_rows(out)
    assert len(rows) == n and all(r["outcome"] in ("done", "skipped") for r in rows)
    paid_twice = {url for url, count in stats["billed_by_input"].items() if count > 1}
    assert paid_twice <= unsettled, (label, paid_twice - unsettled)
    assert len(stats["billed_by_input"]) == n


def _calling_inputs(out: Path) -> set[str]:
    """The inputs the journal holds as called but not answered."""
    path = out / ".zuotang" / "journal.sqlite"
    if not path.exists():
        return set()
    with contextlib.closing(sqlite3.connect(path)) as db:
        rows = db.execute("SELECT record FROM entries WHERE status = ?", (Status.CALLING.value,))
        return {json.loads(record)["input"] for (record,) in rows}


def _ready(emu: Any, kill_after: float | None, wait_for: str | None, proc: Any) -> bool:
    stats = emu.stats()
    if wait_for == "calls":
        return stats["in_flight"] > 0 and stats["billed"] >= 3
    if wait_for == "downloads":
        return stats["download_attempts"] > stats["downloads"] and stats["downloads"] >= 2
    started = _STARTED.setdefault(proc.pid, time.monotonic())
    return time.monotonic() - started >= (kill_after or 0.0)


_STARTED: dict[int, float] = {}
"""When each process under test was first checked (by pid), for kills after a delay."""


def journal_books(out: Path) -> dict[str, tuple[int, int]]:
    """URL -> (paid calls, expired links), as the journal's rows hold them."""
    db = sqlite3.connect(out / ".zuotang" / "journal.sqlite")
    try:
        rows = db.execute("SELECT key, paid_calls, expired_links FROM entries").fetchall()
    finally:
        db.close()
    return {key.rsplit("\0", 1)[-1]: (paid, expired) for key, paid, expired in rows}


def test_an_expired_link_is_booked_in_its_row_and_a_rerun_pays_nothing(
    tmp_path: Path, emulator: Any
) -> None:
    """The one link that expires costs its input one more paid call, and its journal row
    says why; the emulator's billed counters agree input by input, before and after a
    re-run that pays nothing."""
    emu = emulator(cheap=True, qps=100, faults={"expire": 1.0}, fault_caps={"expire": 1})
    urls, out = url_list(tmp_path, emu, 3), tmp_path / "out"
    first = enhance(emu, str(urls), "-o", str(out), "--concurrency", "1")
    assert first.returncode == ExitStatus.SUCCESS, first.stderr
    billed = emu.stats()["billed_by_input"]
    assert sorted(billed.values()) == [1, 1, 2] and emu.stats()["faults"] == {"expire": 1}
    books = journal_books(out)
    assert books == {url: (count, count - 1) for url, count in billed.items()}
    again = enhance(emu, str(urls), "-o", str(out))
    assert again.returncode == ExitStatus.SUCCESS, again.stderr
    assert emu.stats()["billed_by_input"] == billed  # the re-run paid nothing
    assert journal_books(out) == books


def test_a_paid_result_whose_link_expired_since_is_paid_again_and_booked(
    tmp_path: Path, emulator: Any
) -> None:
    """A run paid for a result and died before saving it; an hour later its link is dead:
    the re-run pays once more and books the expired link on that input's row."""
    emu = emulator(cheap=True, qps=100)
    urls, out = url_list(tmp_path, emu, 2), tmp_path / "out"
    first = enhance(emu, str(urls), "-o", str(out))
    assert first.returncode == ExitStatus.SUCCESS, first.stderr
    lost = emu.file_url("i0.png")
    db = sqlite3.connect(out / ".zuotang" / "journal.sqlite")
    with db:  # as a kill -9 between the call and the download would leave it, an hour ago
        keys = [key for (key,) in db.execute("SELECT key FROM entries")]
        (key,) = [key for key in keys if key.endswith("\0" + lost)]
        (output,) = db.execute("SELECT output FROM entries WHERE key = ?", (key,)).fetchone()
        db.execute(
            "UPDATE entries SET status = 'paid', link_expires = ? WHERE key = ?",
            (time.time() - 1, key),
        )
    db.close()
    (out / output).unlink()
    again = enhance(emu, str(urls), "-o", str(out))
    assert again.returncode == ExitStatus.SUCCESS, again.stderr
    billed = emu.stats()["billed_by_input"]
    assert billed == {lost: 2, emu.file_url("i1.png"): 1}
    assert journal_books(out) == {lost: (2, 1), emu.file_url("i1.png"): (1, 0)}
    third = enhance(emu, str(urls), "-o", str(out))
    assert third.returncode == ExitStatus.SUCCESS, third.stderr
    assert emu.stats()["billed_by_input"] == billed
    assert journal_books(out)[lost] == (2, 1)


def test_a_journal_written_before_expired_links_were_counted_gains_the_column(
    tmp_path: Path,
) -> None:
    with Journal.open(tmp_path):
        pass
    db = sqlite3.connect(tmp_path / ".zuotang" / "journal.sqlite")
    db.execute("ALTER TABLE entries DROP COLUMN expired_links")
    db.execute("INSERT INTO entries (key, status, record, updated) VALUES ('k', 'paid', '{}', 0)")
    db.commit()
    db.close()
    with Journal.open(tmp_path) as journal:
        journal.link_dead("k")
        journal.link_dead("k")  # the same dead link: counted once
    db = sqlite3.connect(tmp_path / ".zuotang" / "journal.sqlite")
    assert db.execute("SELECT expired_links FROM entries WHERE key = 'k'").fetchone() == (1,)
    db.close()
