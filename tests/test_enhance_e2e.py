"""`zuotang enhance` end to end against the emulator over loopback."""

from __future__ import annotations

import itertools
import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.bench import bench_procs as bench
from tests.helpers import (
    APPCODE,
    cli,
    first_ctrl_c_taken,
    report_rows,
    start_zuotang,
    wait_until,
    write_list,
    zuotang,
)
from zuotang_cli.status import ExitStatus


@pytest.fixture
def images(tmp_path: Path, make_image: Callable[..., Path]) -> Path:
    folder = tmp_path / "host"
    folder.mkdir()
    for name, size in {
        "w300.png": (300, 20),
        "w800.jpg": (800, 40),
        "w1100.png": (1100, 30),
        "h500.png": (20, 500),
    }.items():
        make_image(folder / name, size, "JPEG" if name.endswith(".jpg") else "PNG")
    return folder


@pytest.mark.parametrize(
    ("scale", "expected"),
    [
        ("auto", {"w300": 4, "w800": 2, "w1100": 1, "h500": 4}),
        ("1", {"w300": 1, "w800": 1, "w1100": 1, "h500": 1}),
        ("2", {"w300": 2, "w800": 2, "w1100": 1, "h500": 2}),
        ("4", {"w300": 4, "w800": 1, "w1100": 1, "h500": 4}),
    ],
)
def test_outputs_have_the_size_of_every_scale_rule(
    tmp_path: Path, emulator: Any, images: Path, scale: str, expected: dict[str, int]
) -> None:
    emu = emulator(serve_dir=images, qps=50)
    names = sorted(p.name for p in images.iterdir())
    url_list = write_list(tmp_path / "urls.txt", [emu.file_url(n) for n in names])
    out = tmp_path / "out"
    proc = zuotang(str(url_list), "-s", scale, "-o", str(out), "--qps", "50", endpoint=emu.endpoint)
    assert proc.returncode == ExitStatus.SUCCESS, proc.stderr
    saved = proc.stdout.split()
    assert len(saved) == 4
    for row in report_rows(out):
        stem = row["input"].rsplit("/", 1)[-1].split(".")[0]
        with Image.open(images / row["input"].rsplit("/", 1)[-1]) as src:
            want = (src.width * expected[stem], src.height * expected[stem])
        with Image.open(row["output"]) as result:
            assert result.size == want, row
        assert (int(row["width"]), int(row["height"])) == want
        assert row["output"] in saved
    assert emu.stats()["billed"] == 4


def test_bad_inputs_get_rows_and_are_never_sent(
    tmp_path: Path, emulator: Any, images: Path
) -> None:
    emu = emulator(serve_dir=images, qps=50)
    good = emu.file_url("w300.png")
    not_image = tmp_path / "notes.jpg"
    not_image.write_text("hello")
    url_list = write_list(
        tmp_path / "urls.txt",
        [
            "# a comment",
            "",
            good,
            "ftp://example.com/a.jpg",
            "javascript:alert(1)",
            "https://example.com/" + "a" * 600,
            good,
            emu.file_url("missing.png"),
        ],
    )
    out = tmp_path / "out"
    proc = zuotang(
        str(url_list),
        str(not_image),
        "-o",
        str(out),
        "--qps",
        "50",
        endpoint=emu.endpoint,
    )
    assert proc.returncode == ExitStatus.SOME_FAILED
    rows = {(r["input"], r["outcome"]): r for r in report_rows(out)}
    assert len(rows) == 7
    outcomes = sorted(r["outcome"] for r in rows.values())
    assert outcomes.count("invalid") == 4  # ftp, javascript, too long, text
    assert outcomes.count("done") == 1
    assert rows[(good, "skipped")]["message"] == "duplicate of input #1: the same result"
    failed = [r for r in rows.values() if r["outcome"] == "failed"]
    assert len(failed) == 1 and failed[0]["state"] == "-3"
    for row in rows.values():
        if row["outcome"] == "invalid":
            assert row["message"], row
    stats = emu.stats()
    assert stats["calls"] == 2  # the good URL once, the missing one once (-3 is final)
    # The -3 came in an HTTP 200: billed (the emulator's default billing, every-200).
    assert stats["billed_by_input"] == {good: 1, emu.file_url("missing.png"): 1}


@pytest.mark.timing
def test_burst_at_qps_2_is_never_throttled_and_starts_are_spaced(tmp_path: Path) -> None:
    # The emulator in a process of its own, as the bench runs it: one in the test process
    # stamps arrivals late whenever another thread there holds the GIL (measured: a busy
    # thread beside it made 3 starts spaced 1.015 s by the client look 0.987 s apart).
    with bench.emulator(bench.EmulatorSpec(qps=2, latency="1-3"), tmp_path) as emu:
        url_list = emu.write_urls(tmp_path / "urls.txt", 20)
        out = tmp_path / "out"
        started = time.monotonic()
        proc = zuotang(str(url_list), "-o", str(out), endpoint=emu.endpoint, appcode=bench.APPCODE)
        took = time.monotonic() - started
        stats = emu.stats()
    assert proc.returncode == ExitStatus.SUCCESS, proc.stderr
    assert stats["throttled"] == 0
    assert stats["billed"] == 20
    arrivals = sorted(stats["arrivals"])
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert min(gaps) > 0.45  # evenly spaced at 1/qps, no burst
    # 19 gaps of ~0.505 s: the cap, not a sequential loop (which would take 20 x 2 s)
    assert arrivals[-1] - arrivals[0] < 19 * 0.55
    assert took < 30


def test_transient_faults_are_retried_and_final_ones_are_not(tmp_path: Path, emulator: Any) -> None:
    emu = emulator(cheap=True, qps=100, faults={"state-8": 0.2, "500": 0.2}, seed=3)
    url_list = write_list(tmp_path / "u.txt", [emu.file_url(f"i{i}.png") for i in range(20)])
    out = tmp_path / "out"
    proc = zuotang(
        str(url_list), "-o", str(out), "--qps", "50", "--retries", "8", endpoint=emu.endpoint
    )
    assert proc.returncode == ExitStatus.SUCCESS, proc.stderr
    stats = emu.stats()
    assert stats["faults"].get("state-8", 0) + stats["faults"].get("500", 0) > 0
    assert stats["calls"] == 20 + stats["faults"].get("state-8", 0) + stats["faults"].get("500", 0)
    # Each success is billed once; each -8 too, as it came in an HTTP 200 (every-200).
    assert stats["billed"] == 20 + stats["faults"].get("state-8", 0)
    assert stats["billed_failures"] == stats["faults"].get("state-8", 0)
    attempts = sum(int(r["attempts"]) for r in report_rows(out))
    assert attempts == stats["calls"]


def test_invalid_appcode_halts_with_exit_3(tmp_path: Path, emulator: Any) -> None:
    emu = emulator(cheap=True, qps=100, appcodes=frozenset({"the-right-one"}))
    url_list = write_list(tmp_path / "u.txt", [emu.file_url(f"i{i}.png") for i in range(30)])
    out = tmp_path / "out"
    proc = zuotang(
        str(url_list), "-o", str(out), "--qps", "50", "--concurrency", "3", endpoint=emu.endpoint
    )
    assert proc.returncode == ExitStatus.HALTED
    assert "AppCode" in proc.stderr and "Traceback" not in proc.stderr
    assert emu.stats()["calls"] <= 3
    rows = report_rows(out)
    assert len(rows) == 30
    assert sum(r["outcome"] == "not-attempted" for r in rows) >= 27


def test_quota_exhaustion_halts_after_the_calls_in_flight(tmp_path: Path, emulator: Any) -> None:
    emu = emulator(cheap=True, qps=100, quota=5, latency=(0.2, 0.2))
    url_list = write_list(tmp_path / "u.txt", [emu.file_url(f"i{i}.png") for i in range(30)])
    out = tmp_path / "out"
    proc = zuotang(
        str(url_list), "-o", str(out), "--qps", "20", "--concurrency", "4", endpoint=emu.endpoint
    )
    assert proc.returncode == ExitStatus.HALTED
    assert "quota" in proc.stderr.lower()
    stats = emu.stats()
    assert stats["billed"] == 5
    assert stats["calls"] <= 5 + 4
    rows = report_rows(out)
    assert sum(r["outcome"] == "done" for r in rows) == 5
    assert len(rows) == 30


def test_json_output_parses_and_stdout_holds_no_logs(tmp_path: Path, emulator: Any) -> None:
    emu = emulator(qps=50)
    lines = [emu.file_url("harbour-320x240.jpg"), "ftp://bad"]
    out = tmp_path / "out"
    proc = zuotang(
        "-", "-o", str(out), "--json", "--qps", "50", endpoint=emu.endpoint, stdin="\n".join(lines)
    )
    assert proc.returncode == ExitStatus.SOME_FAILED
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    assert {r["outcome"] for r in records} == {"done", "invalid"}
    assert all(r["schema"] == 1 for r in records)
    assert "ftp://bad" in proc.stderr  # the failure is logged on stderr, not stdout


def test_local_files_and_folders_are_uploaded_and_mirrored(
    tmp_path: Path, emulator: Any, make_image: Callable[..., Path]
) -> None:
    emu = emulator(qps=50)
    photos = tmp_path / "photos"
    make_image(photos / "a.jpg", (100, 50), "JPEG")
    make_image(photos / "trip" / "b.png", (60, 40), "PNG")
    out = tmp_path / "out"
    proc = zuotang(str(photos), "--recursive", "-o", str(out), "--qps", "50", endpoint=emu.endpoint)
    assert proc.returncode == ExitStatus.SUCCESS, proc.stderr
    assert (out / "a.jpg").is_file()
    assert (out / "trip" / "b.png").is_file()
    with Image.open(out / "trip" / "b.png") as img:
        assert img.size == (240, 160)
    assert all(key.startswith("sha256:") for key in emu.stats()["billed_by_input"])


def test_missing_appcode_is_a_one_line_usage_error(tmp_path: Path) -> None:
    proc = zuotang(
        "https://example.com/a.jpg",
        "-o",
        str(tmp_path / "o"),
        appcode=None,
        endpoint="http://127.0.0.1:9/tasks/visual/scale",
    )
    assert proc.returncode == ExitStatus.USAGE
    assert proc.stderr.count("\n") == 1 and "ZUOTANG_APPCODE" in proc.stderr
    assert proc.stdout == ""


def test_the_appcode_never_leaks(tmp_path: Path, emulator: Any, images: Path) -> None:
    emu = emulator(serve_dir=images, qps=50, faults={"500": 0.3}, seed=5)
    url_list = write_list(tmp_path / "u.txt", [emu.file_url("w300.png"), emu.file_url("x.png")])
    out = tmp_path / "out"
    streams = ""
    for extra in ([], ["-v"], ["--json"]):
        proc = zuotang(
            str(url_list),
            "-o",
            str(out),
            "--report",
            str(tmp_path / "r.jsonl"),
            *extra,
            endpoint=emu.endpoint,
        )
        streams += proc.stdout + proc.stderr
    assert APPCODE not in streams
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert APPCODE.encode() not in path.read_bytes(), path


@pytest.mark.timing
def test_ctrl_c_writes_the_report_and_exits_130(tmp_path: Path, emulator: Any) -> None:
    emu = emulator(cheap=True, qps=50, latency=(1.5, 1.5))
    url_list = write_list(tmp_path / "u.txt", [emu.file_url(f"i{i}.png") for i in range(200)])
    out = tmp_path / "out"
    proc = start_zuotang(str(url_list), "-o", str(out), "--qps", "10", endpoint=emu.endpoint)
    wait_until(lambda: emu.stats()["in_flight"] >= 2, timeout=20)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == ExitStatus.INTERRUPTED, stderr
    assert "Traceback" not in stderr
    rows = report_rows(out)
    done = [r for r in rows if r["outcome"] == "done"]
    assert done  # the calls in flight at Ctrl-C were finished and saved, not thrown away
    stats = emu.stats()
    assert stats["billed"] == len(done)  # nothing paid for is lost
    assert len(stdout.split()) == len(done)


@pytest.mark.timing
def test_a_second_ctrl_c_quits_at_once(tmp_path: Path, emulator: Any) -> None:
    emu = emulator(cheap=True, qps=50, latency=(20.0, 20.0))
    url_list = write_list(tmp_path / "u.txt", [emu.file_url(f"i{i}.png") for i in range(20)])
    out = tmp_path / "out"
    proc = start_zuotang(str(url_list), "-o", str(out), endpoint=emu.endpoint)
    # calls that will take 20 s are in flight
    wait_until(lambda: emu.stats()["in_flight"] >= 2, timeout=20)
    proc.send_signal(signal.SIGINT)
    said = first_ctrl_c_taken(proc)
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=15)
    stderr = said + stderr
    assert time.monotonic() - started < 5  # not waiting the 20 s of the calls in flight
    assert proc.returncode == ExitStatus.INTERRUPTED
    assert "Traceback" not in stderr
    assert (out / "report.csv").is_file()


def test_verbose_logs_every_exchange_with_the_appcode_masked(tmp_path: Path, emulator: Any) -> None:
    emu = emulator(qps=50)
    out = tmp_path / "out"
    proc = zuotang(emu.file_url("harbour-320x240.jpg"), "-o", str(out), "-v", endpoint=emu.endpoint)
    assert proc.returncode == ExitStatus.SUCCESS, proc.stderr
    calls = [line for line in proc.stderr.splitlines() if "http: POST" in line]
    gets = [line for line in proc.stderr.splitlines() if "http: GET" in line]
    downloads = [line for line in gets if "/results/" in line]
    heads = [line for line in gets if "range: bytes=0-" in line]  # the source's metadata
    assert len(calls) == 1 and len(downloads) == 1 and len(heads) == 1 and len(gets) == 2
    assert "authorization: APPCODE ****" in calls[0]
    assert "x-ca-request-id=" in calls[0]
    assert APPCODE not in proc.stderr + proc.stdout


def test_report_shows_input_and_output_sizes_and_warns_once_about_scale(
    tmp_path: Path, emulator: Any, make_image: Callable[..., Path]
) -> None:
    emu = emulator(qps=50)
    photos = tmp_path / "photos"
    make_image(photos / "small.png", (300, 200))
    make_image(photos / "big1.png", (1100, 20))
    make_image(photos / "big2.png", (20, 1500))
    make_image(photos / "huge.png", (4100, 20))  # refused before any call
    out = tmp_path / "out"
    proc = zuotang(str(photos), "-s", "2", "-o", str(out), "--qps", "50", endpoint=emu.endpoint)
    assert proc.returncode == ExitStatus.SOME_FAILED
    rows = {Path(r["input"]).name: r for r in report_rows(out)}
    assert (rows["small.png"]["input_width"], rows["small.png"]["width"]) == ("300", "600")
    assert rows["small.png"]["factor"] == "2.0"
    assert rows["big1.png"]["factor"] == "1.0"
    assert rows["huge.png"]["outcome"] == "invalid"
    assert rows["huge.png"]["error_class"] == "preflight"
    assert emu.stats()["calls"] == 3
    warnings = [line for line in proc.stderr.splitlines() if "--scale 2 does not apply" in line]
    assert len(warnings) == 1 and "2 images" in warnings[0]


def test_probe_refuses_a_remote_image_the_service_would_refuse(
    tmp_path: Path, emulator: Any, make_image: Callable[..., Path]
) -> None:
    host = tmp_path / "host"
    make_image(host / "ok.png", (300, 200))
    make_image(host / "wide.png", (5000, 10))
    emu = emulator(serve_dir=host, qps=50)
    urls = write_list(tmp_path / "u.txt", [emu.file_url("ok.png"), emu.file_url("wide.png")])
    out = tmp_path / "out"
    proc = zuotang(str(urls), "--probe", "-o", str(out), "--qps", "50", endpoint=emu.endpoint)
    assert proc.returncode == ExitStatus.SOME_FAILED
    rows = {r["input"].rsplit("/", 1)[-1]: r for r in report_rows(out)}
    assert rows["wide.png"]["outcome"] == "invalid"
    assert "over the 4096 px limit" in rows["wide.png"]["message"]
    assert rows["ok.png"]["input_width"] == "300" and rows["ok.png"]["factor"] == "4.0"
    assert emu.stats()["calls"] == 1


def test_settings_come_from_the_config_file_below_env_and_flags(
    tmp_path: Path, emulator: Any, isolated_config: Path
) -> None:
    emu = emulator(qps=50)
    config = Path(os.environ["ZUOTANG_CONFIG"])
    config.parent.mkdir(parents=True, exist_ok=True)
    from_file = tmp_path / "from-file"
    config.write_text(
        f'appcode = "{APPCODE}"\nendpoint = "{emu.endpoint}"\noutput_dir = "{from_file}"\n'
        'qps = 40\nscale = "2"\n'
    )
    url = emu.file_url("harbour-320x240.jpg")
    proc = cli("enhance", url)
    assert proc.returncode == ExitStatus.SUCCESS, proc.stderr
    [row] = report_rows(from_file)
    assert (row["width"], row["height"]) == ("640", "480")  # scale 2 from the file
    flag_dir = tmp_path / "from-flag"
    proc = cli("enhance", url, "-o", str(flag_dir), env={"ZUOTANG_SCALE": "4"})
    assert proc.returncode == ExitStatus.SUCCESS, proc.stderr
    [row] = report_rows(flag_dir)
    assert (row["width"], row["height"]) == ("1280", "960")  # env beats the file


def test_a_nul_byte_in_a_list_line_is_an_invalid_row(tmp_path: Path, emulator: Any) -> None:
    """On every Python (3.10's csv cannot write a NUL): the run goes on, the row says why."""
    emu = emulator(qps=50)
    urls = tmp_path / "u.txt"
    good = emu.file_url("harbour-320x240.jpg")
    urls.write_bytes(b"http://example.com/a\x00b.jpg\n" + good.encode() + b"\n")
    out = tmp_path / "o"
    proc = zuotang(str(urls), "-o", str(out), "--report", str(tmp_path / "r.jsonl"),
                   endpoint=emu.endpoint)  # fmt: skip
    assert proc.returncode == ExitStatus.SOME_FAILED, proc.stderr
    assert "Traceback" not in proc.stderr
    bad, ok = report_rows(out)
    assert (bad["outcome"], bad["input"]) == ("invalid", "http://example.com/a\u2400b.jpg")
    assert "control characters" in bad["message"]
    assert ok["outcome"] == "done" and Path(ok["output"]).is_file()
    rows = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert rows[0]["input"] == "http://example.com/a\x00b.jpg"  # JSON keeps it exactly
    assert emu.stats()["calls"] == 1


def test_print0_ends_saved_paths_with_nul(tmp_path: Path, emulator: Any) -> None:
    emu = emulator(qps=50)
    urls = write_list(
        tmp_path / "u.txt",
        [emu.file_url("harbour-320x240.jpg"), emu.file_url("street-800x600.webp")],
    )
    proc = zuotang(str(urls), "-o", str(tmp_path / "o"), "--print0", endpoint=emu.endpoint)
    assert proc.returncode == ExitStatus.SUCCESS, proc.stderr
    paths = proc.stdout.split("\0")
    assert paths[-1] == "" and len(paths) == 3
    assert all(Path(p).is_file() for p in paths[:-1])
    both = zuotang(
        str(urls), "-o", str(tmp_path / "o"), "--print0", "--json", endpoint=emu.endpoint
    )
    assert both.returncode == ExitStatus.USAGE


def test_gallery_flag_writes_index_html(tmp_path: Path, emulator: Any) -> None:
    emu = emulator(qps=50)
    out = tmp_path / "out"
    urls = write_list(tmp_path / "u.txt", [emu.file_url("harbour-320x240.jpg"), "ftp://x"])
    proc = zuotang(str(urls), "-o", str(out), "--gallery", endpoint=emu.endpoint)
    assert proc.returncode == ExitStatus.SOME_FAILED
    page = (out / "index.html").read_text(encoding="utf-8")
    assert "harbour-320x240" in page and "ftp://x" in page
    assert f"gallery: {out / 'index.html'}" in proc.stderr
    assert "index.html" not in proc.stdout
