"""kill -9 at 50 random, seeded moments of one 500-input run, each followed by a re-run
(a chain: kill, re-run, kill the re-run, ...): every input ends saved exactly once, and the
only inputs paid twice are those the journal held as in flight at a kill.

The phase a kill caught is read from evidence outside the client, while the client is held
still by SIGSTOP just before its SIGKILL (it runs no instruction in between, so what is seen
is what was true at the kill):

- calling: the emulator holds a POST it has not answered;
- polling: the journal holds a task of this run and the emulator was polled for it within
  the last poll interval and a half;
- downloading: the emulator is serving a result, or a ``.part`` file is not yet a whole image;
- renaming: a ``.part`` file is a whole image (downloaded, being checked and renamed), or a
  result is at its final name and the journal does not yet hold it as saved;
- journal write: the stopped client holds the journal's lock (a reader cannot get in), or
  the emulator billed a reply of this run that the journal has not booked (the client holds
  a paid answer it has not yet written down).

A kill is counted in every phase it caught.  Each kill aims at one phase (seeded, 10 a
phase): after its seeded moment, the client is stopped, looked at and let go again every
few milliseconds until that phase shows, for at most a few seconds, then killed wherever
it is.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.helpers import report_rows, write_list
from tests.reliability.support import (
    APPCODE,
    Trial,
    check_saved,
    enhance,
    finish,
    saved_images,
    start,
)
from zuotang_cli.status import ExitStatus
from zuotang_cli.store.journal import Status
from zuotang_cli.store.layout import Layout

SUITE = "Kills: kill -9 at random moments, then re-runs"

N = 500
KILLS = 50
SEED = 20240515
PHASES = ("calling", "polling", "downloading", "renaming", "journal write")
QPS = 10
"""The client's pace: 500 inputs take about 50 s of calls, spread over the 50 runs."""
CONCURRENCY = 16
"""Inputs in flight at once.  A task's polls take their turn in the rate gate behind the
calls already waiting there: with the default (30 s of calls: 320 at --qps 10) a run polls
nothing in its first half minute, and no kill would ever catch one."""
ASYNC_SHARE = 0.3
"""Calls answered with a task id (emulator fault ``async``): their result is polled."""
POLL_WINDOW = 1.5
"""A run is polling if the emulator was polled this recently (the client polls each 1 s)."""
AIM_SECONDS = 4.0
"""How long a kill waits for the phase it aims at before it is killed where it is."""
IN_FLIGHT = frozenset({Status.CALLING, Status.PAID, Status.PENDING})
SAMPLE = "harbour-320x240.jpg"


@dataclass(frozen=True)
class JournalView:
    """The journal as the client left it (read while it is stopped, or after the kill)."""

    status: dict[str, Status]
    paid: dict[str, int]
    possibly: dict[str, int]
    outputs: frozenset[str]
    """Relative paths of the outputs the journal holds as saved."""

    def in_flight(self) -> set[str]:
        """Called, paid or pending, or possibly paid, and not saved."""
        return {
            key
            for key, status in self.status.items()
            if status in IN_FLIGHT or (self.possibly[key] and status is not Status.SAVED)
        }

    def calling(self) -> set[str]:
        """Called and unanswered: calling at the kill, or cut short by an earlier kill
        (booked possibly paid by the next run's start) and not called again since."""
        return {
            key
            for key, status in self.status.items()
            if status is Status.CALLING
            or (status is Status.FAILED_RETRYABLE and self.possibly[key])
        }


def read_journal(out: Path) -> JournalView:
    path = Layout(out).journal
    status: dict[str, Status] = {}
    paid: dict[str, int] = {}
    possibly: dict[str, int] = {}
    outputs: set[str] = set()
    if not path.exists():
        return JournalView(status, paid, possibly, frozenset())
    with contextlib.closing(sqlite3.connect(path, timeout=30.0)) as db:
        rows = db.execute("SELECT key, status, paid_calls, possibly_paid, output FROM entries")
        for key, state, paid_calls, possibly_paid, output in rows:
            url = str(key).rsplit("\0", 1)[-1]
            status[url], paid[url], possibly[url] = Status(state), paid_calls, possibly_paid
            if state == Status.SAVED.value and output:
                outputs.add(str(output))
    return JournalView(status, paid, possibly, frozenset(outputs))


def part_files(out: Path) -> list[Path]:
    return sorted(Layout(out).downloads.glob("*.part"))


def whole_image(path: Path) -> bool:
    try:
        with Image.open(path) as image:
            image.load()
        return True
    except Exception:  # still being written, or already renamed away
        return False


@dataclass
class Watch:
    """What the test knows of the run it is about to kill."""

    emu: Any
    out: Path
    billed_before: Mapping[str, int]
    """The emulator's billed counts when this run started."""
    booked_before: Mapping[str, int]
    """The journal's paid calls when this run started."""
    polls: int = 0
    polled_at: float = float("-inf")

    def note_polls(self, stats: Mapping[str, Any]) -> None:
        if stats["polls"] > self.polls:
            self.polls, self.polled_at = stats["polls"], time.monotonic()

    def phases(self, stats: Mapping[str, Any], only: str | None = None) -> set[str]:
        """The phases the evidence shows now (``only``: look for that one alone)."""
        self.note_polls(stats)
        try:
            view: JournalView | None = read_journal(self.out)
        except sqlite3.OperationalError:  # SQLITE_PROTOCOL / BUSY: the client holds a lock
            view = None
        looks: dict[str, Callable[[], bool]] = {
            "calling": lambda: stats["in_flight"] > 0,
            "polling": lambda: view is not None and self._polling(view),
            "downloading": lambda: self._downloading(stats),
            "renaming": lambda: view is not None and self._renaming(view),
            "journal write": lambda: view is None or self._unbooked(stats, view),
        }
        wanted = [only] if only else list(looks)
        return {phase for phase in wanted if looks[phase]()}

    def _polling(self, view: JournalView) -> bool:
        if time.monotonic() - self.polled_at > POLL_WINDOW:
            return False
        return Status.PENDING in view.status.values()

    def _downloading(self, stats: Mapping[str, Any]) -> bool:
        if stats["download_attempts"] > stats["downloads"]:
            return True
        return any(not whole_image(part) for part in part_files(self.out))

    def _renaming(self, view: JournalView) -> bool:
        if any(whole_image(part) for part in part_files(self.out)):
            return True
        recorded = view.outputs
        return any(
            path.relative_to(self.out).as_posix() not in recorded for path in saved_images(self.out)
        )

    def _unbooked(self, stats: Mapping[str, Any], view: JournalView) -> bool:
        billed: Mapping[str, int] = stats["billed_by_input"]
        booked = view.paid
        return any(
            count - self.billed_before.get(url, 0)
            > booked.get(url, 0) - self.booked_before.get(url, 0)
            for url, count in billed.items()
        )


@dataclass
class Kill:
    aim: str
    delay: float
    progress: int
    """Distinct inputs billed before this kill may happen."""
    caught: set[str] = field(default_factory=set)
    at: float = 0.0
    """Seconds into its run."""
    in_flight: set[str] = field(default_factory=set)
    calling: set[str] = field(default_factory=set)
    pending: int = 0
    """Tasks paid for and still to be fetched, in the journal at the kill."""
    billed_after: dict[str, int] = field(default_factory=dict)
    """The emulator's billed counts once the calls the kill left behind were answered."""
    paid_again: dict[str, int] = field(default_factory=dict)
    """Inputs billed before this kill and again before the next: how many more times."""


def stopped(pid: int) -> bool:
    with contextlib.suppress(OSError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()
        return fields[0] in ("T", "t", "Z", "X")
    return True


def hold(proc: subprocess.Popen[bytes]) -> bool:
    """SIGSTOP the client and wait until it is stopped; False if it had already ended."""
    if proc.poll() is not None:
        return False
    os.kill(proc.pid, signal.SIGSTOP)
    deadline = time.monotonic() + 2.0
    while not stopped(proc.pid):
        assert time.monotonic() < deadline, "the client did not stop"
        time.sleep(0.0005)
    return proc.poll() is None


def strike(kill: Kill, proc: subprocess.Popen[bytes], watch: Watch, rng: random.Random) -> bool:
    """Wait for the kill's moment, aim at its phase, stop the client, read what it is
    doing and kill -9 it. False: the run ended first (nothing was killed)."""
    emu, started = watch.emu, time.monotonic()
    while len(emu.stats()["billed_by_input"]) < kill.progress:
        if proc.poll() is not None:
            return False
        time.sleep(0.01)
    time.sleep(kill.delay)
    aim_until = time.monotonic() + AIM_SECONDS
    while True:
        if not hold(proc):
            return False
        stats = emu.stats()
        if watch.phases(stats, only=kill.aim) or time.monotonic() > aim_until:
            kill.caught = watch.phases(stats)
            break
        os.kill(proc.pid, signal.SIGCONT)
        time.sleep(rng.uniform(0.002, 0.02))
        watch.note_polls(emu.stats())
    kill.at = time.monotonic() - started
    os.kill(proc.pid, signal.SIGKILL)
    stdout, stderr = proc.communicate(timeout=30)
    assert APPCODE.encode() not in stdout + stderr, "the AppCode leaked"
    return True


def settle(emu: Any) -> dict[str, int]:
    """The billed counts once the emulator answered every call a killed client left."""
    deadline = time.monotonic() + 30
    while (stats := emu.stats())["in_flight"] > 0:
        assert time.monotonic() < deadline, "calls never ended"
        time.sleep(0.02)
    return dict(stats["billed_by_input"])


def plan_kills(rng: random.Random) -> list[Kill]:
    """50 distinct moments: a count of inputs billed (spread over the run), a delay after
    it, and a phase to aim at (10 a phase, shuffled)."""
    progress = sorted(rng.sample(range(N - 60), KILLS))
    aims = [PHASES[i % len(PHASES)] for i in range(KILLS)]
    rng.shuffle(aims)
    return [
        Kill(aim, round(rng.uniform(0.0, 0.8), 3), point)
        for aim, point in zip(aims, progress, strict=True)
    ]


@pytest.mark.reliability
@pytest.mark.timeout(900)
@pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="needs POSIX signals")
def test_50_kills_of_a_500_input_run(trial: Trial, emulator: Any, tmp_path: Path) -> None:
    """50 kill -9s at random moments of a 500-input run, each followed by a re-run."""
    started = time.monotonic()
    rng = random.Random(SEED)
    emu = emulator(
        qps=1000,  # flow control out of the way: the client's --qps paces the run
        latency=(0.2, 0.6),
        download_latency=0.15,
        faults={"async": ASYNC_SHARE},
        seed=SEED,
    )
    urls = [f"{emu.file_url(SAMPLE)}?n={i}" for i in range(N)]
    url_list = write_list(tmp_path / "urls.txt", urls)
    out = tmp_path / "out"
    args = (str(url_list), "-o", str(out), "--qps", str(QPS), "--concurrency", str(CONCURRENCY))
    args = (*args, "-q")
    trial.inputs += N

    kills = plan_kills(rng)
    done: list[Kill] = []
    billed: dict[str, int] = {}
    for kill in kills:
        watch = Watch(emu, out, billed, read_journal(out).paid)
        proc = start(*args, endpoint=emu.endpoint)
        if not strike(kill, proc, watch, rng):
            run = finish(trial, proc)
            pytest.fail(f"the run ended before kill {len(done) + 1}: {run.stderr[-2000:]}")
        trial.runs += 1
        view = read_journal(out)  # right after the kill: what the journal held in flight
        kill.in_flight, kill.calling = view.in_flight(), view.calling()
        kill.pending = sum(status is Status.PENDING for status in view.status.values())
        kill.billed_after = settle(emu)
        billed = kill.billed_after
        done.append(kill)

    last = enhance(trial, *args, endpoint=emu.endpoint)
    final: dict[str, int] = emu.stats()["billed_by_input"]  # what the kills' chain paid
    # An input that kills caught calling more often than --paid-retries allows (1 paid
    # retry: 2 possibly paid calls) is held failed by a plain re-run, unpaid, and says that
    # --retry-failed pays for it again; that run pays for each exactly once more.
    held = {row["input"]: row for row in report_rows(out) if row["outcome"] == "failed"}
    assert last.returncode == (ExitStatus.SOME_FAILED if held else 0), last.stderr[-3000:]
    cut_short = read_journal(out).possibly
    for url, row in held.items():
        assert row["error_class"] == "interrupted" and "--retry-failed" in row["message"], row
        assert cut_short[url] >= 2 and final.get(url) == billed.get(url), (url, cut_short[url])
    retried = enhance(trial, *args, "--retry-failed", endpoint=emu.endpoint)
    assert retried.returncode == 0, retried.stderr[-3000:]
    stats = emu.stats()
    repaid = Counter(stats["billed_by_input"]) - Counter(final)
    assert set(repaid) == set(held) and set(repaid.values()) <= {1}, (repaid, set(held))

    # Every input ends saved exactly once: one row each, one real image each, no leftovers.
    rows = report_rows(out)
    assert sorted(row["input"] for row in rows) == sorted(urls)
    assert all(row["outcome"] in ("done", "skipped") for row in rows)
    saved = check_saved(out, rows)
    assert len(saved) == N
    assert sorted(path.resolve() for path in saved_images(out)) == sorted(saved)
    assert part_files(out) == []
    assert set(final) == set(urls) and all(count >= 1 for count in final.values())

    # Inputs paid again after a kill: only those the journal held as in flight at it.
    unexplained = 0
    for kill, after in zip(done, [*(k.billed_after for k in done[1:]), final], strict=True):
        kill.paid_again = {
            url: after.get(url, 0) - count
            for url, count in kill.billed_after.items()
            if after.get(url, 0) > count
        }
        strays = set(kill.paid_again) - kill.in_flight
        unexplained += sum(kill.paid_again[url] for url in strays)
        assert not strays, (kill, strays)
        # Stronger: a paid link or task is never paid again; only an unanswered call is.
        assert set(kill.paid_again) <= kill.calling, (kill, set(kill.paid_again) - kill.calling)
    extra = sum(final.values()) - N
    explained = sum(sum(kill.paid_again.values()) for kill in done)
    assert extra == explained + unexplained
    assert unexplained == 0

    # The journal booked every call it saw answered; the others are the kills' unanswered.
    booked = read_journal(out).paid
    unanswered = Counter(url for kill in done for url in kill.calling)
    for url in urls:
        assert booked[url] <= final[url] + repaid[url], url
        assert final[url] + repaid[url] - booked[url] <= unanswered[url], url

    seconds = time.monotonic() - started
    _figures(trial, done, stats, extra, sum(repaid.values()), len(saved), seconds)


def _figures(
    trial: Trial,
    kills: list[Kill],
    stats: Mapping[str, Any],
    extra: int,
    retried: int,
    saved: int,
    seconds: float,
) -> None:
    twice = [url for url, count in stats["billed_by_input"].items() if count > 1]
    trial.saved += saved
    trial.billed_twice += len(twice)
    trial.faults.update({"kill -9": len(kills), "async": stats["faults"].get("async", 0)})
    caught = Counter(phase for kill in kills for phase in kill.caught)
    hits = sum(kill.aim in kill.caught for kill in kills)
    by_phase = ", ".join(f"{phase} {caught[phase]}" for phase in PHASES)
    nothing = sum(not kill.caught for kill in kills)
    per_kill = [sum(kill.paid_again.values()) for kill in kills]
    in_flight = [f"{len(kill.in_flight)}({len(kill.calling)})" for kill in kills]
    tally = ", ".join(f"{n} at {count} kill(s)" for n, count in sorted(Counter(per_kill).items()))
    trial.note(
        f"{len(kills)} kill -9s of one run of {N} inputs ({stats['faults'].get('async', 0)} "
        f"calls answered with a task and polled), each at a seeded moment and aimed at a "
        f"phase ({hits} caught the phase they aimed at); kills by phase caught (a kill "
        f"counts in each): {by_phase}, none of them {nothing}"
    )
    trial.note(
        f"after {trial.runs} runs, all {saved} inputs saved once each (one real image per "
        f"input, matching its report row, no other file, no .part left); billed "
        f"{stats['billed']} times = {N} + {extra} paid again after a kill ({len(twice)} "
        f"inputs billed more than once), every one held as in flight by the journal at "
        f"that kill (its call unanswered): 0 unexplained; + {retried} paid by "
        f"--retry-failed for the inputs a plain re-run held (kills caught each calling "
        f"more often than --paid-retries allows)"
    )
    trial.note(
        "paid again per kill, in order: "
        + " ".join(map(str, per_kill))
        + f" ({tally}); in flight in the journal per kill (of which called, unanswered): "
        + " ".join(map(str, in_flight))
        + f"; {seconds:.0f} s in all"
    )
    trial.note(
        f"tasks paid for and not yet fetched, in the journal at a kill: up to "
        f"{max(kill.pending for kill in kills)} (their fetches go ahead of new calls at the "
        "rate gate; a kill aimed at polling finds tasks still running); none was paid "
        "again (only calls unanswered at a kill were), and the last run fetched them all"
    )
