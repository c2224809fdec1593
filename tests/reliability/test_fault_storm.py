"""A storm of every fault the emulator can inject: one run saves each image or reports the
fault that stopped it, a re-run finishes the rest, every file is a real image matching its
report row, and no input is paid for twice unless its link expired before the download."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.reliability.support import (
    Trial,
    check_saved,
    enhance,
    journal_costs,
    report_rows,
    write_lines,
)

SUITE = "Faults: a storm of everything the emulator injects"

STORM_FAULTS = (
    "429",
    "500",
    "reset",
    "slow",
    "state-8",
    "state-2",
    "state-1",
    "truncate",
    "expire",
)
"""Throttle, 500, dropped connection, a reply slower than --timeout, the three retried
states, a download cut short, a link expired before its download."""
FAULT_CLASSES = frozenset(
    {
        "throttled",
        "server-error",
        "network",
        "timeout",
        "state-8",
        "state-2",
        "state-1",
        "link-expired",
        "download-network",
        "download-timeout",
    }
)
"""The error classes those faults can leave on a row when retries run out."""
SOURCES = {
    "wide.png": ((72, 40), "PNG"),
    "tall.jpg": ((30, 64), "JPEG"),
    "sq.png": ((48, 48), "PNG"),
}
"""Small real images the emulator serves and really enlarges (×4: long side ≤ 500)."""
TIMEOUT = 2.0
"""Client --timeout; a ``slow`` fault holds its call twice as long."""


@pytest.fixture
def host(tmp_path: Path) -> Path:
    folder = tmp_path / "host"
    folder.mkdir()
    for name, (size, fmt) in SOURCES.items():
        Image.linear_gradient("L").resize(size).convert("RGB").save(folder / name, fmt)
    return folder


def storm(
    trial: Trial,
    emulator: Any,
    host: Path,
    tmp_path: Path,
    *,
    n: int,
    faults: dict[str, float],
    seed: int,
    retries: int = 2,
    rerun_retries: int | None = None,
    **emulator_options: Any,
) -> Counter[str]:
    """Run ``n`` inputs through the storm (with few ``retries``, so that some fail), re-run
    (``rerun_retries``, default: the CLI's), check everything; return the faults injected."""
    emu = emulator(
        serve_dir=host,
        qps=1000,  # flow control out of the way: throttling comes from the injected fault
        latency=(0.0, 0.05),
        faults=faults,
        slow_seconds=2 * TIMEOUT,
        seed=seed,
        **emulator_options,
    )
    links = emulator_options.get("return_type", 1) == 1
    names = sorted(SOURCES)
    urls = [f"{emu.file_url(names[i % len(names)])}?n={i}" for i in range(n)]
    url_list = write_lines(tmp_path / "urls.txt", urls)
    out = tmp_path / "out"
    args = (str(url_list), "-o", str(out), "--qps", "40", "--timeout", str(TIMEOUT))
    trial.inputs += n

    first = enhance(trial, *args, "--retries", str(retries), endpoint=emu.endpoint)
    rows = report_rows(out)
    assert first.returncode in (0, 1), first.stderr[-2000:]
    assert len(rows) == n
    outcomes = Counter(row["outcome"] for row in rows)
    assert set(outcomes) <= {"done", "failed"}, outcomes  # nothing halted, skipped or lost
    stopped_by = Counter(row["error_class"] for row in rows if row["outcome"] == "failed")
    assert set(stopped_by) <= FAULT_CLASSES, stopped_by
    assert all(row["message"] for row in rows if row["outcome"] == "failed")
    assert (first.returncode == 0) == (outcomes["failed"] == 0)
    for row in rows:
        if row["outcome"] == "failed":  # the reason is on stderr too
            assert row["input"] in first.stderr

    # A re-run finishes the rest; a second one is allowed, as its calls meet faults too.
    # --retry-failed: the inputs whose paid retries are spent (billed failures, timeouts
    # after the call went out) are only paid for again when the user says so; and the
    # re-runs allow three paid retries an input, since every state fault here is billed.
    rerun_args = (*args, "--retry-failed", "--paid-retries", "3")
    if rerun_retries is not None:
        rerun_args = (*rerun_args, "--retries", str(rerun_retries))
    reruns = 0
    while reruns == 0 or any(row["outcome"] not in ("done", "skipped") for row in rows):
        assert reruns < 2, Counter(row["error_class"] for row in rows)
        calls_before = emu.stats()["calls"]
        enhance(trial, *rerun_args, endpoint=emu.endpoint)
        reruns += 1
        if reruns == 1 and outcomes["failed"] == 0:
            assert emu.stats()["calls"] == calls_before  # nothing left: not one call
        rows = report_rows(out)
    assert len(rows) == n

    saved = check_saved(out, rows)
    assert len(saved) == n
    for row in rows:
        source = row["input"].rsplit("/", 1)[-1].split("?")[0]
        (width, height), _ = SOURCES[source]
        assert (int(row["width"]), int(row["height"])) == (4 * width, 4 * height), row
    assert not list(out.rglob("*.part"))

    stats = emu.stats()
    injected = Counter({kind: stats["faults"].get(kind, 0) for kind in faults})
    expired = injected["expire"] if links else 0  # a base64 result has no link to expire
    billed = stats["billed_by_input"]
    assert set(billed) == set(urls)  # the emulator received each URL exactly as listed
    assert all(count >= 1 for count in billed.values())
    # The client's books match the emulator's exactly, input by input.
    costs = journal_costs(out)
    assert {url: costs[url][0] for url in urls} == billed
    extra = stats["billed"] - n
    paid_failures = sum(costs[url][2] for url in urls)
    twice = sum(1 for count in billed.values() if count > 1)
    trial.faults.update(injected)
    trial.saved += len(saved)
    trial.billed_twice += twice
    trial.billed_twice_unexplained += max(0, extra - expired - paid_failures)
    # Every extra billing is an expired link (a result whose link died before its
    # download must be called again) or a paid retry the journal booked; nothing else.
    assert extra <= expired + paid_failures, (extra, expired, paid_failures, injected)
    assert stats["throttled"] == 0  # the client's own pace never tripped flow control
    rates = ", ".join(f"{kind} {rate:.0%}" for kind, rate in faults.items())
    failed = ", ".join(f"{k} {v}" for k, v in sorted(stopped_by.items())) or "none"
    variant = ", ".join(f"{k}={v}" for k, v in emulator_options.items())
    trial.note(
        f"storm of {n} inputs{f' ({variant})' if variant else ''}, faults per call: {rates} "
        f"({sum(injected.values())} injected in {stats['calls']} calls): the first run "
        f"(--retries {retries}) saved {outcomes['done']} and reported the other "
        f"{outcomes['failed']} with the fault that stopped them ({failed}); "
        f"{reruns} re-run(s) with --retry-failed --paid-retries 3 --retries "
        f"{rerun_retries or 'default (4)'} "
        "finished the "
        f"rest; {len(saved)} "
        f"files open in Pillow with the report's dimensions and size; billed "
        f"{stats['billed']} times = {n} inputs + {extra} more, within {expired} expired "
        f"links + {paid_failures} paid calls without a result booked in the journal "
        f"({twice} inputs billed more than once); the journal's paid calls equal the "
        "emulator's billed count for every input"
    )
    return injected


def test_storm_of_100_inputs(trial: Trial, emulator: Any, host: Path, tmp_path: Path) -> None:
    """100 inputs, every fault kind at 5 % (throttling at 2 %), then a re-run."""
    faults = {**dict.fromkeys(STORM_FAULTS, 0.05), "429": 0.02}
    storm(trial, emulator, host, tmp_path, n=100, faults=faults, seed=7, rerun_retries=3)


@pytest.mark.reliability
@pytest.mark.timeout(600)
def test_storm_of_500_inputs(trial: Trial, emulator: Any, host: Path, tmp_path: Path) -> None:
    """500 inputs, every fault kind at 3 %, then a re-run."""
    faults = dict.fromkeys(STORM_FAULTS, 0.03)
    injected = storm(trial, emulator, host, tmp_path, n=500, faults=faults, seed=11)
    assert all(injected[kind] > 0 for kind in STORM_FAULTS), injected


@pytest.mark.reliability
@pytest.mark.timeout(600)
def test_storm_of_300_base64_results_behind_an_older_gateway(
    trial: Trial, emulator: Any, host: Path, tmp_path: Path
) -> None:
    """300 inputs; throttling as a bare 403, 503 and 504 too, results as base64."""
    kinds = ("429", "500", "503", "504", "reset", "slow", "state-8", "state-2", "state-1")
    faults = dict.fromkeys(kinds, 0.03)
    injected = storm(
        trial,
        emulator,
        host,
        tmp_path,
        n=300,
        faults=faults,
        seed=5,
        throttle_style="403",
        return_type=2,
    )
    assert all(injected[kind] > 0 for kind in kinds), injected
