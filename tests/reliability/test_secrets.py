"""Secrets: a recognizable AppCode never appears in stdout, stderr (also with -v), a report,
the journal, a log, a gallery or exception text, whatever path a run takes; -v HTTP logging
masks the Authorization header.

Every CLI run of every reliability suite has its stdout and stderr searched for the
AppCode, and every file under a passing test's tmp_path too (conftest.py); this module
adds the paths meant to provoke a leak.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.conftest import S3_SECRET, S3Server, start_s3_server
from tests.helpers import write_list
from tests.reliability.support import (
    APPCODE,
    Conn,
    Received,
    Trial,
    assert_no_secret_in_files,
    enhance,
    hostile_server,
)
from zuotang_cli.status import ExitStatus

SUITE = "Secrets"


@dataclass(frozen=True)
class Route:
    """One way through a run: its flags, which server it meets, whether -v shows a traceback."""

    label: str
    args: tuple[str, ...]
    server: str
    traceback: bool = False
    long: bool = False


ROUTES = [
    Route("plain", (), "good"),
    Route("verbose-gallery", ("-v", "--gallery"), "good"),
    Route("auth-refused", ("-v",), "refusing"),
    Route("faults", ("-v", "--retries", "1"), "faulty"),
    Route("usage-error", ("-v", "-o", "{blocker}"), "good", traceback=True),
    Route("json", ("--json", "--force"), "good", long=True),
    Route("quota", ("-v",), "quota", long=True),
    Route("unreachable", ("-v",), "unreachable", long=True),
    Route("localhost", ("-v",), "localhost", long=True),
    Route("dry-run", ("--dry-run", "-v"), "good", long=True),
    Route("bad-report", ("-v", "--report", "{tmp}/r.txt"), "good", traceback=True, long=True),
]
EXPECTED_EXIT = {
    "plain": ExitStatus.SOME_FAILED,  # the javascript: line
    "auth-refused": ExitStatus.HALTED,
    "quota": ExitStatus.HALTED,
    "unreachable": ExitStatus.TROUBLE,
}


def sweep(trial: Trial, emulator: Any, tmp_path: Path, routes: list[Route]) -> None:
    good = emulator(cheap=True, qps=1000)
    servers = {
        "good": good.endpoint,
        "localhost": good.endpoint.replace("127.0.0.1", "localhost"),
        "refusing": emulator(cheap=True, qps=1000, appcodes=frozenset({"other"})).endpoint,
        "quota": emulator(cheap=True, qps=1000, quota=1).endpoint,
        "faulty": emulator(
            cheap=True, qps=1000, faults={"500": 0.3, "reset": 0.2, "expire": 0.2}
        ).endpoint,
        "unreachable": "https://zuotang-endpoint.invalid/tasks/visual/scale",
    }
    urls = [good.file_url(f"s{i}.png") for i in range(4)] + ["javascript:alert(1)"]
    url_list = write_list(tmp_path / "urls.txt", urls)
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    for route in routes:
        args = [a.format(blocker=blocker, tmp=tmp_path) for a in route.args]
        run = enhance(
            trial,
            str(url_list),
            "-o",
            str(tmp_path / route.label),
            "--qps",
            "100",
            "--report",
            str(tmp_path / f"{route.label}.jsonl"),
            *args,
            endpoint=servers[route.server],
            traceback_expected=route.traceback,
        )
        trial.inputs += len(urls)
        if route.label in EXPECTED_EXIT:
            assert run.returncode == EXPECTED_EXIT[route.label], (route.label, run.stderr)
    trial.note(
        f"AppCode {APPCODE[:6]}… in {len(routes)} runs ("
        + ", ".join(r.label for r in routes)
        + "): in no stream, report, journal, gallery or traceback"
    )


def test_the_appcode_never_leaks_on_the_main_paths(
    trial: Trial, emulator: Any, tmp_path: Path
) -> None:
    """Success, -v with a gallery, auth refused, faults, a usage error's -v traceback."""
    sweep(trial, emulator, tmp_path, [p for p in ROUTES if not p.long])


@pytest.mark.reliability
def test_the_appcode_never_leaks_on_any_path(
    trial: Trial, emulator: Any, tmp_path: Path, isolated_config: Path
) -> None:
    """Every path: also --json, quota, unreachable, dry run, flag, config file, report."""
    sweep(trial, emulator, tmp_path, ROUTES)
    good = emulator(cheap=True, qps=1000)
    flag = enhance(
        trial, good.file_url("flag.png"), "-o", str(tmp_path / "flag"), "-v", "--appcode",
        APPCODE, endpoint=good.endpoint, appcode=None,
    )  # fmt: skip
    assert flag.returncode == ExitStatus.SUCCESS, flag.stderr
    config = isolated_config / "zuotang" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(f'appcode = "{APPCODE}"\n')
    config.chmod(0o644)  # too open: the warning must not show the code either
    from_file = enhance(
        trial, good.file_url("file.png"), "-o", str(tmp_path / "from-file"), "-v",
        endpoint=good.endpoint, appcode=None,
    )  # fmt: skip
    assert from_file.returncode == ExitStatus.SUCCESS, from_file.stderr
    shown = enhance(trial, "show", endpoint=good.endpoint, command="config")
    assert shown.returncode == 0 and "appcode" in shown.stdout.lower()
    report = enhance(trial, str(tmp_path / "faults"), endpoint=None, command="report")
    assert report.returncode == 0
    trial.note(
        "the AppCode given by flag and by a config file (0644: warned about) is not shown "
        "either; zuotang report and zuotang config show do not print it"
    )


def test_verbose_http_logging_masks_the_authorization_header(
    trial: Trial, emulator: Any, tmp_path: Path
) -> None:
    """-v: one stderr line per request: method, URL, status, headers, Authorization masked."""
    emu = emulator(cheap=True, qps=1000, faults={"500": 0.3}, seed=2)
    urls = [emu.file_url(f"v{i}.png") for i in range(5)]
    run = enhance(trial, *urls, "-o", str(tmp_path / "out"), "-v", "--qps", "100",
                  endpoint=emu.endpoint)  # fmt: skip
    trial.inputs += len(urls)
    assert run.returncode == ExitStatus.SUCCESS, run.stderr
    stats = emu.stats()
    posts = [line for line in run.stderr.splitlines() if f"POST {emu.endpoint}" in line]
    gets = [line for line in run.stderr.splitlines() if re.search(r"\bGET http", line)]
    heads = [line for line in gets if "range: bytes=0-" in line]  # the sources' metadata
    assert len(posts) == stats["calls"]  # one line per call, failed ones included
    assert len(gets) - len(heads) == stats["download_attempts"]
    assert len(heads) == len(urls)
    for line in posts:
        header = re.search(r"authorization: ([^;\]]*)", line, re.IGNORECASE)
        assert header is not None, line
        assert header.group(1).strip() in ("APPCODE ****", "APPCODE ***", "****", "***"), line
        assert re.search(r"-> (200|500)\b", line), line
    assert sum("-> 500" in line for line in posts) == stats["by_status"].get("500", 0)
    trial.note(
        f"-v logged {len(posts)} calls and {len(gets)} downloads, one line each with method, "
        f"URL, status and headers; the Authorization header read "
        f"{re.search(r'authorization: ([^;]*)', posts[0], re.IGNORECASE).group(1)!r}"  # type: ignore[union-attr]
    )


def test_an_endpoint_that_echoes_the_appcode_does_not_make_it_leak(
    trial: Trial, tmp_path: Path
) -> None:
    """A hostile endpoint puts the caller's Authorization header in its error message."""

    async def echo(request: Received, conn: Conn) -> None:
        header = request.headers.get("authorization", "")
        body = json.dumps({"status": 400, "message": f"bad request from {header}", "data": None})
        await conn.reply(400, body.encode(), {"X-Ca-Error-Message": f"denied: {header}"})

    with hostile_server(echo) as server:
        out = tmp_path / "out"
        run = enhance(
            trial, "http://img.test/echo.png", "-o", str(out), "-v",
            endpoint=f"{server.url}/tasks/visual/scale",
        )  # fmt: skip
    trial.inputs += 1
    assert run.returncode == ExitStatus.SOME_FAILED
    for path in out.rglob("*"):
        if path.is_file():
            assert APPCODE.encode() not in path.read_bytes(), path


def test_verbose_keeps_the_exit_code_of_a_usage_error(trial: Trial, tmp_path: Path) -> None:
    """-v adds a traceback to a usage error; the exit code stays 2."""
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    run = enhance(
        trial, "https://img.test/a.png", "-o", str(blocker), "-v",
        endpoint="http://127.0.0.1:9/tasks/visual/scale", traceback_expected=True,
    )  # fmt: skip
    trial.inputs += 1
    assert "cannot write to output directory" in run.stderr
    assert run.returncode == ExitStatus.USAGE


def test_an_appcode_with_control_characters_is_refused_without_echoing_it(
    trial: Trial, tmp_path: Path
) -> None:
    """A code with a CR LF (a header injection) or a space: exit 2, the code not shown."""
    for bad in (f"{APPCODE}\r\nX-Injected: 1", f"{APPCODE} extra", f"{APPCODE}\x00"):
        if "\x00" in bad:
            continue  # no NUL in an environment variable
        run = enhance(
            trial, "https://img.test/a.png", "-o", str(tmp_path / "out"),
            endpoint="http://127.0.0.1:9/tasks/visual/scale", appcode=bad,
        )  # fmt: skip
        trial.inputs += 1
        assert run.returncode == ExitStatus.USAGE, run.stderr
        assert "AppCode" in run.stderr and run.stderr.count("\n") == 1
    trial.note("AppCodes with CR LF or a space: refused (exit 2) in one line that omits them")


APP_SECRET = "rel-APPSECRET-9d8c7b6a"
"""The AppSecret of the signed runs: recognizable, as the AppCode."""


def test_the_app_secret_never_leaks_from_signed_runs_or_doctor(
    trial: Trial, emulator: Any, tmp_path: Path
) -> None:
    """Signed runs (-v, --json, a refused signature) and ``zuotang doctor``: the AppSecret
    is never sent, so no stream or file may hold it; the AppCode set beside it neither."""
    emu = emulator(cheap=True, qps=1000, app_keys={"rel-key": APP_SECRET}, clock_offset=-900.0)
    signed = {"ZUOTANG_APP_KEY": "rel-key", "ZUOTANG_APP_SECRET": APP_SECRET}
    urls = [emu.file_url(f"s{i}.png") for i in range(4)]
    runs = [
        enhance(trial, *urls, "-o", str(tmp_path / "out"), "-v", "--json", "--gallery",
                endpoint=emu.endpoint, env=signed),
        enhance(trial, *urls, "-o", str(tmp_path / "bad"), "-v", endpoint=emu.endpoint,
                env={**signed, "ZUOTANG_APP_SECRET": APP_SECRET[::-1]}),
        enhance(trial, endpoint=emu.endpoint, env=signed, command="doctor"),
        enhance(trial, "show", endpoint=emu.endpoint, env=signed, command="config"),
    ]  # fmt: skip
    trial.inputs += 2 * len(urls)
    assert [run.returncode for run in runs] == [0, ExitStatus.HALTED, 0, 0], runs[1].stderr
    for run in runs:
        assert APP_SECRET not in run.stdout + run.stderr
        assert APP_SECRET[::-1] not in run.stdout + run.stderr
    assert assert_no_secret_in_files(trial, tmp_path) > 0
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert APP_SECRET.encode() not in path.read_bytes(), path
    trial.note(
        "the AppSecret (and the AppCode beside it) in no stream of 2 signed runs, doctor "
        "and config show, nor in their reports, journals and gallery"
    )


BUCKET_SECRETS = (S3_SECRET, "zuotang-SESSION-token-4242", "X-Amz-Signature", "X-Amz-Credential")
"""The bucket's secret key and session token, and the marks of a presigned link."""


def test_bucket_keys_and_presigned_links_never_leak(
    trial: Trial, emulator: Any, s3_server: S3Server, tmp_path: Path
) -> None:
    """Runs through the user's bucket (--upload-to): -v with faults and retries, --json and
    the gallery, a bucket that refuses the credentials, one that does not answer.  The
    secret key, the session token and any presigned link stay out of every stream and
    every file (report, journal, gallery); objects are named s3://bucket/key."""
    emu = emulator(url_only=True, qps=1000, faults={"500": 0.3, "reset": 0.1}, seed=5)
    photos = tmp_path / "photos"
    for i in range(6):
        (photos / f"d{i % 2}").mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (40 + i, 30), (i * 30, 90, 120)).save(photos / f"d{i % 2}" / f"{i}.png")
    env = {**{k: v for k, v in s3_server.env.items() if v is not None}}
    env["AWS_SESSION_TOKEN"] = BUCKET_SECRETS[1]
    bucket = f"s3://{s3_server.new_bucket()}/in"
    strict = start_s3_server({"INITIAL_NO_AUTH_ACTION_COUNT": "0"})
    try:
        refused_env = {**env, "AWS_ENDPOINT_URL_S3": strict.endpoint}
        runs = [
            enhance(trial, str(photos), "-r", "-o", str(tmp_path / "out"), "-v",
                    "--upload-to", bucket, "--send-files", "bucket", "--retries", "6",
                    endpoint=emu.endpoint, env=env),
            enhance(trial, str(photos), "-r", "-o", str(tmp_path / "json"), "--json",
                    "--gallery", "--upload-to", bucket, endpoint=emu.endpoint, env=env),
            enhance(trial, str(photos), "-r", "-o", str(tmp_path / "refused"), "-v",
                    "--upload-to", "s3://photos/in", endpoint=emu.endpoint, env=refused_env,
                    traceback_expected=True),
            enhance(trial, str(photos), "-r", "-o", str(tmp_path / "gone"), "-v",
                    "--upload-to", bucket, "--upload-endpoint", "http://127.0.0.1:9",
                    endpoint=emu.endpoint, env=env, traceback_expected=True),
        ]  # fmt: skip
    finally:
        strict.process.terminate()
        strict.process.wait(timeout=10)
    trial.inputs += 4 * 6
    codes = [run.returncode for run in runs]
    assert codes[2:] == [ExitStatus.USAGE, ExitStatus.TROUBLE], runs[2].stderr + runs[3].stderr
    assert codes[0] in (ExitStatus.SUCCESS, ExitStatus.SOME_FAILED), runs[0].stderr
    assert "s3: PUT s3://" in runs[0].stderr  # -v names objects, never their links
    for run in runs:
        for secret in BUCKET_SECRETS:
            assert secret not in run.stdout + run.stderr, secret
    for path in tmp_path.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for secret in BUCKET_SECRETS:
                assert secret.encode() not in data, (secret, path)
    trial.note(
        "the bucket's secret key and session token, and every presigned link, in no stream "
        "of 4 bucket runs (-v with faults, --json and gallery, refused, unreachable) nor file"
    )
