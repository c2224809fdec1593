"""Network faults the emulator cannot play: the server vanishing mid-run, a connection that
stalls without a byte, a Content-Length that lies, a DNS name that does not resolve.  Each
is a clear per-image error or, where nothing can work, a clean halt with the report
written (error_class "unreachable", exit 4)."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import report_rows, wait_until, write_list
from tests.reliability.support import (
    Conn,
    Received,
    Trial,
    check_saved,
    enhance,
    finish,
    hostile_server,
    png_bytes,
    saved_images,
    start,
)
from zuotang_cli.emulator import EmulatorConfig, running_emulator
from zuotang_cli.status import ExitStatus

SUITE = "Network faults beyond the emulator"
UNREACHABLE = "cannot reach the endpoint"
"""What the halt says on stderr."""
NO_REPLY_CLASSES = frozenset({"network", "timeout"})


@pytest.mark.reliability
def test_server_vanishing_mid_run_halts_cleanly_and_a_rerun_completes(
    trial: Trial, emulator: Any, tmp_path: Path
) -> None:
    """The endpoint (and result host) goes away mid-run, then comes back on its port."""
    n = 80
    config = EmulatorConfig(cheap=True, qps=1000, latency=(0.1, 0.2), seed=3)
    out = tmp_path / "out"
    with running_emulator(config) as first_emu:
        port = int(first_emu.url.rsplit(":", 1)[1])
        urls = [f"{first_emu.url}/files/i{i}.png" for i in range(n)]
        url_list = write_list(tmp_path / "urls.txt", urls)
        args = (str(url_list), "-o", str(out), "--qps", "20")
        proc = start(*args, endpoint=first_emu.endpoint)
        wait_until(lambda: first_emu.stats()["billed"] >= 15, timeout=60)
    gone = first_emu.stats()  # the server is gone now
    run = finish(trial, proc, timeout=120)
    trial.inputs += n
    assert run.returncode == ExitStatus.TROUBLE, run.stderr[-2000:]
    assert UNREACHABLE in run.stderr
    rows = report_rows(out)
    assert len(rows) == n  # the report was written, one row per input
    outcomes = Counter(row["outcome"] for row in rows)
    assert set(outcomes) <= {"done", "failed", "not-attempted"}, outcomes
    assert outcomes["done"] >= 10 and outcomes["not-attempted"] >= 1, outcomes
    failed_classes = Counter(r["error_class"] for r in rows if r["outcome"] == "failed")
    download_classes = {"download-network", "download-timeout"}
    assert set(failed_classes) <= NO_REPLY_CLASSES | download_classes, failed_classes
    assert all(r["message"] for r in rows if r["outcome"] != "done")
    done_first = {r["input"] for r in rows if r["outcome"] == "done"}

    with running_emulator(config, port=port) as back:  # the same endpoint, a new server
        again = enhance(trial, *args, endpoint=back.endpoint)
        back_stats = back.stats()
    assert again.returncode == ExitStatus.SUCCESS, again.stderr[-2000:]
    rows = report_rows(out)
    assert {r["outcome"] for r in rows} <= {"done", "skipped"}
    saved = check_saved(out, rows)
    assert len(saved) == n == len(saved_images(out))
    assert {r["input"] for r in rows if r["outcome"] == "skipped"} == done_first

    # Paid twice: only inputs whose result never reached the disk before the server went
    # (a reply or a link lost with it); never one that was saved.
    twice = set(gone["billed_by_input"]) & set(back_stats["billed_by_input"])
    assert not twice & done_first
    assert set(gone["billed_by_input"]) | set(back_stats["billed_by_input"]) == set(urls)
    trial.saved += len(saved)
    trial.billed_twice += len(twice)
    trial.note(
        f"server stopped after {gone['billed']} of {n} calls were billed: exit 4, "
        f"'{UNREACHABLE}' on stderr, all {n} rows written ({outcomes['done']} done, "
        f"{outcomes['failed']} failed {dict(failed_classes)}, {outcomes['not-attempted']} "
        f"not attempted); a re-run against the server back on its port saved the rest, "
        f"skipped the {len(done_first)} saved, and paid again only {len(twice)} whose reply "
        f"or link died with the server"
    )


def _stall(server_log: list[float]) -> Any:
    async def handler(request: Received, conn: Conn) -> None:
        server_log.append(time.monotonic())
        await conn.hang()  # headers and body read; not one byte back

    return handler


@pytest.mark.reliability
def test_endpoint_that_stalls_is_a_per_image_timeout(trial: Trial, tmp_path: Path) -> None:
    """Every call stalls with no bytes: each image fails with 'timeout' after its retries."""
    arrivals: list[float] = []
    with hostile_server(_stall(arrivals)) as server:
        urls = [f"http://img.test/stall-{i}.png" for i in range(3)]
        out = tmp_path / "out"
        run = enhance(
            trial,
            *urls,
            "-o",
            str(out),
            "--timeout",
            "1",
            "--retries",
            "1",
            "--qps",
            "20",
            endpoint=f"{server.url}/tasks/visual/scale",
            timeout=120,
        )
    trial.inputs += len(urls)
    assert run.returncode == ExitStatus.SOME_FAILED
    rows = report_rows(out)
    assert [r["error_class"] for r in rows] == ["timeout"] * 3, rows
    assert all(r["attempts"] == "2" and "--timeout" in r["message"] for r in rows), rows
    assert len(arrivals) == 6
    assert run.seconds < 60
    for url in urls:
        assert url in run.stderr
    trial.note(
        f"an endpoint that reads the call and never answers: {len(urls)} images each failed "
        f"'timeout' after 2 attempts of --timeout 1 s, exit 1, in {run.seconds:.1f} s"
    )


def test_endpoint_that_stalls_for_everyone_halts_unreachable(trial: Trial, tmp_path: Path) -> None:
    """Every call stalls: after 12 calls in a row without a reply the run halts, exit 4."""
    arrivals: list[float] = []
    n = 40
    with hostile_server(_stall(arrivals)) as server:
        urls = write_list(tmp_path / "u.txt", [f"http://img.test/s{i}.png" for i in range(n)])
        out = tmp_path / "out"
        run = enhance(
            trial,
            str(urls),
            "-o",
            str(out),
            "--timeout",
            "1",
            "--retries",
            "1",
            "--qps",
            "20",
            "--concurrency",
            "4",
            endpoint=f"{server.url}/tasks/visual/scale",
            timeout=120,
        )
    trial.inputs += n
    assert run.returncode == ExitStatus.TROUBLE
    assert UNREACHABLE in run.stderr
    rows = report_rows(out)
    assert len(rows) == n
    outcomes = Counter(r["outcome"] for r in rows)
    assert set(outcomes) <= {"failed", "not-attempted"}
    assert {r["error_class"] for r in rows if r["outcome"] == "failed"} <= {"timeout"}
    assert len(arrivals) <= 12 + 4  # the 12, plus what was in flight
    assert all(
        r["message"] == "halted: unreachable" for r in rows if r["outcome"] == "not-attempted"
    )
    assert outcomes["not-attempted"] >= n - 16
    trial.note(
        f"an endpoint that stalls every call: halted after {len(arrivals)} calls "
        f"({outcomes['failed']} rows 'timeout', {outcomes['not-attempted']} not attempted), "
        f"exit 4, report complete"
    )


def test_dns_failure_of_the_endpoint_halts_with_the_report(trial: Trial, tmp_path: Path) -> None:
    """The endpoint's host name does not resolve: a clean halt, every row written."""
    n = 30
    urls = write_list(tmp_path / "u.txt", [f"https://img.test/d{i}.png" for i in range(n)])
    out = tmp_path / "out"
    run = enhance(
        trial,
        str(urls),
        "-o",
        str(out),
        "--qps",
        "50",
        endpoint="https://zuotang-endpoint.invalid/tasks/visual/scale",
        timeout=120,
    )
    trial.inputs += n
    assert run.returncode == ExitStatus.TROUBLE, run.stderr[-2000:]
    assert UNREACHABLE in run.stderr
    rows = report_rows(out)
    assert len(rows) == n
    outcomes = Counter(r["outcome"] for r in rows)
    assert set(outcomes) <= {"failed", "not-attempted"}
    failed = [r for r in rows if r["outcome"] == "failed"]
    assert failed and all(r["error_class"] in NO_REPLY_CLASSES for r in failed)
    assert all("Connect" in r["message"] for r in failed)  # ConnectError (or a DNS timeout)
    assert all(
        r["message"] == "halted: unreachable" for r in rows if r["outcome"] == "not-attempted"
    )
    assert run.seconds < 60
    trial.note(
        f"endpoint host that does not resolve: halt 'unreachable', exit 4, {n} rows "
        f"({len(failed)} failed {sorted({r['error_class'] for r in failed})} naming the "
        f"ConnectError, "
        f"{outcomes['not-attempted']} not attempted), in {run.seconds:.1f} s"
    )


# -- Content-Length that lies ---------------------------------------------------------------


def _success(image: str) -> bytes:
    data = {"state": 1, "progress": 100, "task_id": "t", "image": image, "return_type": 1}
    return json.dumps({"status": 200, "message": "success", "data": data}).encode()


def _lying_lengths(base: list[str]) -> Any:
    png = png_bytes((64, 64))

    async def handler(request: Received, conn: Conn) -> None:
        if request.method == "POST":
            scenario = request.form()["image_url"].rsplit("/", 1)[-1].split(".")[0]
            if scenario == "call-longer":  # announces more than it sends, then hangs up
                body = _success(f"{base[0]}/r/ok")
                await conn.reply(200, body[:20], content_length=len(body))
            elif scenario == "call-shorter":  # announces less than it sends
                body = _success(f"{base[0]}/r/ok")
                await conn.reply(200, body, content_length=len(body) // 2)
            else:
                await conn.reply(200, _success(f"{base[0]}/r/{scenario}"))
            return
        name = request.target.rsplit("/", 1)[-1]
        if name == "result-longer":
            await conn.reply(200, png[:100], {"Content-Type": "image/png"}, content_length=len(png))
        elif name == "result-shorter":
            await conn.reply(200, png, {"Content-Type": "image/png"}, content_length=len(png) // 2)
        else:
            await conn.reply(200, png, {"Content-Type": "image/png"})

    return handler


LYING = {
    "call-longer": {"network"},
    # httpx's own transport showed the cut JSON (bad-reply); aiohttp refuses a reply with
    # bytes past its Content-Length before showing any of it (RemoteProtocolError).
    "call-shorter": {"bad-reply", "network"},
    "result-longer": {"download-network"},
    # the same for a result: httpx's transport gave the cut image (not-an-image), aiohttp
    # refuses the reply (RemoteProtocolError: data after the announced length)
    "result-shorter": {"not-an-image", "download-network"},
    "fine": {""},
}


def lying_lengths(trial: Trial, tmp_path: Path, names: list[str]) -> None:
    base: list[str] = []
    with hostile_server(_lying_lengths(base)) as server:
        base.append(server.url)
        urls = [f"http://img.test/{name}.png" for name in names]
        out = tmp_path / "out"
        run = enhance(
            trial,
            *urls,
            "-o",
            str(out),
            "--retries",
            "1",
            "--qps",
            "50",
            endpoint=f"{server.url}/tasks/visual/scale",
            timeout=120,
        )
    trial.inputs += len(urls)
    assert run.returncode == ExitStatus.SOME_FAILED
    rows = {r["input"].rsplit("/", 1)[-1].split(".")[0]: r for r in report_rows(out)}
    got = {name: rows[name]["error_class"] for name in names}
    assert all(got[name] in LYING[name] for name in names), got
    assert all(rows[name]["message"] for name in names if name != "fine")
    # one line each, however much of the reply the HTTP stack quotes in its error
    assert all("\n" not in row["message"] and len(row["message"]) < 400 for row in rows.values())
    assert all(line.startswith("zuotang: ") for line in run.stderr.splitlines())
    assert len(saved_images(out)) == 1 and not list(out.rglob("*.part"))
    trial.saved += 1
    trial.note(
        "a Content-Length longer than the body (then the connection closed) or shorter: "
        f"{got}; only the honest one was saved"
    )


def test_a_call_reply_whose_content_length_lies_is_a_per_image_error(
    trial: Trial, tmp_path: Path
) -> None:
    """Call replies whose Content-Length is longer or shorter than the body."""
    lying_lengths(trial, tmp_path, ["call-longer", "call-shorter", "fine"])


@pytest.mark.reliability
def test_a_result_whose_content_length_lies_is_a_per_image_error(
    trial: Trial, tmp_path: Path
) -> None:
    """Result downloads whose Content-Length is longer or shorter (retried 5 times)."""
    lying_lengths(trial, tmp_path, ["result-longer", "result-shorter", "fine"])
