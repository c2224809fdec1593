"""``python -m tests.bench [--quick] [--only NAME ...]``: run, print, write results.json."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from tests.bench import bench_figures as bf
from tests.bench import bench_rerun
from tests.bench.bench_report import machine, render, results, write

RESULTS = Path(__file__).resolve().parent / "results.json"
PARTS = ("startup", "utilization", "side_by_side", "memory", "http", "rerun")


def log(message: str) -> None:
    sys.stderr.write(f"bench: {message}\n")
    sys.stderr.flush()


def measure_utilization(sizes: bf.Sizes, workdir: Path) -> bf.Figures:
    runs = []
    for qps, n in sizes.utilization:
        log(f"utilization at QPS {qps:g}, N={n}")
        runs.append(bf.utilization(qps, n, workdir))
    last = runs[-1]
    keys = ("qps", "n", "cpu_s", "cpu_ms_per_image", "peak_rss_mb")
    return {"utilization": runs, "client_cost": {key: last[key] for key in keys}}


def measure_side_by_side(sizes: bf.Sizes, workdir: Path) -> bf.Figures:
    qps, n = sizes.side_by_side
    log(f"side by side at QPS {qps:g}, N={n} (the sequential loop takes about 2 s an image)")
    return {"side_by_side": bf.side_by_side(qps, n, workdir)}


def measure_memory(sizes: bf.Sizes, workdir: Path) -> bf.Figures:
    log(f"--dry-run over {sizes.dry_run_n:,} URLs (if the option exists)")
    dry = bf.dry_run(sizes.dry_run_n, sizes.memory_qps, workdir)
    log(f"real run over {sizes.real_n:,} URLs at QPS {sizes.memory_qps:g}")
    real = bf.real_run(sizes.real_n, sizes.memory_qps, workdir)
    return {"memory": {"dry_run": dry, "real": real}}


def measure_startup(sizes: bf.Sizes, workdir: Path) -> bf.Figures:
    log(f"start-up, median of {sizes.startup_runs} runs")
    return {"startup": bf.startup(sizes.startup_runs)}


def measure_http(sizes: bf.Sizes, workdir: Path) -> bf.Figures:
    rows = []
    for qps, n in sizes.http:
        log(f"the HTTP stacks alone at QPS {qps:g}, N={n}")
        rows += bf.http_stacks(qps, n, workdir)
    return {"http": rows}


def measure_rerun(sizes: bf.Sizes, workdir: Path) -> bf.Figures:
    return {"rerun": bench_rerun.measure(sizes.rerun, workdir, log)}


MEASUREMENTS: dict[str, Callable[[bf.Sizes, Path], bf.Figures]] = {
    "startup": measure_startup,
    "utilization": measure_utilization,
    "side_by_side": measure_side_by_side,
    "memory": measure_memory,
    "http": measure_http,
    "rerun": measure_rerun,
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller N everywhere (development)")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=PARTS,
        default=list(PARTS),
        metavar="PART",
        help=f"run only these parts: {', '.join(PARTS)}",
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help="where results go (JSON)")
    parser.add_argument(
        "--strict", action="store_true", help="exit 1 when a target is missed (default: 0)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = bf.QUICK if args.quick else bf.FULL
    started, clock, host = datetime.now().astimezone(), time.monotonic(), machine()
    figures: bf.Figures = {}
    with tempfile.TemporaryDirectory(prefix="zuotang-bench-") as tmp:
        for part in PARTS:
            if part in args.only:
                figures.update(MEASUREMENTS[part](sizes, Path(tmp)))
        log("cleaning up")
    mode = "quick" if args.quick else "full"
    payload = results(mode, started, time.monotonic() - clock, host, figures)
    print(render(payload))
    print(f"\n{mode} bench in {payload['duration_s']:.0f} s; results: {args.output}")
    write(args.output, payload)
    missed = [t for t in payload["targets"] if t["status"] == "FAIL"]
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
