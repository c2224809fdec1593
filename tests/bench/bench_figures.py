"""The five measurements of ``make bench``; each returns JSON-ready figures.

Every figure comes from a run made here: emulator counters (``/__emulator__/stats``), the
client's own report, ``os.wait4`` of the ``zuotang`` process, and /proc polling.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.bench.bench_http import STACKS
from tests.bench.bench_naive import NaiveRun, Target, five_at_a_time, sequential
from tests.bench.bench_procs import (
    APPCODE,
    REPO,
    ZUOTANG,
    EmulatorSpec,
    ProcessRun,
    emulator,
    enhance_help,
    read_report,
    run_enhance,
    sample_at,
)

CALL_LATENCY = "1-3"
FAST_LATENCY = "0-0.01"
FORBIDDEN_AT_START = (
    "httpx",
    "rich.progress",
    "PIL",
    "zuotang_cli.emulator",
    "starlette",
    "uvicorn",
)

Figures = dict[str, Any]


@dataclass(frozen=True)
class Sizes:
    """How big each measurement is (``--quick`` shrinks them for development)."""

    utilization: tuple[tuple[float, int], ...]
    """(QPS, N) of each utilization run; the last one also gives the client cost."""
    side_by_side: tuple[float, int]
    dry_run_n: int
    real_n: int
    memory_qps: float
    startup_runs: int

    http: tuple[tuple[float, int], ...]
    """(QPS, N) of each run of the HTTP stacks compared on their own."""
    rerun: tuple[int, ...] = ()
    """Sizes of the done lists re-run (this code and the code before)."""


_UTILIZATION_FULL = ((2, 60), (20, 400), (100, 2000))
_UTILIZATION_QUICK = ((2, 10), (20, 60), (100, 300))
FULL = Sizes(
    _UTILIZATION_FULL,
    (2, 60),
    1_000_000,
    100_000,
    1000,
    9,
    _UTILIZATION_FULL,
    (20_000, 100_000, 1_000_000),
)
QUICK = Sizes(_UTILIZATION_QUICK, (2, 10), 100_000, 10_000, 1000, 3, _UTILIZATION_QUICK, (20_000,))


# -- helpers ------------------------------------------------------------------------------


@dataclass
class ZuotangRun:
    run: ProcessRun
    stats: dict[str, Any]
    rows: list[dict[str, str]]
    output_dir: Path

    @property
    def done(self) -> int:
        return sum(row["outcome"] == "done" for row in self.rows)


def zuotang_on(
    spec: EmulatorSpec, n: int, workdir: Path, name: str, *args: str, dry: bool = False
) -> ZuotangRun:
    """``zuotang enhance`` over ``n`` URLs against a fresh emulator of ``spec``."""
    with emulator(spec, workdir) as emu:
        urls = emu.write_urls(workdir / f"{name}.txt", n)
        output_dir = workdir / name
        args = (str(urls), "--qps", f"{spec.qps:g}", *args)
        run = run_enhance(args, emu.endpoint, output_dir, count_stdout=dry)
        stats = emu.stats()
    rows = read_report(output_dir) if (output_dir / "report.csv").exists() else []
    return ZuotangRun(run, stats, rows, output_dir)


def call_starts(arrivals: Sequence[float], n: int, qps: float) -> Figures:
    """(N-1)/QPS over the time from the first call's arrival to the last one's."""
    ideal = (n - 1) / qps
    span = max(arrivals) - min(arrivals) if len(arrivals) > 1 else 0.0
    return {
        "ideal_start_span_s": ideal,
        "start_span_s": span,
        "utilization": ideal / span if span > 0 else None,
    }


def process_figures(run: ProcessRun, n: int) -> Figures:
    return {
        "exit_code": run.exit_code,
        "wall_s": run.wall_s,
        "cpu_s": run.cpu_s,
        "cpu_ms_per_image": 1000 * run.cpu_s / n,
        "peak_rss_mb": run.peak_rss_mb,
        **({"stderr_tail": run.stderr_tail} if run.exit_code != 0 else {}),
    }


# -- 1 and 3: utilization at each QPS, client cost ----------------------------------------


def utilization(qps: float, n: int, workdir: Path) -> Figures:
    zt = zuotang_on(EmulatorSpec(qps, CALL_LATENCY), n, workdir, f"util-q{qps:g}")
    slowest = max((float(row["elapsed"]) for row in zt.rows if row["elapsed"]), default=0.0)
    ideal = (n - 1) / qps
    return {
        "qps": qps,
        "n": n,
        "latency_s": CALL_LATENCY,
        "done": zt.done,
        "calls": zt.stats["calls"],
        "throttled": zt.stats["throttled"],
        "billed": zt.stats["billed"],
        "max_calls_in_flight": zt.stats["max_in_flight"],
        **call_starts(zt.stats["arrivals"], n, qps),
        **process_figures(zt.run, n),
        "slowest_call_and_download_s": slowest,
        "wall_bound_s": ideal + slowest,
        "wall_over_bound_s": zt.run.wall_s - (ideal + slowest),
    }


# -- 2: side by side ----------------------------------------------------------------------

NaiveClient = Callable[[Target, list[str]], NaiveRun]
NAIVE_CLIENTS: tuple[tuple[str, NaiveClient], ...] = (
    ("sequential loop", sequential),
    ("5 at a time, no limiter", five_at_a_time),
)


def _client_row(
    name: str, n: int, qps: float, done: int, wall: float, stats: dict[str, Any]
) -> Figures:
    rate = done / wall
    return {
        "client": name,
        "qps": qps,
        "n": n,
        "done": done,
        "wall_s": wall,
        "images_per_s": rate,
        "fraction_of_cap": rate / qps,
        "calls": stats["calls"],
        "throttled": stats["throttled"],
        "utilization": call_starts(stats["arrivals"], n, qps)["utilization"],
    }


def _naive(name: str, client: NaiveClient, spec: EmulatorSpec, n: int, workdir: Path) -> Figures:
    with emulator(spec, workdir) as emu:
        output_dir = workdir / ("side-" + "-".join(name.replace(",", "").split()))
        output_dir.mkdir()
        urls = [emu.image_url(k) for k in range(n)]
        run = client(Target(emu.endpoint, APPCODE, output_dir), urls)
        stats = emu.stats()
    row = _client_row(name, n, spec.qps, run.done, run.wall_s, stats)
    return {**row, "throttled_seen_by_client": run.throttled, "failed": run.failed}


def side_by_side(qps: float, n: int, workdir: Path) -> list[Figures]:
    spec = EmulatorSpec(qps, CALL_LATENCY)
    rows = [_naive(name, client, spec, n, workdir) for name, client in NAIVE_CLIENTS]
    zt = zuotang_on(spec, n, workdir, "side-zuotang")
    rows.append(_client_row("zuotang enhance", n, qps, zt.done, zt.run.wall_s, zt.stats))
    return rows


# -- 4: memory with a huge list -----------------------------------------------------------


def _flatness(run: ProcessRun, n: int) -> Figures:
    """Peak RSS until a tenth of the inputs were done, against the peak over the whole run.

    Peaks, not single samples: a structure that grows with the inputs is freed when they
    end, before the last lines appear (stdout to a file is block-buffered).
    """
    tenth = sample_at(run.samples, n // 10)
    if tenth is None or tenth.rows == 0:
        return {"rss_ratio": None, "note": "no progress seen while it ran"}
    early = max(s.rss_mb for s in run.samples if s.elapsed <= tenth.elapsed)
    late = max(s.rss_mb for s in run.samples)
    grown = late - early
    return {
        "rss_early_mb": early,
        "rss_early_at_rows": tenth.rows,
        "rss_late_mb": late,
        "rss_end_mb": run.samples[-1].rss_mb,
        "rss_ratio": late / early,
        "rss_growth_bytes_per_input": grown * 2**20 / (n - tenth.rows) if n > tenth.rows else None,
    }


def dry_run(n: int, qps: float, workdir: Path) -> Figures:
    if "--dry-run" not in enhance_help():
        return {"available": False, "n": n}
    spec = EmulatorSpec(qps, FAST_LATENCY)
    zt = zuotang_on(spec, n, workdir, "dry-run", "--dry-run", dry=True)
    return {
        "available": True,
        "n": n,
        "plan_lines": zt.run.rows,
        "calls_made": zt.stats["calls"],
        **process_figures(zt.run, n),
        **_flatness(zt.run, n),
    }


def real_run(n: int, qps: float, workdir: Path) -> Figures:
    zt = zuotang_on(EmulatorSpec(qps, FAST_LATENCY), n, workdir, "real")
    return {
        "n": n,
        "qps": qps,
        "latency_s": FAST_LATENCY,
        "done": zt.done,
        "throttled": zt.stats["throttled"],
        "images_per_s": zt.done / zt.run.wall_s,
        **call_starts(zt.stats["arrivals"], n, qps),
        **process_figures(zt.run, n),
        **_flatness(zt.run, n),
    }


# -- 5: start-up --------------------------------------------------------------------------

STARTUP_COMMANDS: dict[str, list[str]] = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "zuotang --version": [ZUOTANG, "--version"],
    "zuotang enhance --help": [ZUOTANG, "enhance", "--help"],
}


def median_wall(command: list[str], runs: int) -> float:
    subprocess.run(command, capture_output=True, check=True)  # warm the file cache
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, capture_output=True, check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def import_times(*args: str) -> list[tuple[str, int, int]]:
    """(module, cumulative µs, depth) of every import ``zuotang ARGS`` makes.

    The console script is run by ``python -X importtime`` (as its shebang would run it):
    the ``PYTHONIMPORTTIME`` variable is not honoured by every build.
    """
    command = [sys.executable, "-X", "importtime", ZUOTANG, *args]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    found = []
    for line in done.stderr.splitlines():
        _, _, rest = line.partition("import time:")
        fields = rest.split("|")
        if len(fields) != 3 or not fields[1].strip().isdigit():
            continue
        name = fields[2].rstrip()
        depth = (len(name) - len(name.lstrip()) - 1) // 2
        found.append((name.strip(), int(fields[1]), depth))
    if not found:
        raise RuntimeError(f"no import times in the output of {command}")
    return found


def _is_forbidden(module: str) -> bool:
    return any(module == bad or module.startswith(bad + ".") for bad in FORBIDDEN_AT_START)


def startup(runs: int) -> Figures:
    medians = {label: median_wall(cmd, runs) for label, cmd in STARTUP_COMMANDS.items()}
    imports = import_times("--version")
    top = sorted((i for i in imports if i[2] == 0), key=lambda i: -i[1])[:8]
    return {
        "runs": runs,
        "median_s": medians,
        "version_over_bare_s": medians["zuotang --version"] - medians["python -c pass"],
        "help_over_bare_s": medians["zuotang enhance --help"] - medians["python -c pass"],
        "modules_imported_by_version": len(imports),
        "forbidden_imported_by_version": sorted({m for m, _, _ in imports if _is_forbidden(m)}),
        "slowest_top_level_imports_ms": {m: us / 1000 for m, us, _ in top},
    }


# -- 6: the HTTP stack alone --------------------------------------------------------------


def http_stacks(qps: float, n: int, workdir: Path) -> list[Figures]:
    """A call and its download per image and nothing else, on each stack in its own
    process, against one emulator (allowing far more than ``qps``: pacing is the client's)."""
    rows = []
    with emulator(EmulatorSpec(10 * qps, CALL_LATENCY), workdir) as emu:
        for stack in STACKS:
            command = [sys.executable, "-m", "tests.bench.bench_http", stack, emu.url, APPCODE]
            done = subprocess.run(
                [*command, str(n), f"{qps:g}"],
                capture_output=True,
                text=True,
                check=False,
                timeout=600,
                cwd=REPO,
            )
            if done.returncode != 0:
                rows.append({"stack": stack, "qps": qps, "n": n, "error": done.stderr[-2000:]})
                continue
            run = json.loads(done.stdout)
            rows.append(
                {
                    "stack": stack,
                    "qps": qps,
                    "n": n,
                    **run,
                    "cpu_ms_per_image": 1000 * run["cpu_s"] / n,
                }
            )
    return rows
