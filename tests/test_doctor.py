"""``zuotang doctor`` through the real entry point against the emulator: the right exit
code for good, wrong and signed credentials, a wrong path and a closed port, each with no
billed call (the emulator's counters); ``--paid-check`` pays exactly one, said first."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import S3_SECRET, S3Server
from tests.helpers import cli
from zuotang_cli.status import ExitStatus

APPCODE = "doctor-GOOD-appcode-1"
KEY = "203777000"
SECRET = "DOCTOR-secret-5e5e5e"
CLOSED_PORT = "http://127.0.0.1:9/tasks/visual/scale"
"""The discard port: nothing listens there on a test machine."""


def doctor(emu: Any, *args: str, **env: str | None) -> subprocess.CompletedProcess[str]:
    variables: dict[str, str | None] = {
        "ZUOTANG_ENDPOINT": emu.endpoint if emu is not None else None,
        "ZUOTANG_QPS": "50",
        **env,
    }
    return cli("doctor", *args, env=variables)


def rows(proc: subprocess.CompletedProcess[str]) -> dict[str, str]:
    """The table: check name → its line."""
    table: dict[str, str] = {}
    for line in proc.stdout.splitlines()[1:]:
        name, _, rest = line.partition("  ")
        table[name.strip()] = rest.strip()
    return table


@pytest.fixture
def gateway(emulator: Any) -> Any:
    return emulator(appcodes={APPCODE}, app_keys={KEY: SECRET}, qps=100)


def test_good_appcode_all_well_exit_0_nothing_billed(gateway: Any) -> None:
    proc = doctor(gateway, ZUOTANG_APPCODE=APPCODE)
    assert proc.returncode == ExitStatus.SUCCESS, proc.stdout + proc.stderr
    table = rows(proc)
    for check in ("credentials accepted", "endpoint path", "body encoding", "task path", "clock"):
        assert table[check].startswith("ok"), table
    assert table["sync/async"].startswith("-") and "--paid-check" in table["sync/async"]
    stats = gateway.stats()
    assert stats["calls"] >= 1 and stats["billed"] == 0
    assert APPCODE not in proc.stdout + proc.stderr


def test_wrong_appcode_exit_3(gateway: Any) -> None:
    proc = doctor(gateway, ZUOTANG_APPCODE="doctor-WRONG-appcode")
    assert proc.returncode == ExitStatus.HALTED, proc.stdout
    assert "Invalid AppCode" in rows(proc)["credentials accepted"]
    assert "Purchased Services" in proc.stdout
    assert gateway.stats()["billed"] == 0


def test_signed_credentials_exit_0_and_wrong_secret_exit_3(gateway: Any) -> None:
    good = doctor(gateway, ZUOTANG_APP_KEY=KEY, ZUOTANG_APP_SECRET=SECRET)
    assert good.returncode == ExitStatus.SUCCESS, good.stdout + good.stderr
    assert "AppKey 203777000" in rows(good)["credentials"]
    assert gateway.stats()["signed"] >= 2  # the probe and the task path
    wrong = doctor(gateway, ZUOTANG_APP_KEY=KEY, ZUOTANG_APP_SECRET="not-the-secret")
    assert wrong.returncode == ExitStatus.HALTED, wrong.stdout
    assert "the gateway signed `POST\\n" in wrong.stdout and "zuotang signed" in wrong.stdout
    for proc in (good, wrong):
        assert SECRET not in proc.stdout + proc.stderr
        assert "not-the-secret" not in proc.stdout + proc.stderr
    assert gateway.stats()["billed"] == 0


def test_signed_with_the_gateways_clock_20_minutes_off_is_all_well_with_a_warning(
    emulator: Any,
) -> None:
    emu = emulator(app_keys={KEY: SECRET}, clock_offset=1200.0, qps=100)
    proc = doctor(emu, ZUOTANG_APP_KEY=KEY, ZUOTANG_APP_SECRET=SECRET)
    assert proc.returncode == ExitStatus.SUCCESS, proc.stdout
    assert rows(proc)["clock"].startswith("warn") and "behind" in rows(proc)["clock"]
    assert emu.stats()["billed"] == 0


def test_wrong_path_exit_2(gateway: Any) -> None:
    proc = doctor(gateway, ZUOTANG_APPCODE=APPCODE, ZUOTANG_ENDPOINT=gateway.url + "/tasks/scale")
    assert proc.returncode == ExitStatus.USAGE, proc.stdout
    assert rows(proc)["endpoint path"].startswith("FAIL")
    assert gateway.stats()["billed"] == 0


def test_classic_gateway_wrong_path_exit_2(emulator: Any) -> None:
    emu = emulator(gateway_style="classic", qps=100)
    proc = doctor(emu, ZUOTANG_APPCODE=APPCODE, ZUOTANG_ENDPOINT=emu.url + "/scale")
    assert proc.returncode == ExitStatus.USAGE and "Invalid Url" in proc.stdout
    assert emu.stats()["billed"] == 0


def test_closed_port_exit_4() -> None:
    proc = doctor(None, ZUOTANG_APPCODE=APPCODE, ZUOTANG_ENDPOINT=CLOSED_PORT)
    assert proc.returncode == ExitStatus.TROUBLE, proc.stdout + proc.stderr
    assert rows(proc)["reachable"].startswith("FAIL")
    assert "Traceback" not in proc.stderr


def test_no_credentials_exit_2_saying_where_to_find_them() -> None:
    proc = doctor(None, ZUOTANG_ENDPOINT=CLOSED_PORT)
    assert proc.returncode == ExitStatus.USAGE
    assert "Purchased Services" in proc.stderr and "Traceback" not in proc.stderr


def test_a_service_reading_multipart_only_is_found_out_for_free(emulator: Any) -> None:
    emu = emulator(body_accept="multipart", qps=100)
    proc = doctor(emu, ZUOTANG_APPCODE=APPCODE)
    assert proc.returncode == ExitStatus.SUCCESS, proc.stdout
    assert "multipart" in rows(proc)["body encoding"]
    assert emu.stats()["billed"] == 0


def test_no_task_path_is_said(emulator: Any) -> None:
    emu = emulator(task_path=False, qps=100)
    proc = doctor(emu, ZUOTANG_APPCODE=APPCODE)
    assert proc.returncode == ExitStatus.SUCCESS
    assert rows(proc)["task path"].startswith("warn")
    assert emu.stats()["billed"] == 0


def test_paid_check_makes_exactly_one_paid_call_said_beforehand(
    gateway: Any, tmp_path: Path
) -> None:
    url = gateway.file_url("garden-480x640.png")
    proc = doctor(gateway, "--paid-check", url, ZUOTANG_APPCODE=APPCODE)
    assert proc.returncode == ExitStatus.SUCCESS, proc.stdout + proc.stderr
    assert "one paid call follows" in proc.stderr
    assert rows(proc)["paid call"].startswith("ok") and "synchronous" in proc.stdout
    assert gateway.stats()["billed"] == 1


def test_paid_check_of_an_asynchronous_listing(emulator: Any) -> None:
    emu = emulator(replies="async", qps=100)
    url = emu.file_url("garden-480x640.png")
    proc = doctor(emu, "--paid-check", url, ZUOTANG_APPCODE=APPCODE)
    assert proc.returncode == ExitStatus.SUCCESS, proc.stdout
    assert "asynchronous" in rows(proc)["paid call"]
    assert emu.stats()["billed"] == 1


def test_the_bucket_of_upload_to_is_checked_free(gateway: Any, s3_server: S3Server) -> None:
    bucket = s3_server.new_bucket()
    proc = doctor(
        gateway, "--upload-to", f"s3://{bucket}/in", ZUOTANG_APPCODE=APPCODE, **s3_server.env
    )
    assert proc.returncode == ExitStatus.SUCCESS, proc.stdout + proc.stderr
    assert rows(proc)["bucket"].startswith("ok") and f"s3://{bucket}/in" in rows(proc)["bucket"]
    assert s3_server.objects(bucket) == []  # the probe object put and deleted
    assert gateway.stats()["billed"] == 0


@pytest.mark.parametrize(
    ("upload_to", "endpoint", "status", "words"),
    [
        ("s3://nope/in", None, ExitStatus.USAGE, "does not exist"),
        ("s3://photos/in", "http://127.0.0.1:9", ExitStatus.TROUBLE, "does not answer"),
    ],
)
def test_bucket_trouble_is_a_failed_row_and_its_exit_code(
    gateway: Any,
    s3_server: S3Server,
    upload_to: str,
    endpoint: str | None,
    status: ExitStatus,
    words: str,
) -> None:
    env = {**s3_server.env, "ZUOTANG_UPLOAD_TO": upload_to, "ZUOTANG_UPLOAD_ENDPOINT": endpoint}
    proc = doctor(gateway, ZUOTANG_APPCODE=APPCODE, **env)
    assert proc.returncode == status, proc.stdout + proc.stderr
    assert rows(proc)["bucket"].startswith("FAIL") and words in rows(proc)["bucket"]
    assert S3_SECRET not in proc.stdout + proc.stderr
