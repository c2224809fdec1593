"""The processes the bench drives: the emulator, ``zuotang enhance``, and /proc polling.

Both run as subprocesses of the bench, so that neither one's CPU counts in the other's,
and ``os.wait4`` gives the exact CPU time and peak RSS of the one ``zuotang`` process.
"""

from __future__ import annotations

import contextlib
import csv
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import httpx

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ZUOTANG = str(BIN / "zuotang")
APPCODE = "bench-code"
SEED = 7
STATS_PATH = "/__emulator__/stats"
SCALE_PATH = "/tasks/visual/scale"
REPORT = "report.csv"
POLL_INTERVAL = 0.05
KIB = 1024


# -- the emulator -------------------------------------------------------------------------


@dataclass(frozen=True)
class EmulatorSpec:
    qps: float
    latency: str
    """``MIN-MAX`` seconds, as ``zuotang emulator --latency`` takes it."""
    seed: int = SEED

    def command(self) -> list[str]:
        return [
            *(sys.executable, "-m", "zuotang_cli", "emulator", "--port", "0", "--cheap"),
            *("--qps", f"{self.qps:g}", "--latency", self.latency),
            *("--seed", str(self.seed), "--appcode", APPCODE),
        ]


@dataclass(frozen=True)
class Emulator:
    url: str

    @property
    def endpoint(self) -> str:
        return self.url + SCALE_PATH

    def image_url(self, n: int) -> str:
        """Input ``n``: any URL does, the emulator does not fetch it in cheap mode."""
        return f"{self.url}/files/i{n}.png"

    def stats(self) -> dict[str, Any]:
        response = httpx.get(self.url + STATS_PATH, timeout=120, trust_env=False)
        response.raise_for_status()
        stats: dict[str, Any] = response.json()
        return stats

    def write_urls(self, path: Path, count: int) -> Path:
        with path.open("w", encoding="ascii") as fh:
            fh.writelines(self.image_url(n) + "\n" for n in range(count))
        return path


@contextlib.contextmanager
def emulator(spec: EmulatorSpec, workdir: Path) -> Iterator[Emulator]:
    """Start ``zuotang emulator`` in its own process; SIGTERM it on exit."""
    log_path = workdir / f"emulator-{time.monotonic_ns()}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            spec.command(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log
        )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().decode().strip()
        if not url.startswith("http://"):
            raise RuntimeError(f"the emulator did not start: {_tail(log_path)}")
        yield Emulator(url)
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


def _tail(path: Path, limit: int = 2000) -> str:
    return path.read_text(errors="replace")[-limit:]


# -- polling a running process ------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    elapsed: float
    rows: int
    """Inputs finished so far (report rows, or stdout lines of a dry run)."""
    rss_mb: float


class RowCounter:
    """Counts the lines of a file as it grows (less ``header`` lines)."""

    def __init__(self, path: Path, header: int) -> None:
        self.path = path
        self.header = header
        self._stream: BinaryIO | None = None
        self._lines = 0

    def rows(self) -> int:
        if self._stream is None:
            try:
                self._stream = self.path.open("rb")
            except FileNotFoundError:
                return 0
        while chunk := self._stream.read(1 << 20):
            self._lines += chunk.count(b"\n")
        return max(0, self._lines - self.header)

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()


def rss_mb(pid: int) -> float | None:
    """Resident set size of ``pid`` from /proc (None once it has gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / KIB
    return None  # a zombie has no VmRSS line


class Sampler:
    """A thread polling a process's RSS and how far it got (lines of a growing file)."""

    def __init__(self, pid: int, counter: RowCounter) -> None:
        self.pid = pid
        self.counter = counter
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._start = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(POLL_INTERVAL):
            rss = rss_mb(self.pid)
            if rss is None:
                return
            sample = Sample(time.monotonic() - self._start, self.counter.rows(), rss)
            self.samples.append(sample)


def sample_at(samples: Sequence[Sample], rows: int) -> Sample | None:
    """The first sample with at least ``rows`` rows done, else the last one taken."""
    for sample in samples:
        if sample.rows >= rows:
            return sample
    return samples[-1] if samples else None


# -- zuotang enhance ----------------------------------------------------------------------


@dataclass
class ProcessRun:
    exit_code: int
    wall_s: float
    cpu_s: float
    """User + system CPU of the process (from wait4)."""
    peak_rss_mb: float
    """ru_maxrss of the process (from wait4)."""
    stderr_tail: str
    rows: int
    """Inputs finished at the end (as counted for the samples)."""
    samples: list[Sample] = field(default_factory=list)


def enhance_env(endpoint: str) -> dict[str, str]:
    return {**os.environ, "ZUOTANG_APPCODE": APPCODE, "ZUOTANG_ENDPOINT": endpoint}


def run_enhance(
    args: Sequence[str], endpoint: str, output_dir: Path, *, count_stdout: bool = False
) -> ProcessRun:
    """``zuotang enhance ARGS -o OUTPUT_DIR -q``; waits for it, polling its RSS and progress:
    the rows of its report, or with ``count_stdout`` its stdout lines (a dry run's plan)."""
    command = [ZUOTANG, "enhance", *args, "-o", str(output_dir), "-q"]
    stdout_path, stderr_path = (Path(f"{output_dir}.{name}") for name in ("stdout", "stderr"))
    counter = RowCounter(stdout_path, 0) if count_stdout else RowCounter(output_dir / REPORT, 1)
    with stdout_path.open("wb") as stdout, stderr_path.open("wb") as stderr:
        started = time.monotonic()
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            env=enhance_env(endpoint),
        )
        with contextlib.closing(counter):
            with Sampler(proc.pid, counter) as sampler:
                _, status, usage = os.wait4(proc.pid, 0)
            wall = time.monotonic() - started
            rows = counter.rows()
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    return ProcessRun(
        exit_code=proc.returncode,
        wall_s=wall,
        cpu_s=usage.ru_utime + usage.ru_stime,
        peak_rss_mb=usage.ru_maxrss / KIB,
        stderr_tail=_tail(stderr_path),
        rows=rows,
        samples=sampler.samples,
    )


def read_report(output_dir: Path) -> list[dict[str, str]]:
    with (output_dir / REPORT).open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def enhance_help() -> str:
    """``zuotang enhance --help`` (to see which options this version has)."""
    done = subprocess.run(
        [ZUOTANG, "enhance", "--help"], capture_output=True, text=True, check=False, timeout=60
    )
    return done.stdout
