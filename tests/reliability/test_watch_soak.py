"""A soak of ``zuotang watch``: one watcher running for ZUOTANG_SOAK_SECONDS (default 20
minutes) while files land at random, the ways users land them (atomic copies, slow
chunked writes, renames from ``.part``, copies and touches of photos already there),
and the emulator injects faults.  Every file is saved once, every billing past a
content's first is explained on its journal row, and the watcher's memory stays flat."""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import signal
import statistics
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests import helpers
from tests.helpers import report_rows, wait_until
from tests.reliability.support import APPCODE, TRACEBACK, Trial, check_saved, journal_costs

SUITE = "Soak: a hot folder for hours"

SOAK_SECONDS = float(os.environ.get("ZUOTANG_SOAK_SECONDS", "1200"))
"""How long files keep landing (``ZUOTANG_SOAK_SECONDS=60`` for a short try)."""
FAULTS = dict.fromkeys(
    ("429", "500", "reset", "slow", "state-8", "state-2", "state-1", "truncate", "expire"), 0.02
)
"""Every fault a call or download can meet and be retried from, 2 % of calls each."""
TIMEOUT = 2.0
"""Client --timeout; a ``slow`` fault holds its call twice as long."""
SETTLE = 0.5
MEAN_GAP = 0.5
"""Mean seconds between two landings (exponential: bursts and lulls)."""
RSS_EVERY = 5.0
"""Seconds between two looks at the watcher's resident memory."""
RSS_GROWTH_LIMIT = 20 * 1024
"""KiB the watcher's memory may grow from the first quarter of the soak to the last."""


def rss_kib(pid: int) -> int | None:
    """The resident memory of ``pid`` in KiB (Linux' /proc), or None elsewhere."""
    try:
        text = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return None


def new_photo(path: Path, n: int) -> bytes:
    """A small PNG distinct for each ``n``, of one of a few sizes."""
    size = ((48, 32), (32, 64), (72, 40))[n % 3]
    image = Image.linear_gradient("L").resize(size).convert("RGB")
    image.putpixel((0, 0), (n % 256, (n // 256) % 256, (n // 65536) % 256))
    image.save(path, "PNG")
    return path.read_bytes()


class Landings:
    """Files landing in ``inbox`` at random; what each content must cost."""

    def __init__(self, inbox: Path, staging: Path, seed: int) -> None:
        self.inbox, self.staging = inbox, staging
        self.random = random.Random(seed)
        self.count = 0
        self.events: Counter[str] = Counter()
        self.contents: dict[str, tuple[int, int]] = {}
        """Billing key -> the size of the image."""
        self.landed: list[tuple[Path, float]] = []
        """Files in the inbox, and when they landed."""

    def one(self) -> None:
        roll = self.random.random()
        older = [path for path, at in self.landed if time.monotonic() - at > 10]
        if roll < 0.05 and older:
            self._copy(self.random.choice(older))
        elif roll < 0.10 and older:
            self._touch(self.random.choice(older))
        elif roll < 0.20:
            self._slow_write()
        elif roll < 0.30:
            self._partial_then_rename()
        else:
            self._atomic()

    def _fresh(self, folder: Path) -> Path:
        self.count += 1
        path = folder / f"p{self.count:05d}.png"
        data = new_photo(path, self.count)
        with Image.open(path) as image:
            self.contents["sha256:" + hashlib.sha256(data).hexdigest()] = image.size
        return path

    def _atomic(self) -> None:
        staged = self._fresh(self.staging)
        self._landed(Path(shutil.move(staged, self.inbox / staged.name)), "atomic copy")

    def _slow_write(self) -> None:
        staged = self._fresh(self.staging)
        data = staged.read_bytes()
        target = self.inbox / staged.name
        with target.open("wb") as stream:
            for at in range(0, len(data), 400):
                stream.write(data[at : at + 400])
                stream.flush()
                time.sleep(0.02)
        staged.unlink()
        self._landed(target, "slow chunked write")

    def _partial_then_rename(self) -> None:
        staged = self._fresh(self.staging)
        part = self.inbox / f"{staged.name}.part"
        shutil.move(staged, part)
        time.sleep(self.random.uniform(0, 2 * SETTLE))
        self._landed(part.rename(self.inbox / staged.name), "rename from .part")

    def _copy(self, source: Path) -> None:
        self.count += 1
        staged = self.staging / f"c{self.count:05d}.png"
        shutil.copyfile(source, staged)
        self._landed(Path(shutil.move(staged, self.inbox / staged.name)), "copy of a photo")

    def _touch(self, source: Path) -> None:
        later = time.time()
        os.utime(source, (later, later))
        self.events["touch"] += 1

    def _landed(self, path: Path, how: str) -> None:
        self.landed.append((path, time.monotonic()))
        self.events[how] += 1


@pytest.mark.reliability
@pytest.mark.timeout(SOAK_SECONDS + 900)
def test_a_watcher_soaks_in_a_storm(trial: Trial, emulator: Any, tmp_path: Path) -> None:
    """One watcher, files landing at random for ZUOTANG_SOAK_SECONDS, faults injected."""
    emu = emulator(
        qps=1000,
        latency=(0.0, 0.05),
        faults=FAULTS,
        slow_seconds=2 * TIMEOUT,
        seed=23,
    )
    inbox, staging, out = tmp_path / "inbox", tmp_path / "staging", tmp_path / "out"
    inbox.mkdir()
    staging.mkdir()
    stderr_path = tmp_path / "watch.stderr"
    args = ("watch", str(inbox), "-o", str(out), "--settle", str(SETTLE), "--qps", "20")
    args += ("--timeout", str(TIMEOUT), "--retries", "10", "--paid-retries", "5")
    args += ("--stats-interval", "30")
    with stderr_path.open("w", encoding="utf-8") as stderr:
        proc = helpers.start(
            *args,
            env=helpers.enhance_env(emu.endpoint, APPCODE),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    trial.runs += 1
    try:
        wait_until(lambda: "zuotang: watching " in stderr_path.read_text("utf-8"), 60)
        landings = Landings(inbox, staging, seed=29)
        rss: list[tuple[float, int]] = []
        started = time.monotonic()
        next_look = started
        while time.monotonic() - started < SOAK_SECONDS:
            landings.one()
            time.sleep(landings.random.expovariate(1 / MEAN_GAP))
            if time.monotonic() >= next_look:
                value = rss_kib(proc.pid)
                if value is not None:
                    rss.append((time.monotonic() - started, value))
                next_look += RSS_EVERY
        rows_expected = sum(landings.events.values())
        wait_until(lambda: len(report_rows(out)) >= rows_expected, 600, interval=0.5)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    said = stderr_path.read_text("utf-8")
    assert proc.returncode == 143, said[-3000:]
    assert TRACEBACK not in said, said[-3000:]
    trial.tracebacks += said.count(TRACEBACK)

    rows = report_rows(out)
    outcomes = Counter(row["outcome"] for row in rows)
    assert len(rows) == rows_expected, (outcomes, landings.events)
    assert set(outcomes) <= {"done", "skipped"}, [r for r in rows if r["outcome"] != "done"][:5]
    latest = {row["input"]: row for row in rows}  # a touched file's rows share its result
    saved = check_saved(out, latest.values())  # each a whole image of its row's size, once
    assert {row["input"] for row in rows} == {str(path) for path, _ in landings.landed}

    stats = emu.stats()
    billed = stats["billed_by_input"]
    assert set(billed) == set(landings.contents)  # each content billed, nothing else
    costs = journal_costs(out)
    assert {key: costs[key][0] for key in billed} == billed  # the books match, key by key
    unexplained = [key for key in billed if billed[key] - 1 > costs[key][2] + costs[key][3]]
    assert not unexplained, [(key, billed[key], costs[key]) for key in unexplained[:10]]
    assert stats["throttled"] == 0

    quarter = max(1, len(rss) // 4)
    first = statistics.median(value for _, value in rss[:quarter]) if rss else 0
    last = statistics.median(value for _, value in rss[-quarter:]) if rss else 0
    if rss:
        assert last - first < RSS_GROWTH_LIMIT, rss

    injected = Counter({kind: stats["faults"].get(kind, 0) for kind in FAULTS})
    twice = sum(1 for count in billed.values() if count > 1)
    trial.inputs += len(rows)
    trial.saved += len(saved)
    trial.faults.update(injected)
    trial.billed_twice += twice
    trial.billed_twice_unexplained += len(unexplained)
    ways = ", ".join(f"{how} {n}" for how, n in sorted(landings.events.items()))
    memory = (
        f"resident memory {first / 1024:.1f} MiB in the first quarter, {last / 1024:.1f} MiB "
        f"in the last ({len(rss)} looks)"
        if rss
        else "memory not measured (no /proc)"
    )
    trial.note(
        f"one watcher for {SOAK_SECONDS:.0f} s (--settle {SETTLE:g}), {len(rows)} landings "
        f"({ways}) of {len(landings.contents)} distinct photos; faults per call: 2 % each of "
        f"{', '.join(FAULTS)} ({sum(injected.values())} injected in {stats['calls']} calls); "
        f"every landing has its row ({outcomes['done']} done, {outcomes['skipped']} skipped: "
        f"copies and touches, nothing paid), {len(saved)} results open in Pillow at their "
        f"row's size; billed {stats['billed']} times for {len(billed)} photos ({twice} more "
        f"than once, each explained on its journal row; {len(unexplained)} unexplained); "
        f"{memory}"
    )
