"""Never pay twice for a result we already have (issue 12): the journal owns identity.

Each rule is proved with the emulator's billed counters, over the real CLI."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import time
from pathlib import Path
from subprocess import DEVNULL
from typing import Any

import pytest
from PIL import Image

from tests.helpers import (
    enhance,
    first_ctrl_c_taken,
    report_rows,
    start_zuotang,
    wait_until,
    write_list,
    zuotang,
    zuotang_report,
)
from zuotang_cli.status import ExitStatus


def image(path: Path, size: tuple[int, int], shade: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (shade, 90, 200)).save(path, "PNG")
    return path


def test_moving_the_output_directory_pays_nothing(tmp_path: Path, emulator: Any) -> None:
    # Links that live a minute, under the two minutes the client keeps as a margin: to the
    # client they are dead at once.
    emu = emulator(link_ttl=60.0, qps=50)
    urls = write_list(
        tmp_path / "u.txt",
        [emu.file_url("harbour-320x240.jpg"), emu.file_url("garden-480x640.png")],
    )
    out = tmp_path / "out"
    assert enhance(emu, str(urls), "-o", str(out)).returncode == ExitStatus.SUCCESS
    moved = tmp_path / "elsewhere" / "renamed"
    moved.parent.mkdir()
    shutil.move(str(out), str(moved))
    assert emu.expire_links() == 2  # and to the host: only the journal can save the bill
    again = enhance(emu, str(urls), "-o", str(moved))
    assert again.returncode == ExitStatus.SUCCESS, again.stderr
    stats = emu.stats()
    assert stats["billed"] == 2 and stats["downloads"] == 2  # no call, no download
    rows = report_rows(moved)
    assert [r["outcome"] for r in rows] == ["skipped", "skipped"]
    assert all(Path(r["output"]).is_relative_to(moved) for r in rows)


def test_a_journal_of_the_old_format_is_migrated_not_discarded(
    tmp_path: Path, emulator: Any
) -> None:
    emu = emulator(qps=50)
    photo = image(tmp_path / "in" / "photo.png", (64, 48))
    out = tmp_path / "out"
    assert enhance(emu, str(photo), "-o", str(out)).returncode == ExitStatus.SUCCESS
    # Make it the journal of the version before: absolute outputs, files keyed by their
    # path, size and mtime, no names or digests.
    db = sqlite3.connect(out / ".zuotang" / "journal.sqlite")
    (key, output) = db.execute("SELECT key, output FROM entries").fetchone()
    stat = photo.stat()
    old_key = key.rsplit("\0", 1)[0] + f"\0{photo.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}"
    db.execute("UPDATE entries SET key = ?, output = ?", (old_key, str(out.resolve() / output)))
    db.execute("DELETE FROM names")
    db.execute("DELETE FROM files")
    db.execute("DELETE FROM meta")
    db.commit()
    db.close()
    again = enhance(emu, str(photo), "-o", str(out))
    assert again.returncode == ExitStatus.SUCCESS, again.stderr
    assert emu.stats()["billed"] == 1
    assert [r["outcome"] for r in report_rows(out)] == ["skipped"]


def test_two_folders_with_the_same_names_keep_both_results_and_pay_nothing_on_rerun(
    tmp_path: Path, emulator: Any
) -> None:
    emu = emulator(qps=50)
    image(tmp_path / "a" / "pic.png", (40, 30), shade=10)
    image(tmp_path / "b" / "pic.png", (50, 30), shade=200)
    out = tmp_path / "out"
    first = enhance(emu, str(tmp_path / "a"), str(tmp_path / "b"), "-o", str(out))
    assert first.returncode == ExitStatus.SUCCESS, first.stderr
    with Image.open(out / "a" / "pic.png") as a, Image.open(out / "b" / "pic.png") as b:
        assert (a.width, b.width) == (160, 200)  # each folder's own result, x4
    for _ in range(2):
        again = enhance(emu, str(tmp_path / "a"), str(tmp_path / "b"), "-o", str(out))
        assert again.returncode == ExitStatus.SUCCESS
    assert emu.stats()["billed"] == 2
    assert {r["outcome"] for r in report_rows(out)} == {"skipped"}


def test_names_that_differ_only_by_case_never_share_a_file(tmp_path: Path, emulator: Any) -> None:
    emu = emulator(qps=50)
    image(tmp_path / "in" / "Pic.png", (40, 30), shade=10)
    image(tmp_path / "in" / "pic.png", (48, 30), shade=200)
    out = tmp_path / "out"
    proc = enhance(emu, str(tmp_path / "in"), "-o", str(out))
    assert proc.returncode == ExitStatus.SUCCESS, proc.stderr
    rows = report_rows(out)
    outputs = {row["output"].casefold() for row in rows}
    assert len(outputs) == 2  # distinct even on a case-insensitive disk
    renamed = [row for row in rows if "another input's result" in row["message"]]
    assert len(renamed) == 1
    assert enhance(emu, str(tmp_path / "in"), "-o", str(out)).returncode == ExitStatus.SUCCESS
    assert emu.stats()["billed"] == 2


def test_a_touched_or_moved_input_pays_nothing(tmp_path: Path, emulator: Any) -> None:
    emu = emulator(qps=50)
    photo = image(tmp_path / "in" / "photo.png", (64, 48))
    out = tmp_path / "out"
    assert enhance(emu, str(photo), "-o", str(out)).returncode == ExitStatus.SUCCESS
    os.utime(photo, (time.time() + 100, time.time() + 100))
    touched = enhance(emu, str(photo), "-o", str(out))
    assert touched.returncode == ExitStatus.SUCCESS
    moved = tmp_path / "other" / "renamed.png"
    moved.parent.mkdir()
    shutil.move(str(photo), str(moved))
    again = enhance(emu, str(moved), "-o", str(out))
    assert again.returncode == ExitStatus.SUCCESS, again.stderr
    assert emu.stats()["billed"] == 1
    (row,) = [r for r in report_rows(out) if r["input"] == str(moved)]
    assert row["outcome"] == "skipped" and "same content" in row["message"]
    assert Path(row["output"]).is_file()


def test_the_same_image_given_twice_is_paid_once(tmp_path: Path, emulator: Any) -> None:
    emu = emulator(qps=50)
    photo = image(tmp_path / "in" / "a.png", (64, 48))
    copy = tmp_path / "in" / "b.png"
    shutil.copyfile(photo, copy)
    url = emu.file_url("harbour-320x240.jpg")
    out = tmp_path / "out"
    proc = enhance(emu, str(photo), str(copy), url, url + "#again", "-o", str(out))
    assert proc.returncode == ExitStatus.SUCCESS, proc.stderr
    stats = emu.stats()
    assert stats["billed"] == 2  # one image file, one URL
    rows = {row["input"]: row for row in report_rows(out)}
    assert len(rows) == 4
    assert rows[str(copy)]["outcome"] == "skipped"
    assert "duplicate of" in rows[str(copy)]["message"]
    with Image.open(rows[str(copy)]["output"]) as result:
        assert result.size == (256, 192)
    assert rows[url + "#again"]["outcome"] == "skipped"
    assert enhance(emu, str(photo), str(copy), "-o", str(out)).returncode == ExitStatus.SUCCESS
    assert emu.stats()["billed"] == 2


@pytest.mark.timing
def test_a_double_ctrl_c_leaves_a_complete_report(tmp_path: Path, emulator: Any) -> None:
    n = 12  # the first 4 in flight at the Ctrl-Cs, the rest never started
    emu = emulator(qps=4, latency=(2.0, 3.0), cheap=True)
    urls = write_list(tmp_path / "u.txt", [emu.file_url(f"i{i}.png") for i in range(n)])
    out = tmp_path / "out"
    proc = start_zuotang(
        str(urls), "-o", str(out), "--qps", "4", endpoint=emu.endpoint, stdout=DEVNULL
    )
    wait_until(lambda: emu.stats()["calls"] >= 4, timeout=20)
    proc.send_signal(signal.SIGINT)
    said = first_ctrl_c_taken(proc)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=30)
    stderr = said + stderr
    assert proc.returncode == ExitStatus.INTERRUPTED, stderr
    rows = report_rows(out)
    assert len(rows) == n and len({r["input"] for r in rows}) == n
    assert all(r["message"] for r in rows if r["outcome"] != "done")
    listed = zuotang_report(out)
    assert len(listed.splitlines()) == 1 + n, listed
    # What was paid is not lost: the next run pays again only for the calls that were
    # cut while in flight (the journal held them as calling: nobody can know their reply).
    cut = sum("interrupted after the call went out" in r["message"] for r in rows)
    assert cut >= 1
    again = zuotang(str(urls), "-o", str(out), "--qps", "4", endpoint=emu.endpoint)
    assert again.returncode == ExitStatus.SUCCESS, again.stderr
    assert emu.stats()["billed"] <= n + cut


def test_a_halt_accounts_for_every_input(tmp_path: Path, emulator: Any) -> None:
    emu = emulator(qps=50, appcodes=frozenset({"the-right-one"}), cheap=True)
    urls = write_list(tmp_path / "u.txt", [emu.file_url(f"i{i}.png") for i in range(300)])
    out = tmp_path / "out"
    proc = enhance(emu, str(urls), "-o", str(out))
    assert proc.returncode == ExitStatus.HALTED
    assert len(report_rows(out)) == 300
    assert len(zuotang_report(out).splitlines()) == 1 + 300


def test_dry_run_and_the_real_run_agree(tmp_path: Path, emulator: Any) -> None:
    emu = emulator(qps=50)
    done_url, lost_url = emu.file_url("harbour-320x240.jpg"), emu.file_url("scan-400x300.tiff")
    new_url = emu.file_url("garden-480x640.png")
    moved = image(tmp_path / "x" / "one.png", (40, 30), shade=1)
    out = tmp_path / "out"
    first = enhance(emu, done_url, lost_url, str(moved), "-o", str(out))
    assert first.returncode == ExitStatus.SUCCESS, first.stderr
    lost = next(r for r in report_rows(out) if r["input"] == lost_url)
    Path(lost["output"]).unlink()  # its link lives: downloaded again, not paid again
    renamed = tmp_path / "y" / "renamed.png"
    renamed.parent.mkdir()
    shutil.move(str(moved), str(renamed))  # the same bytes under a new name: a copy
    fresh = image(tmp_path / "z" / "fresh.png", (44, 30), shade=2)
    twin = tmp_path / "z" / "twin.png"
    shutil.copyfile(fresh, twin)  # called once, copied once
    notes = tmp_path / "z" / "notes.png"
    notes.write_text("not an image")
    inputs = [done_url, lost_url, new_url, new_url + "#2", str(renamed), str(fresh), str(twin)]
    inputs.append(str(notes))
    before = emu.stats()

    dry = enhance(emu, *inputs, "-o", str(out), "--dry-run", "--json")
    planned = {
        json.loads(line)["input"]: json.loads(line)["action"] for line in dry.stdout.splitlines()
    }
    assert planned == {
        done_url: "skip",
        lost_url: "download",
        new_url: "call",
        new_url + "#2": "skip",
        str(renamed): "copy",
        str(fresh): "call",
        str(twin): "copy",
        str(notes): "invalid",
    }
    assert emu.stats()["calls"] == before["calls"]  # the dry run called nothing

    real = enhance(emu, *inputs, "-o", str(out))
    assert real.returncode == ExitStatus.SOME_FAILED  # the invalid one
    after = emu.stats()
    actions = list(planned.values())
    assert after["calls"] - before["calls"] == actions.count("call")
    assert after["downloads"] - before["downloads"] == actions.count("call") + actions.count(
        "download"
    )
    rows = {row["input"]: row for row in report_rows(out)}
    for source, action in planned.items():
        row = rows[source]
        expected = {"call": "done", "download": "done", "skip": "skipped", "copy": "skipped"}
        assert row["outcome"] == expected.get(action, action), (source, action, row)
        if action == "copy":
            assert "cop" in row["message"] and Path(row["output"]).is_file()
    assert rows[str(twin)]["output"] != rows[str(fresh)]["output"]


def test_a_rerun_over_a_done_list_pays_nothing_and_says_so_row_by_row(
    tmp_path: Path, emulator: Any
) -> None:
    """The nightly cron case, over more inputs than one step of the reader (256): every
    row is skipped, names its saved file, and counts no paid call of this run."""
    emu = emulator(qps=1000, cheap=True)
    urls = [emu.file_url(f"img{i}.jpg") for i in range(300)]
    listing = write_list(tmp_path / "u.txt", [*urls, urls[7]])  # and one duplicate line
    out = tmp_path / "out"
    first = zuotang(str(listing), "-o", str(out), "--qps", "200", endpoint=emu.endpoint)
    assert first.returncode == ExitStatus.SUCCESS, first.stderr
    assert emu.stats()["billed"] == 300
    calls = emu.stats()["calls"]
    again = zuotang(str(listing), "-o", str(out), "--qps", "200", endpoint=emu.endpoint)
    assert again.returncode == ExitStatus.SUCCESS, again.stderr
    assert emu.stats()["billed"] == 300 and emu.stats()["calls"] == calls
    rows = report_rows(out)
    assert [r["input"] for r in rows] == [*urls, urls[7]]  # one row a line, in order
    assert {r["outcome"] for r in rows} == {"skipped"}
    assert all(r["paid_calls"] == "0" for r in rows)  # nothing paid by this run
    assert all(Path(r["output"]).is_file() for r in rows)
    assert rows[-1]["output"] == rows[7]["output"]
    # each saved file listed once: the repeated line's result is not listed again
    assert again.stdout.splitlines() == [r["output"] for r in rows[:-1]]
    assert "paid calls: 0" in again.stderr
