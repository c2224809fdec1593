"""Stop signals that always stop: SIGTERM, and Ctrl-C twice, end a run within seconds
whatever it waits on (a FIFO whose writer stays open, a stdin nobody closes, a result or
a reply trickling in), with a report row for every input read and the calls cut short
booked as possibly paid; no sequence of signals, at any moment, makes CPython print
"Fatal Python error" (it did with a thread blocked reading stdin at exit).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import report_rows, wait_until, write_list
from tests.reliability.support import (
    Conn,
    Received,
    Trial,
    finish,
    hostile_server,
    journal_costs,
    start,
)
from zuotang_cli.status import ExitStatus

pytestmark = pytest.mark.timing  # real signal timing, and a stop within 5 s

SUITE = "Stop signals"
N_INPUTS = 3
STOP_WITHIN = 5.0
"""Seconds from the first signal to the end of the process (the issue's bound)."""
FATAL = "Fatal Python error"
SEQUENCES = {
    "SIGTERM": ((signal.SIGTERM,), ExitStatus.TERMINATED),
    "Ctrl-C x2": ((signal.SIGINT, signal.SIGINT), ExitStatus.INTERRUPTED),
}


async def trickling_reply(request: Received, conn: Conn) -> None:
    """A 200 whose JSON body comes a byte every half second (never ends in a test)."""
    body = b'{"status": 200, "data": {"state": 1, "image": "http://127.0.0.1:9/r.png"}}'
    await conn.head(200, {"Content-Type": "application/json"}, content_length=len(body))
    for byte in body:
        await conn.send(bytes([byte]))
        await asyncio.sleep(0.5)


def send(proc: subprocess.Popen[bytes], signals: tuple[signal.Signals, ...]) -> float:
    """Send ``signals`` 0.3 s apart (real signal timing: the point); the time of the
    first."""
    first = time.monotonic()
    for number, sig in enumerate(signals):
        if number:
            time.sleep(0.3)
        proc.send_signal(sig)
    return first


def open_writer(fifo: Path, timeout: float = 20.0) -> int:
    """The FIFO's write end, once the run has opened its read end (never blocks: a run
    that died before would hang the test)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:  # ENXIO: no reader yet
            assert time.monotonic() < deadline, "the run never opened the FIFO"
            time.sleep(0.05)


@pytest.fixture
def fifo(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "list.fifo"
    os.mkfifo(path)
    yield path


@pytest.mark.parametrize("sequence", list(SEQUENCES))
@pytest.mark.parametrize("waiting_on", ["fifo", "stdin", "peer"])
def test_a_stop_signal_ends_the_run_whatever_it_waits_on(
    trial: Trial, tmp_path: Path, fifo: Path, waiting_on: str, sequence: str
) -> None:
    """Inputs from an open FIFO, an open stdin or a list file, every call stuck on a
    trickling reply: the run ends within 5 s, one row per input, the calls possibly paid."""
    signals, expected = SEQUENCES[sequence]
    out = tmp_path / "out"
    with hostile_server(trickling_reply) as server:
        urls = [f"http://img.test/{waiting_on}-{i}.png" for i in range(N_INPUTS)]
        source = {"fifo": str(fifo), "stdin": "-", "peer": str(tmp_path / "urls.txt")}
        if waiting_on == "peer":
            write_list(tmp_path / "urls.txt", urls)
        proc = start(
            source[waiting_on],
            "-o",
            str(out),
            "--timeout",
            "60",
            "--qps",
            "50",
            "--summary-json",
            str(tmp_path / "summary.json"),
            endpoint=f"{server.url}/tasks/visual/scale",
        )
        lines = "".join(url + "\n" for url in urls).encode()
        writer = None
        assert proc.stdin is not None
        if waiting_on == "fifo":
            writer = open_writer(fifo)  # held open: the list never ends
            os.write(writer, lines)
        elif waiting_on == "stdin":
            proc.stdin.write(lines)  # and stdin stays open
            proc.stdin.flush()
        try:
            calls = lambda: sum(1 for r in server.received if r.method == "POST")  # noqa: E731
            wait_until(lambda: calls() >= N_INPUTS, timeout=20)
            first = send(proc, signals)
            proc.wait(timeout=30)  # before anything closes the list: no EOF helps it
            took = time.monotonic() - first
        finally:
            if writer is not None:
                os.close(writer)
        run = finish(trial, proc)
    trial.inputs += N_INPUTS
    assert run.returncode == expected, run.stderr
    assert took < STOP_WITHIN, (took, run.stderr)
    assert FATAL not in run.stderr
    rows = report_rows(out)
    assert sorted(row["input"] for row in rows) == sorted(urls)  # one row per input read
    assert all(row["outcome"] == "failed" for row in rows), rows
    assert all(row["error_class"] == "interrupted" for row in rows), rows
    assert all("possibly paid" in row["message"] for row in rows), rows
    summary = json.loads((tmp_path / "summary.json").read_text(encoding="utf-8"))
    assert summary["exit_code"] == expected
    assert summary["possibly_paid"] == N_INPUTS and summary["paid_calls"] == 0
    costs = journal_costs(out)
    assert [costs[url][:3] for url in urls] == [(0, 1, 1)] * N_INPUTS  # possibly paid, no result
    trial.note(
        f"{sequence} with {waiting_on}: exit {run.returncode} in {took:.2f} s, "
        f"{len(rows)}/{N_INPUTS} rows, {summary['possibly_paid']} possibly paid"
    )


@pytest.mark.parametrize("sequence", list(SEQUENCES))
def test_a_fifo_nobody_writes_to_ends_the_run_with_no_input(
    trial: Trial, tmp_path: Path, fifo: Path, sequence: str
) -> None:
    """The reader is stuck opening a FIFO that has no writer at all: nothing was read,
    the report is its header, the run ends at once."""
    signals, expected = SEQUENCES[sequence]
    out = tmp_path / "out"
    proc = start(str(fifo), "-o", str(out), endpoint="http://127.0.0.1:9/tasks/visual/scale")
    wait_until(lambda: (out / "report.csv").exists(), timeout=20)
    # The reader is in open() by now (nothing tells from outside that a thread blocks in
    # open(); the report file says the run got that far).
    time.sleep(0.5)
    first = send(proc, signals)
    proc.wait(timeout=30)
    took = time.monotonic() - first
    run = finish(trial, proc)
    assert run.returncode == expected, run.stderr
    assert took < STOP_WITHIN and FATAL not in run.stderr
    assert report_rows(out) == []
    trial.note(f"{sequence} with a FIFO nobody opened for writing: exit {expected} in {took:.2f} s")


# ---------------------------------------------------------------------------------------
# The fuzz


def fuzz_once(
    trial: Trial, emulator: Any, tmp_path: Path, rng: random.Random, via_stdin: bool
) -> str:
    """One 200-input run, stdin held open or a list file, with 1-3 random signals at
    random moments from its start (imports and set-up included)."""
    tmp_path.mkdir()
    out = tmp_path / "out"
    urls = [emulator.file_url(f"f{i}.png") for i in range(200)]
    listed = write_list(tmp_path / "urls.txt", urls)
    source = "-" if via_stdin else str(listed)
    proc = start(source, "-o", str(out), "--qps", "50", endpoint=emulator.endpoint)
    assert proc.stdin is not None
    if via_stdin:
        proc.stdin.write(listed.read_bytes())  # and it stays open
        proc.stdin.flush()
    sequence = [rng.choice((signal.SIGINT, signal.SIGTERM)) for _ in range(rng.randint(1, 3))]
    delays = [rng.uniform(0.0, 2.5)] + [rng.uniform(0.0, 0.4) for _ in sequence[1:]]
    handled = None
    for delay, sig in zip(delays, sequence, strict=True):
        time.sleep(delay)
        if handled is None:
            handled = catches_sigterm(proc.pid)
        if proc.poll() is None:
            proc.send_signal(sig)
    last = time.monotonic()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    took = time.monotonic() - last
    started_at = delays[0]
    # Before zuotang's handler is in place (Python still importing) a signal does what
    # it does to any Python program: SIGTERM kills, SIGINT raises KeyboardInterrupt.
    early = handled is False
    run = finish(trial, proc, traceback_expected=early)
    label = "+".join(signal.Signals(s).name for s in sequence) + f"@{started_at:.2f}s"
    assert FATAL not in run.stderr, (label, run.stderr[-2000:])
    allowed = {130, 143} | ({-signal.SIGINT, -signal.SIGTERM} if early else set())
    assert run.returncode in allowed, (label, handled, run.returncode, run.stderr[-2000:])
    assert took < 10, (label, took)
    if not early:
        rows = report_rows(out) if (out / "report.csv").exists() else []
        # A stop cuts the reading of the list short (promptly, whatever its length): every
        # input read has its row, once, and they are the list's first ones, with no gap.
        assert sorted(row["input"] for row in rows) == sorted(urls[: len(rows)]), label
    trial.inputs += 200
    return f"{label} -> {run.returncode}"


def catches_sigterm(pid: int) -> bool | None:
    """Whether the process has a handler for SIGTERM (zuotang's: Python sets none of
    its own), from /proc; None where there is no /proc."""
    try:
        status = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
    except OSError:
        return None
    caught = next(line for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(caught.split()[1], 16) >> (signal.SIGTERM - 1) & 1)


def fuzz(trial: Trial, emulator_factory: Any, tmp_path: Path, runs: int, seed: int) -> None:
    emu = emulator_factory(cheap=True, qps=10_000, latency=(0.5, 1.5))  # runs of 4 s or more
    rng = random.Random(seed)
    outcomes = [
        fuzz_once(trial, emu, tmp_path / f"run{i}", rng, via_stdin=i % 2 == 0) for i in range(runs)
    ]
    trial.note(f"{runs} runs of 200 inputs, seed {seed}: " + "; ".join(outcomes))


def test_a_fuzz_of_signal_timings_never_ends_in_a_fatal_error(
    trial: Trial, emulator: Any, tmp_path: Path
) -> None:
    """8 runs of 200 inputs (stdin held open in half of them), 1-3 signals each."""
    fuzz(trial, emulator, tmp_path, runs=8, seed=20)


@pytest.mark.reliability
@pytest.mark.timeout(900)
def test_a_long_fuzz_of_signal_timings(trial: Trial, emulator: Any, tmp_path: Path) -> None:
    """60 runs of 200 inputs, 1-3 signals each at random moments."""
    fuzz(trial, emulator, tmp_path, runs=60, seed=2020)
