"""The real contract, row by row of docs/api-contract.md: the real CLI against the
emulator playing each variant, proving the outcome, the exit code, the calls made and the
calls billed (the emulator's counters, not the client's own)."""

from __future__ import annotations

import functools
import os
import random
import signal
import sqlite3
from collections.abc import Callable
from pathlib import Path
from subprocess import DEVNULL
from typing import Any

import pytest
from PIL import Image

from tests.helpers import (
    APPCODE,
    enhance,
    report_rows,
    start_zuotang,
    url_list,
    wait_until,
    write_list,
    zuotang,
)
from zuotang_cli.status import ExitStatus

SAMPLES = ["harbour-320x240.jpg", "garden-480x640.png", "old-photo-256x192.bmp"]


def sample_list(tmp_path: Path, emu: Any, n: int = 3) -> Path:
    """A list of ``n`` URLs of the real SAMPLES, each a distinct input."""
    return url_list(tmp_path, emu, n, samples=SAMPLES)


run = functools.partial(enhance, qps=20)
"""``zuotang enhance ARGS --qps 20``: every emulator here allows 20 calls a second."""


def outcomes(out: Path) -> list[str]:
    return sorted(row["outcome"] for row in report_rows(out))


# -- the gateway ------------------------------------------------------------------------


def test_a_wrong_appcode_on_the_classic_gateway_halts_with_exit_3(
    tmp_path: Path, emulator: Any
) -> None:
    emu = emulator(gateway_style="classic", appcodes=frozenset({"the-right-code"}), qps=20)
    out = tmp_path / "out"
    proc = run(emu, str(sample_list(tmp_path, emu, 40)), "-o", str(out), "--concurrency", "4")
    assert proc.returncode == ExitStatus.HALTED, proc.stderr
    assert "AppCode was refused" in proc.stderr
    stats = emu.stats()
    assert stats["calls"] <= 4  # what was in flight; no input was tried on its own
    assert stats["billed"] == 0
    assert outcomes(out).count("not-attempted") >= 36
    assert APPCODE not in proc.stderr


@pytest.mark.parametrize(
    ("refusal", "exit_status"),
    [
        ("400 Invalid AppCode", ExitStatus.HALTED),
        ("400 Invalid Param Location", ExitStatus.USAGE),
        ("400 Invalid Domain", ExitStatus.USAGE),
        ("403 Unauthorized", ExitStatus.HALTED),
        ("403 Quota Exhausted", ExitStatus.HALTED),
        ("403 Api Market Subscription quota exhausted|B403MQ", ExitStatus.HALTED),
        ("403 User Arrears", ExitStatus.HALTED),
    ],
)
def test_account_and_endpoint_refusals_halt_the_run(
    tmp_path: Path, emulator: Any, refusal: str, exit_status: ExitStatus
) -> None:
    emu = emulator(refuse_with=refusal, qps=20)
    out = tmp_path / "out"
    proc = run(emu, str(sample_list(tmp_path, emu, 20)), "-o", str(out), "--concurrency", "2")
    assert proc.returncode == exit_status, proc.stderr
    stats = emu.stats()
    assert stats["calls"] <= 2 and stats["billed"] == 0
    if exit_status is ExitStatus.USAGE:
        assert emu.endpoint in proc.stderr  # the message names the endpoint


def test_a_wrong_path_on_the_classic_gateway_is_a_usage_error_naming_it(
    tmp_path: Path, emulator: Any
) -> None:
    emu = emulator(gateway_style="classic", qps=20)
    wrong = emu.url + "/tasks/visual/scales"
    proc = run(emu, str(sample_list(tmp_path, emu, 5)), "-o", str(tmp_path / "o"), endpoint=wrong)
    assert proc.returncode == ExitStatus.USAGE, proc.stderr
    assert "Invalid Url" in proc.stderr and wrong in proc.stderr
    assert emu.stats()["billed"] == 0


@pytest.mark.timing
def test_classic_flow_control_slows_the_run_and_says_so(tmp_path: Path, emulator: Any) -> None:
    emu = emulator(gateway_style="classic", qps=2, cheap=True)
    out = tmp_path / "out"
    urls = write_list(tmp_path / "u.txt", [emu.file_url(f"i{i}.png") for i in range(12)])
    proc = zuotang(str(urls), "-o", str(out), "--qps", "6", endpoint=emu.endpoint)
    assert proc.returncode == ExitStatus.SUCCESS, proc.stderr
    stats = emu.stats()
    assert stats["throttled"] > 0 and stats["billed"] == 12
    assert "lower --qps" in proc.stderr


@pytest.mark.timing
def test_the_circuit_breaker_pauses_the_whole_run(tmp_path: Path, emulator: Any) -> None:
    emu = emulator(faults={"breaker": 0.1}, breaker_seconds=1.5, breaker_retry_after=True, qps=20)
    out = tmp_path / "out"
    proc = run(emu, str(sample_list(tmp_path, emu, 15)), "-o", str(out), "--retries", "0")
    assert proc.returncode == ExitStatus.SUCCESS, proc.stderr  # no input spent its retries
    stats = emu.stats()
    assert stats["faults"].get("breaker", 0) >= 1
    assert stats["billed"] == 15
    # a run-wide pause: only the calls already in flight meet the open breaker
    assert stats["breaker_refused"] <= 20 * stats["faults"]["breaker"]


def test_unsupported_multipart_stops_local_files_and_not_urls(
    tmp_path: Path, emulator: Any, samples_dir: Path
) -> None:
    emu = emulator(gateway_multipart=False, qps=20)
    out = tmp_path / "out"
    files = [str(samples_dir / name) for name in SAMPLES]
    proc = run(
        emu, str(sample_list(tmp_path, emu, 2)), *files, "-o", str(out), "--concurrency", "1"
    )
    assert proc.returncode == ExitStatus.SOME_FAILED, proc.stderr
    rows = {row["input"]: row for row in report_rows(out)}
    for path in files:
        assert rows[path]["outcome"] == "not-attempted"
        assert "Unsupported Multipart" in rows[path]["message"]
    stats = emu.stats()
    assert stats["billed"] == 2  # the URLs
    assert stats["by_status"].get("400", 0) == 1  # one refused upload, never per input


def big_bmp(path: Path) -> Path:
    """A real 9 MB image (under the service's 15 MB, over the gateway's 8 MB body)."""
    rng = random.Random(5)
    Image.frombytes("RGB", (2000, 1500), rng.randbytes(2000 * 1500 * 3)).save(path, "BMP")
    return path


def test_an_upload_over_8_mb_is_refused_before_any_call(tmp_path: Path, emulator: Any) -> None:
    emu = emulator(qps=20, cheap=True)
    image = big_bmp(tmp_path / "big.bmp")
    out = tmp_path / "out"
    proc = run(emu, str(image), "-o", str(out))
    assert proc.returncode == ExitStatus.SOME_FAILED
    (row,) = report_rows(out)
    assert row["outcome"] == "invalid" and row["error_class"] == "upload-too-large"
    assert "pass its URL" in row["message"]
    assert emu.stats()["calls"] == 0
    # a dedicated gateway takes 32 MB: the flag raises the limit
    dedicated = emulator(qps=20, cheap=True, body_limit=32 * 1024 * 1024)
    proc = run(dedicated, str(image), "-o", str(out), "--max-upload", "32", "--retry-failed")
    assert proc.returncode == ExitStatus.SUCCESS, proc.stderr
    assert dedicated.stats()["billed"] == 1


# -- billing ----------------------------------------------------------------------------


def test_every_200_is_billed_and_the_summary_says_what_the_emulator_billed(
    tmp_path: Path, emulator: Any
) -> None:
    emu = emulator(billing="every-200", fail_first="state-8", qps=20)
    out = tmp_path / "out"
    proc = run(emu, str(sample_list(tmp_path, emu, 5)), "-o", str(out))
    assert proc.returncode == ExitStatus.SUCCESS, proc.stderr
    stats = emu.stats()
    assert stats["billed"] == 10 and stats["billed_failures"] == 5
    assert "paid calls: 10 (5 without a result, 5 paid retries)" in proc.stderr
    assert sum(int(row["paid_calls"]) for row in report_rows(out)) == 10
    again = run(emu, str(sample_list(tmp_path, emu, 5)), "-o", str(out))
    assert again.returncode == ExitStatus.SUCCESS
    assert emu.stats()["billed"] == 10  # the re-run pays nothing
    assert "paid calls: 0" in again.stderr


@pytest.mark.parametrize("limit", [1, 3, 4])
def test_max_calls_is_never_exceeded_counting_billed_failures(
    tmp_path: Path, emulator: Any, limit: int
) -> None:
    emu = emulator(billing="every-200", fail_first="state-8", qps=20)
    out = tmp_path / "out"
    proc = run(emu, str(sample_list(tmp_path, emu, 5)), "-o", str(out), "--max-calls", str(limit))
    assert proc.returncode == ExitStatus.SOME_FAILED
    stats = emu.stats()
    assert stats["billed"] <= limit
    assert f"paid calls: {stats['billed']}" in proc.stderr


def test_paid_retries_zero_pays_each_failure_once(tmp_path: Path, emulator: Any) -> None:
    emu = emulator(billing="every-200", fail_first="state-8", qps=20)
    out = tmp_path / "out"
    proc = run(emu, str(sample_list(tmp_path, emu, 3)), "-o", str(out), "--paid-retries", "0")
    assert proc.returncode == ExitStatus.SOME_FAILED
    assert emu.stats()["billed"] == 3
    again = run(emu, str(sample_list(tmp_path, emu, 3)), "-o", str(out), "--paid-retries", "0")
    assert emu.stats()["billed"] == 3  # given up: a re-run does not pay again by itself
    assert all("--retry-failed" in row["message"] for row in report_rows(out)), again.stderr


def test_success_only_billing_retries_failures_for_free(tmp_path: Path, emulator: Any) -> None:
    emu = emulator(billing="success-only", fail_first="state-8", qps=20)
    out = tmp_path / "out"
    args = (str(sample_list(tmp_path, emu, 3)), "-o", str(out), "--paid-retries", "0")
    proc = run(emu, *args, "--billing", "success-only")
    assert proc.returncode == ExitStatus.SUCCESS, proc.stderr
    stats = emu.stats()
    assert (stats["calls"], stats["billed"]) == (6, 3)
    assert "paid calls: 3" in proc.stderr


@pytest.mark.timing
def test_a_call_that_timed_out_is_counted_as_possibly_paid(tmp_path: Path, emulator: Any) -> None:
    emu = emulator(billing="every-200", latency=(2.5, 2.5), qps=20)
    out = tmp_path / "out"
    args = (str(sample_list(tmp_path, emu, 1)), "-o", str(out), "--timeout", "1")
    proc = run(emu, *args, "--paid-retries", "0")
    assert proc.returncode == ExitStatus.SOME_FAILED
    assert "possibly paid: 1" in proc.stderr
    assert emu.stats()["calls"] == 1  # not retried as if it were free
    wait_until(lambda: emu.stats()["in_flight"] == 0, timeout=10)
    assert emu.stats()["billed"] == 1  # the service finished it and billed it


def test_dry_run_says_what_paid_retries_may_cost(tmp_path: Path, emulator: Any) -> None:
    emu = emulator(qps=20)
    proc = zuotang(
        str(sample_list(tmp_path, emu, 4)),
        "--dry-run",
        "-o",
        str(tmp_path / "o"),
        endpoint="http://127.0.0.1:9/x",
    )
    assert proc.returncode == ExitStatus.SUCCESS
    assert "may add up to 4 paid calls (--paid-retries 1)" in proc.stderr


# -- the service: asynchronous tasks ----------------------------------------------------


@pytest.mark.parametrize("replies", ["async-unless-sync", "async"])
def test_async_backends_are_handled(tmp_path: Path, emulator: Any, replies: str) -> None:
    emu = emulator(replies=replies, latency=(1.0, 1.5), qps=20)
    out = tmp_path / "out"
    proc = run(emu, str(sample_list(tmp_path, emu, 4)), "-o", str(out))
    assert proc.returncode == ExitStatus.SUCCESS, proc.stderr
    stats = emu.stats()
    assert stats["billed"] == 4 and stats["sync_requested"] == stats["calls"] == 4
    if replies == "async":
        assert stats["polls"] >= 4
    else:
        assert stats["polls"] == 0  # sync=1 made the backend answer at once


def test_a_refused_task_path_reports_the_task_and_never_pays_again(
    tmp_path: Path, emulator: Any
) -> None:
    emu = emulator(replies="async", task_path=False, gateway_style="classic", qps=20)
    out = tmp_path / "out"
    proc = run(emu, str(sample_list(tmp_path, emu, 2)), "-o", str(out))
    assert proc.returncode == ExitStatus.SOME_FAILED, proc.stderr
    for row in report_rows(out):
        assert row["error_class"] == "unfinished" and row["task_id"]
        assert row["task_id"] in row["message"]
    again = run(emu, str(sample_list(tmp_path, emu, 2)), "-o", str(out))
    assert again.returncode == ExitStatus.SOME_FAILED
    assert emu.stats()["billed"] == 2  # the pending tasks are not paid for again


def test_kill_9_while_polling_then_a_rerun_pays_nothing_for_the_pending_tasks(
    tmp_path: Path, emulator: Any
) -> None:
    emu = emulator(replies="async", latency=(4.0, 5.0), qps=20)
    out = tmp_path / "out"
    urls = sample_list(tmp_path, emu, 4)
    proc = start_zuotang(
        *(str(urls), "-o", str(out), "--qps", "20"),
        endpoint=emu.endpoint,
        stdout=DEVNULL,
        stderr=DEVNULL,
    )
    try:
        wait_until(lambda: emu.stats()["polls"] >= 4, timeout=30)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    db = sqlite3.connect(out / ".zuotang" / "journal.sqlite")
    pending = db.execute("SELECT COUNT(*) FROM entries WHERE status = 'pending'").fetchone()[0]
    db.close()
    assert pending == 4
    billed = emu.stats()["billed"]
    assert billed == 4
    again = run(emu, str(urls), "-o", str(out))
    assert again.returncode == ExitStatus.SUCCESS, again.stderr
    stats = emu.stats()
    assert stats["billed"] == 4 and stats["calls"] == 4  # fetched, not called again
    assert outcomes(out) == ["done"] * 4


# -- the service: bodies and replies -----------------------------------------------------


def test_a_backend_that_reads_only_multipart_is_switched_to_once(
    tmp_path: Path, emulator: Any
) -> None:
    emu = emulator(body_accept="multipart", qps=20)
    out = tmp_path / "out"
    proc = run(emu, str(sample_list(tmp_path, emu, 4)), "-o", str(out), "--concurrency", "1")
    assert proc.returncode == ExitStatus.SUCCESS, proc.stderr
    assert proc.stderr.count("sending multipart bodies") == 1
    stats = emu.stats()
    assert stats["billed"] == 4 and stats["calls"] == 5  # one unbilled 400, then multipart
    more = write_list(tmp_path / "more.txt", [emu.file_url(SAMPLES[0]) + "?more"])
    run(emu, str(more), "-o", str(out))
    assert emu.stats()["calls"] == 6  # remembered: no second 400


def test_a_chosen_body_the_backend_cannot_read_is_a_usage_error(
    tmp_path: Path, emulator: Any
) -> None:
    emu = emulator(body_accept="multipart", qps=20)
    args = (str(sample_list(tmp_path, emu, 3)), "-o", str(tmp_path / "o"), "--body", "form")
    proc = run(emu, *args)
    assert proc.returncode == ExitStatus.USAGE
    assert "--body multipart" in proc.stderr
    assert emu.stats()["billed"] == 0


@pytest.mark.parametrize("link_style", ["oss", "oss-v4"])
def test_a_link_expiry_is_read_from_its_signature(
    tmp_path: Path, emulator: Any, link_style: str
) -> None:
    # A minute: less than the client's margin, so the links are dead for a re-run at once
    # if (and only if) it reads their expiry from them; else it would assume an hour.
    emu = emulator(link_style=link_style, link_ttl=60.0, qps=20)
    out = tmp_path / "out"
    urls = sample_list(tmp_path, emu, 2)
    first = run(emu, str(urls), "-o", str(out))
    assert first.returncode == ExitStatus.SUCCESS, first.stderr
    for path in first.stdout.split():
        Path(path).unlink()
    attempts = emu.stats()["download_attempts"]
    again = run(emu, str(urls), "-o", str(out))
    assert again.returncode == ExitStatus.SUCCESS, again.stderr
    stats = emu.stats()
    # known dead from the link itself: no doomed download; done is done: no call either
    assert stats["download_attempts"] == attempts
    assert stats["billed"] == 2


def test_an_image_reply_is_saved_as_the_result(tmp_path: Path, emulator: Any) -> None:
    emu = emulator(return_type=3, qps=20)
    out = tmp_path / "out"
    proc = run(emu, str(sample_list(tmp_path, emu, 2)), "-o", str(out))
    assert proc.returncode == ExitStatus.SUCCESS, proc.stderr
    for row in report_rows(out):
        with Image.open(row["output"]) as image:
            assert image.size == (int(row["width"]), int(row["height"]))


def test_real_reply_shapes_fill_the_report(tmp_path: Path, emulator: Any) -> None:
    emu = emulator(reply_shape="real", faults={"state-7": 1.0}, qps=20)
    out = tmp_path / "out"
    proc = run(emu, str(sample_list(tmp_path, emu, 1)), "-o", str(out))
    assert proc.returncode == ExitStatus.SOME_FAILED
    (row,) = report_rows(out)
    assert row["error_class"] == "state-7" and row["message"]  # from data.state_detail
    assert len(row["task_id"]) == 36 and row["task_id"].count("-") == 4


def test_scale_predictions_where_the_documents_disagree_say_so(
    tmp_path: Path, make_image: Callable[..., Path]
) -> None:
    image = make_image("edge.png", (510, 300))
    proc = zuotang(
        str(image), "--dry-run", "-o", str(tmp_path / "o"), endpoint="http://127.0.0.1:9/x"
    )
    assert proc.returncode == ExitStatus.SUCCESS
    assert "disagree on the factor" in proc.stderr


@pytest.mark.timing
def test_slow_calls_timing_out_together_are_not_an_unreachable_endpoint(
    tmp_path: Path, emulator: Any
) -> None:
    """Half the calls hang past --timeout; a throttle reply pauses the run, so they time out
    together, in a row, though the endpoint answered the others meanwhile: that is not
    silence, and the run must not halt as if the endpoint were unreachable (exit 4)."""
    faults = {"429": 0.2, "slow": 0.5}
    # At most 24 slow calls: the first 40 calls (half of them slow) are where they time
    # out together; past them the cap spares the run the long tail of an input drawing
    # "slow" again and again under a growing backoff (15-42 s a run without it).
    caps = {"429": 2, "slow": 24}
    emu = emulator(cheap=True, qps=1000, faults=faults, fault_caps=caps, slow_seconds=3.0, seed=3)
    urls = write_list(tmp_path / "u.txt", [emu.file_url(f"s{i}.png") for i in range(40)])
    out = tmp_path / "out"
    args = ("--qps", "200", "--timeout", "1", "--retries", "12", "--paid-retries", "20")
    done = zuotang(str(urls), "-o", str(out), *args, endpoint=emu.endpoint)
    assert done.returncode == ExitStatus.SUCCESS, done.stderr[-1500:]
    assert emu.stats()["faults"]["slow"] >= 12
    assert outcomes(out) == ["done"] * 40
