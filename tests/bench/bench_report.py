"""Targets checked against the figures, the printed table, and ``results.json``."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tests.bench.bench_figures import Figures
from tests.bench.bench_procs import REPO

UTILIZATION_MIN = 0.98
WALL_OVER_BOUND_MAX = 2.0
SPEEDUP_MIN = 3.0
CPU_MS_MAX = 2.0
RSS_MB_MAX = 150.0
RSS_RATIO_MAX = 1.5
STARTUP_OVER_BARE_MAX = 0.15
RERUN_LINES_PER_S_MIN = 50_000
RERUN_RSS_GROWTH_MB_MAX = 20.0
"""A re-run's memory stays flat: at most this much more at 1M done lines than at 100k."""
"""A re-run over a done list: at least this many lines a second (issue 12)."""

PASS, FAIL, NOT_MEASURED, INFO = "pass", "FAIL", "not measured", "info"


@dataclass(frozen=True)
class Target:
    name: str
    measured: str
    limit: str
    status: str


def _check(name: str, value: float | None, limit: float, *, at_most: bool, shown: str) -> Target:
    sign = "<=" if at_most else ">="
    if value is None:
        return Target(name, shown, f"{sign} {limit:g}", NOT_MEASURED)
    ok = value <= limit if at_most else value >= limit
    return Target(name, shown, f"{sign} {limit:g}", PASS if ok else FAIL)


# -- targets ------------------------------------------------------------------------------


def utilization_targets(runs: Sequence[Figures]) -> list[Target]:
    targets = []
    for run in runs:
        qps, util, over = f"QPS {run['qps']:g}", run["utilization"], run["wall_over_bound_s"]
        targets += [
            _check(f"utilization, {qps}", util, UTILIZATION_MIN, at_most=False, shown=_f(util)),
            _check(
                f"throttle replies, {qps}",
                run["throttled"],
                0,
                at_most=True,
                shown=str(run["throttled"]),
            ),
            _check(
                f"wall - (ideal + slowest call), {qps}",
                over,
                WALL_OVER_BOUND_MAX,
                at_most=True,
                shown=f"{run['wall_s']:.2f} s - {run['wall_bound_s']:.2f} s = {over:+.2f} s",
            ),
        ]
    return targets


def side_by_side_targets(rows: Sequence[Figures]) -> list[Target]:
    by_client = {row["client"]: row for row in rows}
    ours, loop = by_client["zuotang enhance"], by_client["sequential loop"]
    naive = by_client["5 at a time, no limiter"]
    speedup = ours["images_per_s"] / loop["images_per_s"] if loop["images_per_s"] else None
    shown = f"{ours['images_per_s']:.3f} / {loop['images_per_s']:.3f} img/s = {_f(speedup, 2)}x"
    throttles = f"zuotang {ours['throttled']}, 5-at-a-time {naive['throttled']}"
    return [
        _check(
            "speed-up over the sequential loop", speedup, SPEEDUP_MIN, at_most=False, shown=shown
        ),
        _check(
            "throttle replies (vs the no-limiter client)",
            ours["throttled"],
            0,
            at_most=True,
            shown=throttles,
        ),
    ]


def cost_targets(cost: Figures) -> list[Target]:
    ms = cost.get("cpu_ms_per_image")
    name = f"CPU per image, QPS {cost.get('qps', '?'):g}" if cost else "CPU per image"
    return [_check(name, ms, CPU_MS_MAX, at_most=True, shown=f"{_f(ms, 3)} ms")]


def memory_targets(memory: Figures) -> list[Target]:
    real, dry = memory.get("real", {}), memory.get("dry_run", {})
    n, peak, ratio = real.get("n", 0), real.get("peak_rss_mb"), real.get("rss_ratio")
    targets = [
        _check(
            f"peak RSS, {n:,} inputs", peak, RSS_MB_MAX, at_most=True, shown=f"{_f(peak, 1)} MB"
        ),
        _check(
            f"RSS flat (peak / peak to 10%), {n:,} inputs",
            ratio,
            RSS_RATIO_MAX,
            at_most=True,
            shown=_f(ratio, 2),
        ),
    ]
    if dry.get("available"):
        shown = f"peak {_f(dry['peak_rss_mb'], 1)} MB, ratio {_f(dry.get('rss_ratio'), 2)}"
        targets.append(Target(f"--dry-run over {dry['n']:,} URLs", shown, "(no target)", INFO))
    elif dry:
        targets.append(Target("--dry-run", "not available", "(no target)", NOT_MEASURED))
    return targets


def startup_targets(startup: Figures) -> list[Target]:
    over, forbidden = startup["version_over_bare_s"], startup["forbidden_imported_by_version"]
    return [
        _check(
            "zuotang --version over bare python",
            over,
            STARTUP_OVER_BARE_MAX,
            at_most=True,
            shown=f"{over:.3f} s",
        ),
        Target(
            "no httpx/rich.progress/PIL/emulator at --version",
            ", ".join(forbidden) or "none imported",
            "none",
            FAIL if forbidden else PASS,
        ),
    ]


def rerun_targets(rows: Sequence[Figures]) -> list[Target]:
    targets = []
    for row in rows[-1:]:  # the target is for the longest list: start-up weighs on the rest
        after = row["after"]
        name = f"re-run over {row['n']:,} done inputs: lines a second"
        shown = f"{after['lines_per_s']:,}"
        if "before" in row:
            shown += f" (before: {row['before']['lines_per_s']:,})"
        rate = after["lines_per_s"] if after["all_skipped"] else None
        targets.append(_check(name, rate, RERUN_LINES_PER_S_MIN, at_most=False, shown=shown))
    if len(rows) > 1:
        first, last = rows[-2], rows[-1]
        growth = last["after"]["peak_rss_mb"] - first["after"]["peak_rss_mb"]
        targets.append(
            _check(
                f"re-run peak RSS growth from {first['n']:,} to {last['n']:,} inputs, MB",
                growth,
                RERUN_RSS_GROWTH_MB_MAX,
                at_most=True,
                shown=f"+{growth:.1f} ({first['after']['peak_rss_mb']:.0f} -> "
                f"{last['after']['peak_rss_mb']:.0f} MB)",
            )
        )
    return targets


def all_targets(figures: Figures) -> list[Target]:
    targets: list[Target] = []
    if "utilization" in figures:
        targets += utilization_targets(figures["utilization"])
        targets += cost_targets(figures["client_cost"])
    if "side_by_side" in figures:
        targets += side_by_side_targets(figures["side_by_side"])
    if "memory" in figures:
        targets += memory_targets(figures["memory"])
    if "startup" in figures:
        targets += startup_targets(figures["startup"])
    if "rerun" in figures:
        targets += rerun_targets(figures["rerun"])
    return targets


# -- the table ----------------------------------------------------------------------------


def _f(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [list(map(str, headers)), *(list(map(str, row)) for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        padded = [
            c.rjust(w) if i else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        return "  ".join(padded).rstrip()

    return "\n".join([line(cells[0]), line(["-" * w for w in widths]), *map(line, cells[1:])])


UTILIZATION_COLUMNS = (
    ("QPS", "qps", "g"),
    ("N", "n", ""),
    ("done", "done", ""),
    ("throttled", "throttled", ""),
    ("start span s", "start_span_s", ".2f"),
    ("(N-1)/QPS s", "ideal_start_span_s", ".2f"),
    ("utilization", "utilization", ".4f"),
    ("wall s", "wall_s", ".2f"),
    ("ideal+slowest s", "wall_bound_s", ".2f"),
    ("over s", "wall_over_bound_s", "+.2f"),
    ("CPU ms/img", "cpu_ms_per_image", ".3f"),
    ("peak RSS MB", "peak_rss_mb", ".1f"),
)
SIDE_BY_SIDE_COLUMNS = (
    ("client", "client", ""),
    ("N", "n", ""),
    ("done", "done", ""),
    ("wall s", "wall_s", ".2f"),
    ("images/s", "images_per_s", ".3f"),
    ("of cap", "fraction_of_cap", ".3f"),
    ("throttled", "throttled", ""),
    ("start util", "utilization", ".3f"),
)
HTTP_COLUMNS = (
    ("stack", "stack", ""),
    ("QPS", "qps", "g"),
    ("N", "n", ""),
    ("done", "ok", ""),
    ("wall s", "wall_s", ".1f"),
    ("CPU s", "cpu_s", ".2f"),
    ("CPU ms/img", "cpu_ms_per_image", ".3f"),
)
MEMORY_COLUMNS = (
    ("run", "run", ""),
    ("N", "n", ","),
    ("exit", "exit_code", ""),
    ("wall s", "wall_s", ".1f"),
    ("peak RSS MB", "peak_rss_mb", ".1f"),
    ("peak to 10% MB", "rss_early_mb", ".1f"),
    ("10% at rows", "rss_early_at_rows", ","),
    ("peak polled MB", "rss_late_mb", ".1f"),
    ("ratio", "rss_ratio", ".2f"),
    ("growth B/input", "rss_growth_bytes_per_input", ".0f"),
)


def columns(spec: Sequence[tuple[str, str, str]], rows: Sequence[Figures]) -> str:
    def cell(row: Figures, key: str, fmt: str) -> str:
        value = row.get(key)
        return "n/a" if value is None else format(value, fmt)

    body = [[cell(row, key, fmt) for _, key, fmt in spec] for row in rows]
    return table([title for title, _, _ in spec], body)


def memory_rows(memory: Figures) -> list[Figures]:
    rows = []
    for label, run in (("--dry-run", memory.get("dry_run")), ("real", memory.get("real"))):
        if run and run.get("available") is False:
            rows.append({"run": f"{label}: not available", "n": run["n"]})
        elif run:
            rows.append({"run": label, **run})
    return rows


def rerun_table(rows: Sequence[Figures]) -> str:
    body = []
    for row in rows:
        for side in ("before", "after"):
            run = row.get(side)
            if run is not None:
                body.append(
                    (
                        f"{row['n']:,}",
                        side,
                        f"{run['wall_s']:.1f}",
                        f"{run['cpu_s']:.1f}",
                        f"{run['lines_per_s']:,}",
                        f"{run['peak_rss_mb']:.0f}",
                        "yes" if run["all_skipped"] and run["exit_code"] == 0 else "NO",
                    )
                )
    headers = ("inputs", "code", "wall s", "CPU s", "lines/s", "peak RSS MB", "all skipped")
    return table(headers, body)


def startup_table(startup: Figures) -> str:
    bare = startup["median_s"]["python -c pass"]
    rows = [(cmd, f"{s:.3f}", f"{s - bare:+.3f}") for cmd, s in startup["median_s"].items()]
    return table(("command", f"median of {startup['runs']}, s", "over bare s"), rows)


def render(results: Figures) -> str:
    figures, parts = results["figures"], [_header(results), ""]
    if "utilization" in figures:
        parts += [
            "1. Utilization: zuotang enhance, call latency 1-3 s, emulator enforcing the same QPS",
            columns(UTILIZATION_COLUMNS, figures["utilization"]),
            "",
            "3. Client cost: " + _cost_line(figures["client_cost"]),
            "",
        ]
    if "side_by_side" in figures:
        rows = figures["side_by_side"]
        parts += [
            f"2. Side by side at QPS {rows[0]['qps']:g}, call latency 1-3 s: "
            "a fresh emulator per client, same config, seed and inputs",
            columns(SIDE_BY_SIDE_COLUMNS, rows),
            "",
        ]
    if "memory" in figures:
        parts += [
            "4. Memory with a huge list: " + _real_line(figures["memory"].get("real", {})),
            columns(MEMORY_COLUMNS, memory_rows(figures["memory"])),
            "",
        ]
    if "startup" in figures:
        startup = figures["startup"]
        forbidden = ", ".join(startup["forbidden_imported_by_version"]) or "none"
        parts += [
            "5. Start-up",
            startup_table(startup),
            f"forbidden modules imported by zuotang --version: {forbidden}",
            "",
        ]
    if "http" in figures:
        parts += [
            "6. The HTTP stack alone: a call and its download per image, nothing else "
            "(call latency 1-3 s; CPU includes start-up)",
            columns(HTTP_COLUMNS, figures["http"]),
            "",
        ]
    if "rerun" in figures:
        parts += [
            "7. Re-run over a done list (every input skipped, no call), this code and before",
            rerun_table(figures["rerun"]),
            "",
        ]
    rows = [(t["name"], t["measured"], t["limit"], t["status"]) for t in results["targets"]]
    parts += ["Targets", table(("target", "measured", "limit", "status"), rows)]
    return "\n".join(parts)


def _header(results: Figures) -> str:
    host = results["machine"]
    changed = len(host["client_files_changed"])
    load = ", ".join(f"{x:.2f}" for x in host["load_average_at_start"])
    return (
        f"zuotang {host['zuotang_version']} at {host['commit']} (+{changed} client files changed), "
        f"{results['mode']} bench, {results['date']}: {host['nproc']} CPUs, "
        f"Python {host['python']}, load average at start {load}"
    )


def _cost_line(cost: Figures) -> str:
    return (
        f"QPS {cost['qps']:g}, N={cost['n']}: {cost['cpu_s']:.2f} CPU s = "
        f"{cost['cpu_ms_per_image']:.3f} ms/image, peak RSS {cost['peak_rss_mb']:.1f} MB"
    )


def _real_line(real: Figures) -> str:
    if not real:
        return "real run not measured"
    return (
        f"cheap emulator, QPS {real['qps']:g}, latency {real['latency_s']} s; real run: "
        f"{real['done']:,} done at {real['images_per_s']:.0f} images/s, "
        f"{real['throttled']} throttled, {real['cpu_ms_per_image']:.3f} CPU ms/image"
    )


# -- results.json -------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    from zuotang_cli import __version__

    return {
        "nproc": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "load_average_at_start": os.getloadavg(),
        "zuotang_version": __version__,
        **source_tree(),
    }


def source_tree() -> dict[str, Any]:
    """The commit measured, and the client files changed on top of it (read-only git)."""
    git = ["git", "--no-optional-locks", "-C", str(REPO)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    status = subprocess.run(
        [*git, "status", "--porcelain", "--", "zuotang_cli"], capture_output=True, text=True
    )
    changed = [line[3:] for line in status.stdout.splitlines()]
    return {"commit": head.stdout.strip() or None, "client_files_changed": changed}


def results(
    mode: str, started: datetime, duration: float, host: dict[str, Any], figures: Figures
) -> Figures:
    return {
        "bench": "zuotang make bench",
        "mode": mode,
        "date": started.astimezone(timezone.utc).isoformat(timespec="seconds"),
        "duration_s": duration,
        "machine": {**host, "load_average_at_end": os.getloadavg()},
        "figures": figures,
        "targets": [asdict(t) for t in all_targets(figures)],
    }


def write(path: Path, payload: Figures) -> None:
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
