"""``zuotang watch``: a hot folder.  The settle rule and the daily cap as pure units (an
injected clock: no waiting), then the real command on real folders with the real
watcher against the emulator: files dropped as users drop them (an atomic copy, a slow
chunked write, a rename from a partial name, a copy or a touch of a done photo, a burst),
what each pays proved from the emulator's billed counters."""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.helpers import APPCODE, cli, enhance_env, report_rows, start, wait_until
from tests.reliability.support import check_saved
from zuotang_cli.app.options import EnhanceOptions, WatchOptions
from zuotang_cli.app.session import Session
from zuotang_cli.engine.budget import DailyBudget
from zuotang_cli.engine.shared import CALLS_TODAY
from zuotang_cli.inputs.watch import Settler, is_temporary
from zuotang_cli.models import Outcome, Row
from zuotang_cli.store.journal import Journal

SETTLE = "0.2"
"""--settle of the end-to-end runs: short, so that each file is taken quickly."""
WAIT = 60.0
"""Seconds a test waits for what the watcher must do before it fails."""


# -- the settle rule: pure, on a clock the test gives ------------------------------------


def test_a_file_is_taken_once_unchanged_for_the_settle_time() -> None:
    settler = Settler(2.0)
    settler.seen("/in/a.jpg", (10, 1), now=100.0)
    assert settler.due(101.9) == []
    assert settler.next_due() == 102.0
    assert settler.due(102.0) == ["/in/a.jpg"]
    assert settler.confirm("/in/a.jpg", (10, 1), now=102.0)
    assert settler.waiting == 0 and settler.due(200.0) == []


def test_a_file_still_growing_is_not_taken_until_it_stops() -> None:
    settler = Settler(2.0)
    for second, size in enumerate((10, 20, 30)):  # a chunk a second
        settler.seen("/in/a.jpg", (size, second), now=float(second))
    assert settler.due(3.9) == []
    # a chunk written without an event: the fresh look at confirmation sees it
    assert not settler.confirm("/in/a.jpg", (40, 5), now=4.0)
    assert settler.due(5.9) == []
    assert settler.confirm("/in/a.jpg", (40, 5), now=6.0)


def test_a_file_taken_is_taken_again_only_when_it_changes() -> None:
    settler = Settler(1.0)
    settler.seen("/in/a.jpg", (10, 1), now=0.0)
    assert settler.confirm("/in/a.jpg", (10, 1), now=1.0)
    settler.seen("/in/a.jpg", (10, 1), now=5.0)  # an event for nothing (a read, a chmod)
    assert settler.waiting == 0
    settler.seen("/in/a.jpg", (10, 2), now=6.0)  # a touch
    assert settler.confirm("/in/a.jpg", (10, 2), now=7.0)


def test_a_file_gone_before_it_settled_is_forgotten() -> None:
    settler = Settler(1.0)
    settler.seen("/in/sub/a.jpg", (10, 1), now=0.0)
    settler.seen("/in/sub/b.jpg", (10, 1), now=0.0)
    settler.seen("/in/c.jpg", (10, 1), now=0.0)
    assert not settler.confirm("/in/c.jpg", None, now=1.0)
    settler.gone("/in/sub")  # a folder renamed away
    assert settler.waiting == 0


@pytest.mark.parametrize(
    ("name", "temporary"),
    [
        ("photo.jpg.part", True),
        ("photo.jpg.crdownload", True),
        ("~$photo.jpg", True),
        (".photo.jpg", True),
        ("photo.jpg~", True),
        ("photo.JPG.PART", True),
        ("photo.jpg", False),
        ("part.jpg", False),
    ],
)
def test_partial_and_temporary_names(name: str, temporary: bool) -> None:
    assert is_temporary(name) is temporary


class FakeClock:
    """A wall clock the test moves on; its sleeps last a moment of real time."""

    def __init__(self, now: datetime.datetime) -> None:
        self.now = now.timestamp()

    def time(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(0.005)

    def next_day(self) -> None:
        self.now += 86_400


def test_the_daily_cap_waits_for_the_next_day_and_remembers_the_count() -> None:
    clock = FakeClock(datetime.datetime(2026, 3, 1, 23, 0))
    notes: list[str] = []
    remembered: list[str] = []

    async def scenario() -> None:
        budget = DailyBudget(
            2, clock, asyncio.Event(), remember=remembered.append, notice=notes.append
        )
        for _ in range(2):
            await budget.reserve()
            budget.release(billed=True)
        third = asyncio.ensure_future(budget.reserve())
        await asyncio.sleep(0.05)
        assert not third.done()
        assert notes == [
            "--max-calls-per-day 2 reached for 2026-03-01: new calls wait until midnight "
            "(local time); files are still taken in"
        ]
        clock.next_day()
        await asyncio.wait_for(third, 5)
        assert notes[-1] == "a new day (2026-03-02): calls resume (--max-calls-per-day 2)"
        budget.release(billed=True)
        # a restart the same day goes on from the journal's count
        again = DailyBudget(2, clock, asyncio.Event(), recalled=remembered[-1])
        assert again.spent == 1

    asyncio.run(scenario())
    assert remembered == ["2026-03-01 1", "2026-03-01 2", "2026-03-02 1"]


def test_an_unpaid_call_gives_its_unit_of_the_day_back() -> None:
    clock = FakeClock(datetime.datetime(2026, 3, 1, 12, 0))

    async def scenario() -> None:
        budget = DailyBudget(1, clock, asyncio.Event())
        await budget.reserve()
        waiting = asyncio.ensure_future(budget.reserve())
        await asyncio.sleep(0.02)
        assert not waiting.done()  # the unit is held by the call in flight
        budget.release(billed=False)  # a 429: not billed
        await asyncio.wait_for(waiting, 5)

    asyncio.run(scenario())


def test_a_stop_frees_a_call_waiting_for_the_next_day() -> None:
    clock = FakeClock(datetime.datetime(2026, 3, 1, 12, 0))

    async def scenario() -> None:
        stopping = asyncio.Event()
        budget = DailyBudget(1, clock, stopping)
        await budget.reserve()
        budget.release(billed=True)
        waiting = asyncio.ensure_future(budget.reserve())
        await asyncio.sleep(0.02)
        stopping.set()  # the call then finds the rate gate closed, and gives it back
        await asyncio.wait_for(waiting, 5)

    asyncio.run(scenario())


# -- the real command on real folders ----------------------------------------------------


def photo(path: Path, n: int, size: tuple[int, int] = (48, 32)) -> Path:
    """A small PNG at ``path``, distinct for each ``n``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.linear_gradient("L").resize(size).convert("RGB")
    image.putpixel((0, 0), (n % 256, (n // 256) % 256, 7))
    image.save(path, "PNG")
    return path


def billing_key(path: Path) -> str:
    """How the emulator bills an upload: by its content."""
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def drop(source: Path, inbox: Path, name: str | None = None) -> Path:
    """An atomic copy into ``inbox``: written beside it, renamed into place."""
    staging = inbox.parent / "staging"
    staging.mkdir(exist_ok=True)
    tmp = staging / (name or source.name)
    shutil.copyfile(source, tmp)
    return Path(shutil.move(tmp, inbox / (name or source.name)))


@dataclass
class Watching:
    """A ``zuotang watch INBOX -o OUT`` running in the background."""

    proc: subprocess.Popen[str]
    inbox: Path
    out: Path
    emu: Any
    said: str = ""

    def rows(self) -> list[dict[str, str]]:
        if not (self.out / "report.csv").exists():
            return []
        return report_rows(self.out)

    def wait_rows(self, count: int) -> list[dict[str, str]]:
        """Wait for ``count`` rows in the report (it grows as the watcher runs)."""
        wait_until(lambda: len(self.rows()) >= count, WAIT)
        return self.rows()

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, str]:
        self.proc.send_signal(sig)
        _, stderr = self.proc.communicate(timeout=WAIT)
        return self.proc.returncode, self.said + stderr

    def billed(self) -> dict[str, int]:
        return dict(self.emu.stats()["billed_by_input"])


@pytest.fixture
def watch(emulator: Any, tmp_path: Path) -> Iterator[Callable[..., Watching]]:
    """``watch(*args, emu=None)``: start a watcher of ``tmp_path/inbox`` into
    ``tmp_path/out`` (``--settle 0.2``) and wait until it watches; killed at the end."""
    started: list[subprocess.Popen[str]] = []

    def begin(*args: str, emu: Any = None, settle: str = SETTLE) -> Watching:
        emu = emu or emulator(qps=1000)
        inbox, out = tmp_path / "inbox", tmp_path / "out"
        inbox.mkdir(exist_ok=True)
        proc = start(
            "watch",
            str(inbox),
            "-o",
            str(out),
            "--settle",
            settle,
            "--qps",
            "100",
            *args,
            env=enhance_env(emu.endpoint),
        )
        started.append(proc)
        said = ""
        assert proc.stderr is not None
        while "zuotang: watching " not in said:
            line = proc.stderr.readline()
            assert line, f"the watcher ended before it watched: {said}"
            said += line
        return Watching(proc, inbox, out, emu, said)

    yield begin
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_an_atomic_copy_is_taken_and_paid_once(
    watch: Callable[..., Watching], tmp_path: Path
) -> None:
    w = watch("--stats-interval", "0.2")
    source = photo(tmp_path / "camera" / "a.png", 1)
    drop(source, w.inbox)
    rows = w.wait_rows(1)  # the report grows while the watcher runs
    assert [(row["input"], row["outcome"]) for row in rows] == [(str(w.inbox / "a.png"), "done")]
    check_saved(w.out, rows)  # a whole image, of the row's size
    status, stderr = w.stop()
    assert status == 143
    assert w.billed() == {billing_key(source): 1}
    assert "zuotang: progress: " in stderr  # a line every --stats-interval
    assert "Traceback" not in stderr


@pytest.mark.timing
def test_a_slow_chunked_write_is_taken_only_when_complete(
    watch: Callable[..., Watching], tmp_path: Path
) -> None:
    """Written in 20 chunks 50 ms apart (a camera, a slow share); --settle 0.5."""
    w = watch(settle="0.5")
    whole = photo(tmp_path / "camera" / "big.png", 2, size=(400, 300)).read_bytes()
    step = len(whole) // 20 + 1
    with (w.inbox / "big.png").open("wb") as stream:
        for start_at in range(0, len(whole), step):
            stream.write(whole[start_at : start_at + step])
            stream.flush()
            time.sleep(0.05)
    rows = w.wait_rows(1)
    assert rows[0]["outcome"] == "done", rows
    check_saved(w.out, rows)
    w.stop()
    # sent once, whole: the only content the emulator ever billed is the complete file
    assert w.billed() == {"sha256:" + hashlib.sha256(whole).hexdigest(): 1}
    assert w.emu.stats()["calls"] == 1


def test_a_partial_name_is_taken_once_renamed_into_place(
    watch: Callable[..., Watching], tmp_path: Path
) -> None:
    w = watch()
    part = photo(w.inbox / "b.png.part", 3)
    key = billing_key(part)
    drop(photo(tmp_path / "camera" / "marker.png", 4), w.inbox)
    w.wait_rows(1)  # the marker, dropped after the partial file, is done: that one was not
    assert [row["input"] for row in w.rows()] == [str(w.inbox / "marker.png")]
    part.rename(w.inbox / "b.png")
    rows = w.wait_rows(2)
    assert rows[1]["input"] == str(w.inbox / "b.png") and rows[1]["outcome"] == "done"
    w.stop()
    assert w.billed()[key] == 1 and len(w.billed()) == 2


def test_a_copy_of_a_done_photo_pays_nothing(
    watch: Callable[..., Watching], tmp_path: Path
) -> None:
    w = watch()
    source = photo(tmp_path / "camera" / "c.png", 5)
    drop(source, w.inbox)
    w.wait_rows(1)
    drop(source, w.inbox, "c-copy.png")
    rows = w.wait_rows(2)
    assert rows[1]["outcome"] == "skipped" and "same content as" in rows[1]["message"]
    assert Path(rows[1]["output"]).name == "c-copy.png"
    check_saved(w.out, rows)
    w.stop()
    assert w.billed() == {billing_key(source): 1}


def test_two_copies_landing_together_pay_once(
    watch: Callable[..., Watching], tmp_path: Path
) -> None:
    w = watch()
    source = photo(tmp_path / "camera" / "d.png", 6)
    drop(source, w.inbox, "d1.png")
    drop(source, w.inbox, "d2.png")
    rows = w.wait_rows(2)
    assert sorted(row["outcome"] for row in rows) == ["done", "skipped"]
    check_saved(w.out, rows)
    w.stop()
    assert w.billed() == {billing_key(source): 1}


def test_a_touch_of_a_done_photo_pays_nothing(
    watch: Callable[..., Watching], tmp_path: Path
) -> None:
    w = watch()
    source = drop(photo(tmp_path / "camera" / "e.png", 7), w.inbox)
    w.wait_rows(1)
    later = time.time() + 10
    os.utime(source, (later, later))
    rows = w.wait_rows(2)
    assert rows[1]["input"] == str(source) and rows[1]["outcome"] == "skipped"
    w.stop()
    assert w.billed() == {billing_key(source): 1}


def test_a_photo_replaced_under_the_same_name_is_paid_and_saved_apart(
    watch: Callable[..., Watching], tmp_path: Path
) -> None:
    w = watch()
    first = photo(tmp_path / "camera" / "r.png", 8)
    second = photo(tmp_path / "camera2" / "r.png", 9)
    drop(first, w.inbox)
    w.wait_rows(1)
    drop(second, w.inbox)
    rows = w.wait_rows(2)
    assert [row["outcome"] for row in rows] == ["done", "done"]
    assert rows[0]["output"] != rows[1]["output"]  # a result is never overwritten
    check_saved(w.out, rows)
    w.stop()
    assert w.billed() == {billing_key(first): 1, billing_key(second): 1}


def test_watch_has_every_option_of_enhance() -> None:
    """Declared once: enhance's options, read from its signature, plus the watch's own."""
    from typer.main import get_command

    from zuotang_cli.cli.main import app

    group = get_command(app)
    commands = group.commands  # type: ignore[attr-defined]
    enhance_options = {p.name for p in commands["enhance"].params} - {"inputs"}
    watch_options = {p.name for p in commands["watch"].params}
    assert watch_options - enhance_options == {
        "folders",
        "settle",
        "poll",
        "once",
        "move_done",
        "max_calls_per_day",
    }
    assert enhance_options <= watch_options


@pytest.mark.slow
def test_a_burst_of_200_files_sends_each_once(
    watch: Callable[..., Watching], tmp_path: Path
) -> None:
    w = watch()
    staging = tmp_path / "burst"
    files = [photo(staging / f"p{i:03d}.png", 100 + i) for i in range(200)]
    keys = {billing_key(path) for path in files}
    for path in files:
        path.rename(w.inbox / path.name)
    rows = w.wait_rows(200)
    assert {row["outcome"] for row in rows} == {"done"}
    assert {row["input"] for row in rows} == {str(w.inbox / path.name) for path in files}
    assert len(check_saved(w.out, rows)) == 200
    status, stderr = w.stop()
    assert status == 143, stderr
    stats = w.emu.stats()
    assert stats["billed_by_input"] == dict.fromkeys(keys, 1)
    assert stats["calls"] == 200


def test_once_takes_what_is_there_and_exits(emulator: Any, tmp_path: Path) -> None:
    emu = emulator(qps=1000)
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    sources = [photo(inbox / f"f{i}.png", 20 + i) for i in range(3)]
    (inbox / "f9.png.crdownload").write_bytes(b"half")
    args = ("watch", str(inbox), "-o", str(out), "--settle", SETTLE, "--once", "--qps", "50")
    first = cli(*args, env=enhance_env(emu.endpoint))
    assert first.returncode == 0, first.stderr
    rows = report_rows(out)
    assert sorted(row["input"] for row in rows) == sorted(str(path) for path in sources)
    again = cli(*args, env=enhance_env(emu.endpoint))
    assert again.returncode == 0, again.stderr
    assert [row["outcome"] for row in report_rows(out)] == ["skipped"] * 3
    assert emu.stats()["billed_by_input"] == {billing_key(path): 1 for path in sources}


def test_a_second_watcher_on_the_same_output_is_refused(
    watch: Callable[..., Watching], tmp_path: Path
) -> None:
    w = watch()
    other = tmp_path / "other-inbox"
    other.mkdir()
    second = cli("watch", str(other), "-o", str(w.out), env=enhance_env(w.emu.endpoint))
    assert second.returncode == 2
    assert "in use by another zuotang run" in second.stderr
    assert "Traceback" not in second.stderr
    w.stop()


def test_results_landing_in_the_watched_folder_are_refused(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    proc = cli("watch", str(inbox), "-o", str(inbox / "out"), env=enhance_env("http://x.test"))
    assert proc.returncode == 2
    assert "must not be inside one another" in proc.stderr


def test_sigterm_stops_with_a_row_for_every_file(
    watch: Callable[..., Watching], emulator: Any, tmp_path: Path
) -> None:
    """Two calls answered with their downloads held, three files waiting for a slot."""
    emu = emulator(qps=1000)
    emu.hold_downloads()
    w = watch("--concurrency", "2", emu=emu)
    for i in range(5):
        drop(photo(tmp_path / "camera" / f"s{i}.png", 40 + i), w.inbox)
    wait_until(lambda: emu.stats()["calls"] == 2, WAIT)
    wait_until(lambda: emu.stats()["billed"] == 2, WAIT)
    status, stderr = w.stop()
    assert status == 143, stderr
    rows = w.rows()
    assert sorted(row["input"] for row in rows) == [str(w.inbox / f"s{i}.png") for i in range(5)]
    outcomes = sorted(row["outcome"] for row in rows)
    assert outcomes.count("not-attempted") >= 3, rows
    assert emu.stats()["billed"] == 2  # the paid two are booked: a re-run downloads them
    assert "Traceback" not in stderr


def test_move_done_takes_the_original_out_of_the_inbox(
    watch: Callable[..., Watching], tmp_path: Path
) -> None:
    done = tmp_path / "done"
    w = watch("--move-done", str(done))
    source = photo(tmp_path / "camera" / "m.png", 50)
    drop(source, w.inbox)
    w.wait_rows(1)
    wait_until(lambda: (done / "m.png").exists(), WAIT)
    assert not (w.inbox / "m.png").exists()
    assert (done / "m.png").read_bytes() == source.read_bytes()
    w.stop()
    assert w.billed() == {billing_key(source): 1}


def test_max_calls_per_day_waits_for_the_next_day(emulator: Any, tmp_path: Path) -> None:
    """The whole watch in process, its day passed by an injected clock."""
    emu = emulator(qps=1000)
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    inbox.mkdir()
    clock = FakeClock(datetime.datetime(2026, 3, 1, 18, 0))
    options = EnhanceOptions(
        inputs=[str(inbox)], output_dir=out, appcode=APPCODE, endpoint=emu.endpoint, qps=50
    )
    session = Session.prepare(options, WatchOptions(settle=0.1, max_calls_per_day=2), clock=clock)
    rows: list[Row] = []
    notes: list[str] = []
    sources = [photo(tmp_path / "camera" / f"q{i}.png", 60 + i) for i in range(3)]

    async def until(condition: Callable[[], bool]) -> None:
        deadline = time.monotonic() + WAIT
        while not condition():
            assert time.monotonic() < deadline, (rows, notes)
            await asyncio.sleep(0.02)

    async def scenario(journal: Journal) -> None:
        batch = session.batch(journal, rows.append, notice=notes.append)
        running = asyncio.ensure_future(batch.run(session.watcher()))
        for path in sources:
            drop(path, inbox)
        await until(lambda: len(rows) == 2 and bool(notes))
        assert "--max-calls-per-day 2 reached for 2026-03-01" in notes[0]
        assert emu.stats()["billed"] == 2  # the third waits for tomorrow
        clock.next_day()
        await until(lambda: len(rows) == 3)
        assert notes[-1].startswith("a new day (2026-03-02)")
        batch.request_stop()
        await asyncio.wait_for(running, WAIT)

    with session.opened() as journal:
        asyncio.run(scenario(journal))
        assert journal.setting(CALLS_TODAY) == "2026-03-02 1"
    assert [row.outcome for row in rows] == [Outcome.DONE] * 3
    assert emu.stats()["billed_by_input"] == {billing_key(path): 1 for path in sources}


def test_a_watched_folder_that_goes_away_ends_the_watcher_with_exit_4(
    watch: Callable[..., Watching], tmp_path: Path
) -> None:
    w = watch()
    drop(photo(tmp_path / "camera" / "g.png", 70), w.inbox)
    w.wait_rows(1)
    shutil.rmtree(w.inbox)
    _, stderr = w.proc.communicate(timeout=WAIT)
    assert w.proc.returncode == 4, stderr
    assert "stopped watching: the folder" in stderr and "is gone" in stderr
    assert [row["outcome"] for row in w.rows()] == ["done"]


def test_poll_takes_files_without_the_os_events(
    watch: Callable[..., Watching], tmp_path: Path
) -> None:
    """--poll (network shares): the folder listed every 0.3 s."""
    w = watch("--poll")
    source = drop(photo(tmp_path / "camera" / "n.png", 80), w.inbox)
    rows = w.wait_rows(1)
    assert [(row["input"], row["outcome"]) for row in rows] == [(str(source), "done")]
    w.stop()
    assert w.billed() == {billing_key(source): 1}


def test_ctrl_c_finishes_the_calls_in_flight_then_stops(
    watch: Callable[..., Watching], emulator: Any, tmp_path: Path
) -> None:
    emu = emulator(qps=1000)
    emu.hold_downloads()
    w = watch(emu=emu)
    sources = [drop(photo(tmp_path / "camera" / f"i{i}.png", 90 + i), w.inbox) for i in range(2)]
    wait_until(lambda: emu.stats()["billed"] == 2, WAIT)
    w.proc.send_signal(signal.SIGINT)
    assert w.proc.stderr is not None
    said = ""
    while "interrupted: finishing" not in said:  # taken: now let the downloads go
        line = w.proc.stderr.readline()
        assert line, said
        said += line
    emu.hold_downloads(False)
    _, stderr = w.proc.communicate(timeout=WAIT)
    assert w.proc.returncode == 130, said + stderr
    rows = w.rows()
    assert sorted((row["input"], row["outcome"]) for row in rows) == [
        (str(path), "done") for path in sources
    ]
    check_saved(w.out, rows)
    assert w.billed() == {billing_key(path): 1 for path in sources}
