"""Done is done (issue 19): a result once paid for is never paid for again, and nothing
paid is lost to a queue or a Ctrl-C.

Each rule is proved with the emulator's billed counters, over the real CLI.  "An hour
later" is played two ways: the client's own clock (links that live less than the margin
the client keeps, so it sees them expired at once) and the host's (the emulator's control
that expires every link, while the links still say they live).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import sqlite3
from pathlib import Path
from subprocess import DEVNULL
from typing import Any

import pytest
from PIL import Image

from tests.helpers import (
    APPCODE,
    enhance,
    report_rows,
    start_zuotang,
    url_list,
    wait_until,
    write_list,
    zuotang,
    zuotang_report,
)
from zuotang_cli.status import ExitStatus

CLOCK_EXPIRED_TTL = 60.0
"""Links that live a minute: the client treats a link as dead two minutes before it is,
so a re-run sees these expired at once (the first run still downloads them)."""


def summary(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


def later(emu: Any, how: str) -> None:
    """An hour passes, for the host: every link made so far is dead (``how == "host"``);
    for the client's clock the links of a ``CLOCK_EXPIRED_TTL`` emulator already are."""
    if how == "host":
        assert emu.expire_links() > 0


def ttl_for(how: str) -> float:
    return CLOCK_EXPIRED_TTL if how == "clock" else 3600.0


@pytest.mark.parametrize("how", ["clock", "host"])
def test_moving_results_away_pays_nothing_after_links_expire(
    tmp_path: Path, emulator: Any, how: str
) -> None:
    emu = emulator(cheap=True, qps=100, link_ttl=ttl_for(how))
    listing, out = url_list(tmp_path, emu, 8), tmp_path / "out"
    first = enhance(emu, str(listing), "-o", str(out))
    assert first.returncode == ExitStatus.SUCCESS, first.stderr
    assert len(first.stdout.split()) == 8
    # stdout lists each file as it is saved, not in input order: i0..i3's from the report
    saved = [row["output"] for row in report_rows(out)]
    assert sorted(saved) == sorted(first.stdout.split())
    elsewhere = tmp_path / "www"
    elsewhere.mkdir()
    for path in saved[:2]:  # the cron pipeline: `| xargs -I{} mv {} /var/www/img/`
        shutil.move(path, elsewhere)
    Path(saved[2]).unlink()
    edited = Path(saved[3])
    with Image.open(edited) as img:  # mogrify / jpegoptim: the same name, new bytes
        img.convert("L").save(edited, "PNG")
    mine = edited.read_bytes()
    later(emu, how)
    downloads = emu.stats()["downloads"]
    again = enhance(emu, str(listing), "-o", str(out))
    assert again.returncode == ExitStatus.SUCCESS, again.stderr
    stats = emu.stats()
    assert stats["billed"] == 8 and stats["calls"] == 8
    assert stats["downloads"] == downloads  # nothing fetched again either
    assert edited.read_bytes() == mine
    rows = {row["input"]: row for row in report_rows(out)}
    assert {row["outcome"] for row in rows.values()} == {"skipped"}
    gone = [rows[emu.file_url(f"i{i}.png")]["message"] for i in range(3)]
    assert all("moved or deleted" in message and "--force" in message for message in gone)
    assert not Path(saved[2]).exists()  # not fetched again: done is done


def test_a_missing_result_is_downloaded_again_free_while_its_link_lives(
    tmp_path: Path, emulator: Any
) -> None:
    emu = emulator(cheap=True, qps=100)
    listing, out = url_list(tmp_path, emu, 3), tmp_path / "out"
    first = enhance(emu, str(listing), "-o", str(out))
    Path(first.stdout.split()[1]).unlink()
    again = enhance(emu, str(listing), "-o", str(out))
    assert again.returncode == ExitStatus.SUCCESS, again.stderr
    assert emu.stats()["billed"] == 3 and emu.stats()["downloads"] == 4
    assert Path(first.stdout.split()[1]).is_file()


def test_an_edited_result_is_never_overwritten_or_paid_again(tmp_path: Path, emulator: Any) -> None:
    emu = emulator(cheap=True, qps=100)
    listing, out = url_list(tmp_path, emu, 2), tmp_path / "out"
    first = enhance(emu, str(listing), "-o", str(out))
    edited = Path(first.stdout.split()[0])
    edited.write_bytes(b"exiftool rewrote this")
    again = enhance(emu, str(listing), "-o", str(out))
    assert again.returncode == ExitStatus.SUCCESS, again.stderr
    assert emu.stats()["billed"] == 2 and emu.stats()["downloads"] == 2
    forced = enhance(emu, str(listing), "-o", str(out), "--force")
    assert forced.returncode == ExitStatus.SUCCESS, forced.stderr
    assert emu.stats()["billed"] == 3  # --force redid the untouched one only
    assert edited.read_bytes() == b"exiftool rewrote this"
    (row,) = [r for r in report_rows(out) if r["output"] == str(edited)]
    assert row["outcome"] == "skipped" and "changed since it was saved" in row["message"]


def test_force_does_not_recall_inputs_that_failed_for_good(tmp_path: Path, emulator: Any) -> None:
    emu = emulator(qps=100)
    good, missing = emu.file_url("harbour-320x240.jpg"), emu.file_url("no-such-file.png")
    listing, out = write_list(tmp_path / "u.txt", [good, missing]), tmp_path / "out"
    assert enhance(emu, str(listing), "-o", str(out)).returncode == ExitStatus.SOME_FAILED
    assert emu.stats()["billed_by_input"] == {good: 1, missing: 1}
    forced = enhance(emu, str(listing), "-o", str(out), "--force")
    assert forced.returncode == ExitStatus.SOME_FAILED
    assert emu.stats()["billed_by_input"] == {good: 2, missing: 1}
    retried = enhance(emu, str(listing), "-o", str(out), "--retry-failed")
    assert retried.returncode == ExitStatus.SOME_FAILED
    assert emu.stats()["billed_by_input"] == {good: 2, missing: 2}


@pytest.mark.timing
def test_a_double_ctrl_c_counts_calls_cut_short(tmp_path: Path, emulator: Any) -> None:
    emu = emulator(cheap=True, qps=100, latency=(4.0, 4.0))
    listing, out = url_list(tmp_path, emu, 40), tmp_path / "out"
    numbers = tmp_path / "summary.json"
    proc = start_zuotang(
        *(str(listing), "-o", str(out), "--qps", "100", "--summary-json", str(numbers)),
        endpoint=emu.endpoint,
        stdout=DEVNULL,
    )
    wait_until(lambda: emu.stats()["in_flight"] == 40, timeout=30)
    proc.send_signal(signal.SIGINT)
    assert proc.stderr is not None
    said = proc.stderr.readline()
    assert "40 calls in flight" in said and "billed" in said, said
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == ExitStatus.INTERRUPTED, stderr
    wait_until(lambda: emu.stats()["in_flight"] == 0, timeout=30)  # the service finishes
    billed = emu.stats()["billed"]
    assert billed == 40  # the service bills what it finished, whoever hung up
    figures = summary(numbers)
    assert figures["paid_calls"] + figures["possibly_paid"] >= billed
    rows = report_rows(out)
    assert len(rows) == 40 and all("possibly paid" in row["message"] for row in rows)
    assert all(row["paid_calls"] == "1" for row in rows)
    # Their one paid call without a result is counted: --paid-retries 0 pays no more.
    again = enhance(emu, str(listing), "-o", str(out), "--paid-retries", "0")
    assert again.returncode == ExitStatus.SOME_FAILED, again.stderr
    assert emu.stats()["billed"] == 40


def test_after_kill_9_the_report_marks_calls_in_flight_interrupted(
    tmp_path: Path, emulator: Any
) -> None:
    emu = emulator(cheap=True, qps=100, latency=(3.0, 3.0))
    listing, out = url_list(tmp_path, emu, 6), tmp_path / "out"
    proc = start_zuotang(
        *(str(listing), "-o", str(out), "--qps", "100"),
        endpoint=emu.endpoint,
        stdout=DEVNULL,
        stderr=DEVNULL,
    )
    wait_until(lambda: emu.stats()["in_flight"] == 6, timeout=30)
    proc.kill()
    proc.wait(timeout=10)
    wait_until(lambda: emu.stats()["in_flight"] == 0, timeout=30)
    listed = zuotang_report(out, "--format", "jsonl")
    rows = [json.loads(line) for line in listed.splitlines()]
    assert len(rows) == 6
    assert {row["error_class"] for row in rows} == {"interrupted"}
    assert all(row["paid_calls"] == 1 and "possibly paid" in row["message"] for row in rows)
    again = enhance(emu, str(listing), "-o", str(out), "--paid-retries", "0")
    assert again.returncode == ExitStatus.SOME_FAILED
    assert emu.stats()["billed"] == 6  # each possibly paid call was counted
    db = sqlite3.connect(out / ".zuotang" / "journal.sqlite")
    assert db.execute("SELECT SUM(possibly_paid) FROM entries").fetchone() == (6,)
    db.close()


def test_a_result_host_that_always_refuses_halts_instead_of_paying_on(
    tmp_path: Path, emulator: Any
) -> None:
    emu = emulator(cheap=True, qps=100, faults={"refuse": 1.0})
    listing, out = url_list(tmp_path, emu, 12), tmp_path / "out"
    first = enhance(emu, str(listing), "-o", str(out), "--concurrency", "1")
    assert first.returncode == ExitStatus.TROUBLE, first.stderr
    assert "refused" in first.stderr.splitlines()[-1]
    assert emu.stats()["billed"] == 3  # one call each, never a second one
    rows = [row for row in report_rows(out) if row["outcome"] == "failed"]
    assert len(rows) == 3 and all("re-run downloads it" in row["message"] for row in rows)
    again = enhance(emu, str(listing), "-o", str(out), "--concurrency", "1")
    assert again.returncode == ExitStatus.TROUBLE
    assert emu.stats()["billed"] == 3  # the paid results were tried first: no new call


def test_recalls_for_dead_links_count_against_the_paid_retries(
    tmp_path: Path, emulator: Any
) -> None:
    emu = emulator(cheap=True, qps=100, faults={"expire": 1.0})
    listing, out = url_list(tmp_path, emu, 3), tmp_path / "out"
    first = enhance(emu, str(listing), "-o", str(out))
    assert first.returncode == ExitStatus.SOME_FAILED
    stats = emu.stats()
    assert set(stats["billed_by_input"].values()) == {2}  # the call and one paid retry
    assert {row["error_class"] for row in report_rows(out)} == {"link-expired"}
    again = enhance(emu, str(listing), "-o", str(out))
    assert again.returncode == ExitStatus.SOME_FAILED
    assert emu.stats()["billed"] == 6  # the budget is spent over all runs
    assert all("--retry-failed" in row["message"] for row in report_rows(out))


def test_equivalent_urls_are_one_input(tmp_path: Path, emulator: Any) -> None:
    emu = emulator(cheap=True, qps=100)
    plain = emu.file_url("i1.png")
    same = [
        plain.replace("/i1.png", "/i%31.png"),
        plain.replace("/files/", "/files/./"),
        plain.replace("/files/", "/files/x/../"),
    ]
    out = tmp_path / "out"
    proc = enhance(emu, plain, *same, "-o", str(out))
    assert proc.returncode == ExitStatus.SUCCESS, proc.stderr
    assert emu.stats()["billed"] == 1
    assert len(proc.stdout.split()) == 1  # one saved file, listed once
    again = enhance(emu, *same, "-o", str(out))
    assert again.returncode == ExitStatus.SUCCESS, again.stderr
    assert emu.stats()["billed"] == 1


def test_a_journal_keyed_before_normalization_is_migrated_not_repaid(
    tmp_path: Path, emulator: Any
) -> None:
    emu = emulator(cheap=True, qps=100)
    url = emu.file_url("i1.png").replace("/i1.png", "/i%31.png")
    out = tmp_path / "out"
    assert enhance(emu, url, "-o", str(out)).returncode == ExitStatus.SUCCESS
    db = sqlite3.connect(out / ".zuotang" / "journal.sqlite")
    (key,) = db.execute("SELECT key FROM entries").fetchone()
    db.execute("UPDATE entries SET key = ?", (key.replace("/i1.png", "/i%31.png"),))
    db.execute("UPDATE names SET key = ?", (key.replace("/i1.png", "/i%31.png"),))
    db.execute("UPDATE meta SET value = '2' WHERE name = 'format'")
    db.commit()
    db.close()
    again = enhance(emu, url, "-o", str(out))
    assert again.returncode == ExitStatus.SUCCESS, again.stderr
    assert emu.stats()["billed"] == 1
    assert [row["outcome"] for row in report_rows(out)] == ["skipped"]


def test_stdout_lists_each_saved_file_once_per_run(tmp_path: Path, emulator: Any) -> None:
    emu = emulator(cheap=True, qps=100)
    url = emu.file_url("i1.png")
    out = tmp_path / "out"
    proc = enhance(emu, url, url + "#again", emu.file_url("i2.png"), "-o", str(out))
    assert proc.returncode == ExitStatus.SUCCESS, proc.stderr
    assert len(proc.stdout.split()) == len(set(proc.stdout.split())) == 2
    assert len(report_rows(out)) == 3


CLI_FLAGS: dict[str, tuple[tuple[str, ...], Any]] = {
    # EnhanceOptions field: (the command's flags, the Python API's keyword value)
    "type": (("--type", "face"), "face"),
    "scale": (("--scale", "2"), 2),
    "recursive": (("--recursive",), True),
    "include": (("--include", "*.png", "--include", "sub/*"), ("*.png", "sub/*")),
    "exclude": (("--exclude", "skip*", "--exclude", "deeper/*"), ("skip*", "deeper/*")),
    "qps": (("--qps", "7"), 7.0),
    "concurrency": (("--concurrency", "3"), 3),
    "retries": (("--retries", "2"), 2),
    "timeout": (("--timeout", "60"), 60.0),
    "billing": (("--billing", "success-only"), "success-only"),
    "body": (("--body", "multipart"), "multipart"),
    "paid_retries": (("--paid-retries", "0"), 0),
    "max_upload": (("--max-upload", "1"), 1024 * 1024),
    "polls_free": (("--polls-free",), True),
    "force": (("--force",), True),
    "retry_failed": (("--retry-failed",), True),
    "max_calls": (("--max-calls", "3"), 3),
    "wait_lock": (("--wait-lock",), True),
    "probe": (("--probe",), True),
    "name": (("--name", "{type}/{stem}.{ext}"), "{type}/{stem}.{ext}"),
    "format": (("--format", "webp"), "webp"),
    "quality": (("--quality", "80"), 80),
    "strip_gps": (("--strip-gps",), True),
    "send_files": (("--send-files", "bucket"), "bucket"),
    "upload_to": (("--upload-to", "s3://photos/in"), "s3://photos/in"),
    "upload_endpoint": (("--upload-endpoint", "http://127.0.0.1:9"), "http://127.0.0.1:9"),
    "keep_uploads": (("--keep-uploads",), True),
    "upload_concurrency": (("--upload-concurrency", "2"), 2),
}
"""Every option that can change what a run does; the others only change what it prints."""
PRINTING = {"json", "quiet", "verbose", "print0", "gallery", "stats_interval", "summary_json"}
GIVEN = {
    "inputs", "output_dir", "appcode", "app_key", "app_secret", "auth", "endpoint", "report",
    "dry_run",
}  # fmt: skip


def test_the_python_api_and_the_cli_plan_the_same(tmp_path: Path, emulator: Any) -> None:
    from dataclasses import fields

    import zuotang_cli
    from zuotang_cli.app.options import EnhanceOptions

    assert {f.name for f in fields(EnhanceOptions)} == set(CLI_FLAGS) | PRINTING | GIVEN
    emu = emulator(qps=100)
    photos = tmp_path / "photos"
    for name in ("a.png", "b.jpg", "skip-me.png", "sub/c.png", "sub/d.png", "deeper/e.png"):
        path = photos / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (40 + len(name), 30), (len(name) * 9, 80, 120)).save(
            path, "JPEG" if name.endswith(".jpg") else "PNG"
        )
    out = tmp_path / "out"
    # some history: one done, one failed for good, with these very type and scale
    known = [emu.file_url("harbour-320x240.jpg"), emu.file_url("nope.png")]
    listing = write_list(tmp_path / "u.txt", known)
    history = enhance(emu, str(listing), str(photos / "sub" / "c.png"), "-o", str(out))
    assert history.returncode == ExitStatus.SOME_FAILED
    history = enhance(emu, str(listing), "-o", str(out), "--type", "face", "--scale", "2")
    assert history.returncode == ExitStatus.SOME_FAILED
    sources = [str(listing), str(photos)]
    flags = [flag for cli, _ in CLI_FLAGS.values() for flag in cli]
    cli = zuotang(*sources, "-o", str(out), "--dry-run", "--json", *flags, endpoint=emu.endpoint)
    assert cli.returncode == ExitStatus.SOME_FAILED, cli.stderr
    planned_by_cli = [json.loads(line) for line in cli.stdout.splitlines()]
    outcome = asyncio.run(
        zuotang_cli.enhance(
            sources,
            appcode=APPCODE,
            endpoint=emu.endpoint,
            output_dir=out,
            dry_run=True,
            **{name: value for name, (_, value) in CLI_FLAGS.items()},
        )
    )
    planned_by_api = [
        {"schema": 1, "input": source, "action": action, "reason": reason}
        for source, action, reason in outcome.plan
    ]
    assert planned_by_api == planned_by_cli
    assert outcome.exit_status == cli.returncode
    inputs = {row["input"] for row in planned_by_cli}
    assert str(photos / "b.jpg") not in inputs and str(photos / "skip-me.png") not in inputs
    assert str(photos / "deeper" / "e.png") not in inputs
    assert {str(photos / "a.png"), str(photos / "sub" / "d.png")} <= inputs
    assert emu.stats()["billed"] == 5  # the dry runs paid nothing


def test_paid_work_is_settled_before_new_calls(tmp_path: Path, emulator: Any) -> None:
    emu = emulator(cheap=True, qps=100)
    old = [emu.file_url(f"old{i}.png") for i in range(5)]
    out = tmp_path / "out"
    emu.hold_downloads()  # the object store stalls: five results paid for, none saved
    killed = start_zuotang(
        *old, "-o", str(out), "--qps", "100", endpoint=emu.endpoint, stdout=DEVNULL, stderr=DEVNULL
    )
    wait_until(lambda: emu.stats()["download_attempts"] == 5, timeout=30)
    killed.kill()
    killed.wait(timeout=10)
    emu.hold_downloads(False)
    # A list of new inputs first, naming one of the old ones last.
    new = [emu.file_url(f"new{i}.png") for i in range(5)]
    listing = write_list(tmp_path / "new.txt", [*new, old[3]])
    numbers = tmp_path / "summary.json"
    again = enhance(emu, str(listing), "-o", str(out), "--summary-json", str(numbers))
    assert again.returncode == ExitStatus.SUCCESS, again.stderr
    stats = emu.stats()
    assert stats["billed"] == 10  # nothing paid twice
    settled = stats["download_arrivals"][5:10]
    new_calls = stats["arrivals"][5:]
    assert len(settled) == 5 and len(new_calls) == 5
    assert max(settled) < min(new_calls)  # every paid result fetched before a new call
    rows = report_rows(out)
    assert sorted(row["input"] for row in rows[:6]) == sorted([*new, old[3]])
    unlisted = rows[6:]  # the rows of the list's own inputs come first
    assert sorted(row["input"] for row in unlisted) == sorted(old[:3] + old[4:])
    assert all(row["message"].startswith("not in this run's list") for row in unlisted)
    assert {row["outcome"] for row in rows} == {"done"}
    assert len(again.stdout.split()) == 10
    figures = summary(numbers)
    assert (figures["recovered"], figures["recovered_unlisted"]) == (5, 4)
    assert "recovered: 5 paid results" in again.stderr


@pytest.mark.timing
def test_slow_downloads_never_let_a_link_expire(tmp_path: Path, emulator: Any) -> None:
    """86 results that each take 3 s to download, whose links live 5 s: at 20 calls a
    second they come in far faster than a fixed pool of downloads could fetch them."""
    emu = emulator(cheap=True, qps=100, link_ttl=5.0, download_latency=3.0)
    listing, out = url_list(tmp_path, emu, 86), tmp_path / "out"
    proc = enhance(emu, str(listing), "-o", str(out), "--qps", "20")
    assert proc.returncode == ExitStatus.SUCCESS, proc.stderr
    stats = emu.stats()
    assert stats["billed"] == 86 and stats["downloads"] == 86
    assert {row["outcome"] for row in report_rows(out)} == {"done"}
