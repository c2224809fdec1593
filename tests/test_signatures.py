"""Signed requests (AppKey + AppSecret): the string to sign, every answer of the gateway
to a signed request, the clock corrected once, and the AppSecret shown nowhere.

Three layers: pure units of :mod:`zuotang_cli.protocol.signing`; the batch against
scripted replies (``httpx.MockTransport``); ``zuotang enhance`` against the emulator,
which checks signatures by its own implementation of the same rules."""

from __future__ import annotations

import asyncio
import email.utils
import re
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import (
    ENDPOINT,
    Server,
    cli,
    ok,
    report_rows,
    run_batch,
    url_items,
)
from zuotang_cli.app.credentials import choose
from zuotang_cli.errors import UsageError
from zuotang_cli.models import ErrorClass
from zuotang_cli.protocol import api, signing
from zuotang_cli.protocol.api import CallSpec, Verdict
from zuotang_cli.protocol.signing import AppKey, Clock
from zuotang_cli.status import ExitStatus

KEY = "203999111"
SECRET = "SIGN-SECRET-7f3a9c0e"
"""Recognizable: a leak of it is easy to find."""
APP = AppKey(KEY, SECRET)
SAMPLES = ("garden-480x640.png", "harbour-320x240.jpg", "portrait-600x900.jpg")


def signed_spec(**kw: Any) -> CallSpec:
    return CallSpec(ENDPOINT, "", "clean", None, app_key=APP, **kw)


def refusal(message: str, *, date: float | None = None) -> httpx.Response:
    headers = {"X-Ca-Error-Message": message, "X-Ca-Request-Id": "rid-1"}
    if date is not None:
        headers["Date"] = email.utils.formatdate(date, usegmt=True)
    return httpx.Response(400, headers=headers)


def signed_env(emu: Any, secret: str = SECRET, key: str = KEY) -> dict[str, str | None]:
    return {
        "ZUOTANG_ENDPOINT": emu.endpoint,
        "ZUOTANG_APP_KEY": key,
        "ZUOTANG_APP_SECRET": secret,
        "ZUOTANG_APPCODE": None,
    }


# -- the string to sign -------------------------------------------------------------------


def test_the_string_to_sign_follows_the_documented_layout() -> None:
    headers = {
        "Accept": "application/json",
        "Content-Type": "application/x-www-form-urlencoded; charset=UTF-8",
        "X-Ca-Timestamp": "1525872629832",
        "X-Ca-Nonce": "n-1",
        "X-Ca-Key": KEY,
        "X-Ca-Signature-Method": "HmacSHA256",
    }
    params = [("type", "clean"), ("image_url", "https://a.test/x.png?k=v w"), ("flag", "")]
    text = signing.string_to_sign("post", headers, "/tasks/visual/scale", params, signing.SIGNED)
    assert text.split("\n") == [
        "POST",
        "application/json",
        "",  # Content-MD5: never for a form
        "application/x-www-form-urlencoded; charset=UTF-8",
        "",  # Date, kept empty
        f"x-ca-key:{KEY}",
        "x-ca-nonce:n-1",
        "x-ca-signature-method:HmacSHA256",
        "x-ca-timestamp:1525872629832",
        "/tasks/visual/scale?flag&image_url=https://a.test/x.png?k=v w&type=clean",
    ]


def test_a_form_body_is_signed_by_its_fields_and_another_body_by_its_md5() -> None:
    form = signing.sign(
        APP, "POST", "/p", {"Content-Type": "application/x-www-form-urlencoded"},
        [("a", "1")], b"a=1", timestamp_ms=1, nonce="n",
    )  # fmt: skip
    assert signing.CONTENT_MD5 not in form.headers and form.text.endswith("/p?a=1")
    multipart = signing.sign(
        APP, "POST", "/p", {"Content-Type": "multipart/form-data; boundary=b"}, [], b"--b--",
        timestamp_ms=1, nonce="n",
    )  # fmt: skip
    assert multipart.headers[signing.CONTENT_MD5] == signing.content_md5(b"--b--")
    assert f"\n{multipart.headers[signing.CONTENT_MD5]}\n" in multipart.text
    assert multipart.headers[signing.SIGNATURE] == signing.signature(SECRET, multipart.text)
    assert multipart.headers[signing.SIGNED_HEADERS] == (
        "x-ca-key,x-ca-nonce,x-ca-signature-method,x-ca-timestamp"
    )


def test_every_request_gets_a_fresh_nonce_and_no_authorization_header() -> None:
    spec = signed_spec()
    client = httpx.AsyncClient()
    nonces = set()
    for _ in range(3):
        request = client.build_request("POST", ENDPOINT, headers=spec.headers(), content=b"x=1")
        spec.authorize(request)
        nonces.add(request.headers[signing.NONCE])
        assert "Authorization" not in request.headers
        assert SECRET not in str(request.headers)
    assert len(nonces) == 3


def test_the_clock_takes_the_gateways_offset_once_and_ignores_the_dates_grain() -> None:
    clock = Clock()
    now = time.time()
    assert clock.correct(now + 1200, now)
    assert round(clock.offset) == 1200 and clock.corrections == 1
    assert not clock.correct(now + 1201, now)  # within the Date header's one second
    assert abs(clock.now() - (time.time() + 1200)) < 2


def test_credentials_choose_signatures_when_the_pair_is_set() -> None:
    assert choose("code-1234", KEY, SECRET, None).scheme == "signature"
    assert choose("code-1234", KEY, SECRET, "appcode").scheme == "appcode"
    assert choose("code-1234", None, None, None).scheme == "appcode"
    with pytest.raises(UsageError, match="ZUOTANG_APP_SECRET"):
        choose(None, KEY, None, None)
    with pytest.raises(UsageError, match="--auth signature"):
        choose("code-1234", None, None, "signature")
    with pytest.raises(UsageError) as refused:
        choose(None, None, None, None)
    assert "Purchased Services" in str(refused.value)
    assert SECRET not in repr(choose(None, KEY, SECRET, None))


# -- each answer of the gateway, classified ----------------------------------------------


@pytest.mark.parametrize(
    ("message", "verdict", "error_class"),
    [
        ("Invalid Signature, Server StringToSign:`POST#a##b#`", Verdict.HALT,
         ErrorClass.SIGNATURE),
        ("Invalid AppKey", Verdict.HALT, ErrorClass.APP_KEY),
        ("Nonce Used", Verdict.RETRY, ErrorClass.NONCE_USED),
        ("Invalid Timestamp", Verdict.RETRY, ErrorClass.CLOCK_SKEW),
        ("Timestamp Expired", Verdict.RETRY, ErrorClass.CLOCK_SKEW),
    ],
)  # fmt: skip
def test_each_refusal_of_a_signed_request_is_classified(
    message: str, verdict: Verdict, error_class: ErrorClass
) -> None:
    stamp = time.time() + 600
    response = refusal(message, date=stamp)
    reply = api.classify(400, response.headers, b"")
    assert (reply.verdict, reply.error_class) == (verdict, error_class)
    if error_class is ErrorClass.CLOCK_SKEW:
        assert reply.server_time == pytest.approx(int(stamp), abs=1)


def test_a_refused_signature_shows_the_gateways_string_beside_ours() -> None:
    ours = "POST\napplication/json\n\n\n\nx-ca-key:k\n/p?a=1"
    message = api.signature_mismatch(
        f"Invalid Signature, Server StringToSign:`{ours.replace(chr(10), '#')}`", ours
    )
    assert message.count("POST\\napplication/json\\n\\n\\n\\nx-ca-key:k\\n/p?a=1") == 2
    assert "\n" not in message and "AppSecret is wrong" in message
    other = api.signature_mismatch("Invalid Signature, Server StringToSign:`GET#x`", ours)
    assert "`GET\\nx`" in other and "AppSecret is wrong" not in other


# -- the batch against scripted replies ---------------------------------------------------


def test_nonce_used_sends_the_same_call_once_more_with_a_fresh_nonce(tmp_path: Path) -> None:
    nonces: list[str] = []

    def replies(n: int, request: httpx.Request) -> httpx.Response:
        nonces.append(request.headers[signing.NONCE])
        return refusal("Nonce Used") if n == 1 else ok()

    server = Server(replies)
    result, records = run_batch(tmp_path, server, url_items(1), spec=signed_spec(), retries=0)
    assert records[0].ok, records[0].message
    assert server.calls == 2 and len(set(nonces)) == 2
    assert result.paid_calls == 1  # the refusal was a 400: not billed


ONE_AT_A_TIME = 1.0
"""The QPS of the runs that halt on their first reply: the next call's turn comes a
second later, long after the halt (at the default 200, a loaded machine let a second call
start before the first reply was read)."""


def test_a_refused_signature_halts_with_both_strings(tmp_path: Path) -> None:
    server = Server(lambda n, r: refusal("Invalid Signature, Server StringToSign:`POST#x`"))
    result, _ = run_batch(tmp_path, server, url_items(3), spec=signed_spec(), qps=ONE_AT_A_TIME)
    assert result.halt is not None and result.exit_status is ExitStatus.HALTED
    assert "the gateway signed `POST\\nx`" in result.halt.message
    assert "zuotang signed `POST\\napplication/json" in result.halt.message
    assert server.calls == 1 and result.paid_calls == 0


def test_an_unknown_appkey_halts_with_exit_3(tmp_path: Path) -> None:
    server = Server(lambda n, r: refusal("Invalid AppKey"))
    result, _ = run_batch(tmp_path, server, url_items(3), spec=signed_spec(), qps=ONE_AT_A_TIME)
    assert result.halt is not None and result.halt.error_class is ErrorClass.APP_KEY
    assert result.exit_status is ExitStatus.HALTED and server.calls == 1


def test_a_timestamp_refused_is_corrected_by_the_gateways_date_and_said_once(
    tmp_path: Path,
) -> None:
    gateway_offset = 20 * 60.0
    spec = signed_spec()

    def replies(n: int, request: httpx.Request) -> httpx.Response:
        stamp = int(request.headers[signing.TIMESTAMP]) / 1000
        gateway_now = time.time() + gateway_offset
        if abs(stamp - gateway_now) > signing.WINDOW:
            return refusal("Timestamp Expired", date=gateway_now)
        return ok()

    notices: list[str] = []
    server = Server(replies)
    result, records = run_batch(tmp_path, server, url_items(4), notices, spec=spec, qps=1000)
    assert all(record.ok for record in records)
    assert [n for n in notices if "clock" in n] == [notices[0]] and "behind" in notices[0]
    assert round(spec.clock.offset / 60) == 20
    assert result.paid_calls == 4


def test_a_timestamp_refused_without_a_date_halts(tmp_path: Path) -> None:
    server = Server(lambda n, r: refusal("Invalid Timestamp"))
    result, _ = run_batch(tmp_path, server, url_items(2), spec=signed_spec(), qps=ONE_AT_A_TIME)
    assert result.halt is not None and result.exit_status is ExitStatus.TROUBLE
    assert "no Date header" in result.halt.message and server.calls == 1


# -- the emulator checks signatures as the gateway does -----------------------------------


def _signed_post(emu: Any, app: AppKey, *, stamp_ms: int, nonce: str) -> httpx.Response:
    body = "type=clean&sync=1"
    headers = {
        "Accept": "application/json",
        "Content-Type": "application/x-www-form-urlencoded; charset=UTF-8",
    }
    params = [("type", "clean"), ("sync", "1")]
    done = signing.sign(
        app, "POST", "/tasks/visual/scale", headers, params, body.encode(),
        timestamp_ms=stamp_ms, nonce=nonce,
    )  # fmt: skip
    return httpx.post(emu.endpoint, headers={**headers, **done.headers}, content=body)


def test_the_emulator_answers_each_refusal_as_the_gateway(emulator: Any) -> None:
    emu = emulator(app_keys={KEY: SECRET}, qps=100)
    now = int(time.time() * 1000)
    nonce = str(uuid.uuid4())
    first = _signed_post(emu, APP, stamp_ms=now, nonce=nonce)
    assert first.status_code == 400 and "image_url" in first.text  # the service saw it
    again = _signed_post(emu, APP, stamp_ms=now, nonce=nonce)
    assert again.headers["X-Ca-Error-Message"] == "Nonce Used"
    stale = _signed_post(emu, APP, stamp_ms=now - 20 * 60 * 1000, nonce=str(uuid.uuid4()))
    assert stale.headers["X-Ca-Error-Message"] == "Timestamp Expired"
    assert "Date" in stale.headers
    wrong = _signed_post(emu, AppKey(KEY, "other"), stamp_ms=now, nonce=str(uuid.uuid4()))
    message = wrong.headers["X-Ca-Error-Message"]
    assert message.startswith("Invalid Signature, Server StringToSign:`POST#application/json#")
    assert message.endswith("#/tasks/visual/scale?sync=1&type=clean`")
    unknown = _signed_post(emu, AppKey("nobody", SECRET), stamp_ms=now, nonce=str(uuid.uuid4()))
    assert unknown.headers["X-Ca-Error-Message"] == "Invalid AppKey"
    stats = emu.stats()
    assert stats["signed"] == 1 and stats["billed"] == 0
    assert stats["signature_refused"] == {
        "Nonce Used": 1, "Timestamp Expired": 1, "Invalid Signature": 1, "Invalid AppKey": 1,
    }  # fmt: skip


def test_the_emulators_clock_offset_moves_its_date_header(emulator: Any) -> None:
    emu = emulator(clock_offset=-1200.0)
    response = httpx.get(emu.url + "/nowhere")
    stamp = signing.server_time(response.headers["Date"])
    assert stamp is not None and abs(stamp - (time.time() - 1200)) < 5
    assert len(response.headers.get_list("Date")) == 1


# -- zuotang enhance, signed, against the emulator -----------------------------------------


def test_a_signed_batch_with_the_gateways_clock_20_minutes_off_succeeds_and_says_so_once(
    emulator: Any, tmp_path: Path
) -> None:
    emu = emulator(app_keys={KEY: SECRET}, clock_offset=20 * 60.0, qps=100)
    urls = [emu.file_url(name) for name in SAMPLES]
    out = tmp_path / "out"
    proc = cli("enhance", *urls, "-o", str(out), "--qps", "50", env=signed_env(emu))
    assert proc.returncode == ExitStatus.SUCCESS, proc.stderr
    assert proc.stderr.count("the local clock is") == 1, proc.stderr
    assert re.search(r"clock is 1(199|200|201) s behind the gateway's", proc.stderr)
    stats = emu.stats()
    assert stats["billed"] == len(urls) and stats["signed"] == len(urls)
    assert stats["signature_refused"].get("Timestamp Expired", 0) >= 1
    again = cli("enhance", *urls, "-o", str(out), "--qps", "50", env=signed_env(emu))
    assert again.returncode == ExitStatus.SUCCESS, again.stderr
    assert emu.stats()["billed"] == len(urls)  # the re-run pays nothing


def test_a_wrong_app_secret_exits_3_showing_both_strings_and_pays_nothing(
    emulator: Any, tmp_path: Path
) -> None:
    emu = emulator(app_keys={KEY: SECRET}, qps=100)
    wrong = "WRONG-secret-0000"
    proc = cli(
        "enhance", emu.file_url(SAMPLES[0]), "-o", str(tmp_path / "o"),
        env=signed_env(emu, secret=wrong),
    )  # fmt: skip
    assert proc.returncode == ExitStatus.HALTED, proc.stderr
    assert "the gateway signed `POST\\napplication/json" in proc.stderr
    assert "AppSecret is wrong" in proc.stderr and "Traceback" not in proc.stderr
    assert wrong not in proc.stderr + proc.stdout
    assert emu.stats()["billed"] == 0


def test_an_unknown_app_key_exits_3(emulator: Any, tmp_path: Path) -> None:
    emu = emulator(app_keys={KEY: SECRET}, qps=100)
    proc = cli(
        "enhance", emu.file_url(SAMPLES[0]), "-o", str(tmp_path / "o"),
        env=signed_env(emu, key="unknown-key"),
    )  # fmt: skip
    assert proc.returncode == ExitStatus.HALTED, proc.stderr
    assert "AppKey was refused" in proc.stderr
    assert emu.stats()["billed"] == 0


def test_auth_appcode_wins_when_both_are_set(emulator: Any, tmp_path: Path) -> None:
    emu = emulator(app_keys={KEY: SECRET}, appcodes={"code-for-auth-1"}, qps=100)
    env = {**signed_env(emu), "ZUOTANG_APPCODE": "code-for-auth-1"}
    url = emu.file_url(SAMPLES[0])
    proc = cli("enhance", url, "-o", str(tmp_path / "o"), "--auth", "appcode", env=env)
    assert proc.returncode == ExitStatus.SUCCESS, proc.stderr
    assert emu.stats()["signed"] == 0 and emu.stats()["billed"] == 1


def test_the_app_secret_appears_in_no_output_report_journal_or_config_show(
    emulator: Any, tmp_path: Path
) -> None:
    """-v (HTTP exchanges), --json, --gallery, a report, a refused signature, config show:
    the AppSecret is never sent, so nothing may show it."""
    emu = emulator(app_keys={KEY: SECRET}, clock_offset=1200.0, qps=100)
    out = tmp_path / "out"
    urls = [emu.file_url(name) for name in SAMPLES]
    report = tmp_path / "run.jsonl"
    runs = [
        cli("enhance", *urls, "-o", str(out), "-v", "--json", "--gallery", "--report",
            str(report), env=signed_env(emu)),
        cli("enhance", *urls, "-o", str(tmp_path / "bad"), "-v",
            env={**signed_env(emu, secret=SECRET[::-1])}),
        cli("config", "show", "--json", env=signed_env(emu)),
        cli("config", "show", env=signed_env(emu)),
        cli("report", str(out), env=signed_env(emu)),
    ]  # fmt: skip
    assert runs[0].returncode == ExitStatus.SUCCESS, runs[0].stderr
    assert "x-ca-signature:" in runs[0].stderr.lower()  # -v did log the signed requests
    assert runs[1].returncode == ExitStatus.HALTED
    assert "app_secret" in runs[3].stdout and "********" in runs[3].stdout
    for proc in runs:
        for text in (proc.stdout, proc.stderr):
            assert SECRET not in text and SECRET[::-1] not in text
    files = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert any(path.name == "journal.sqlite" for path in files)
    for path in files:
        data = path.read_bytes()
        assert SECRET.encode() not in data and SECRET[::-1].encode() not in data, path
    assert len(report_rows(out)) == len(urls)


def test_set_app_secret_reads_stdin_and_writes_the_file_0600(
    isolated_config: Path, tmp_path: Path
) -> None:
    proc = cli("config", "set-app-secret", stdin=f"  {SECRET}\n")
    assert proc.returncode == 0, proc.stderr
    assert SECRET not in proc.stdout + proc.stderr
    path = isolated_config / "zuotang" / "config.toml"
    assert f'app_secret = "{SECRET}"' in path.read_text()
    assert path.stat().st_mode & 0o777 == 0o600
    refused = cli("config", "set", "app_secret", SECRET)
    assert refused.returncode == ExitStatus.USAGE and "set-app-secret" in refused.stderr
    flag = cli("enhance", "https://a.test/x.png", "--app-secret", SECRET)
    assert flag.returncode == ExitStatus.USAGE  # there is no flag for the secret


def test_the_python_api_signs_with_app_key_and_app_secret(emulator: Any, tmp_path: Path) -> None:
    from zuotang_cli import enhance

    emu = emulator(app_keys={KEY: SECRET}, qps=100)
    outcome = asyncio.run(
        enhance(
            [emu.file_url(SAMPLES[1])],
            app_key=KEY,
            app_secret=SECRET,
            endpoint=emu.endpoint,
            output_dir=tmp_path / "out",
            qps=50,
        )
    )
    assert outcome.exit_status is ExitStatus.SUCCESS
    assert emu.stats()["signed"] == 1 and emu.stats()["billed"] == 1


class SlowRefusals(Server):
    """Refuses a stale timestamp after a moment, so that many calls signed by the wrong
    clock are in flight together when the first refusal corrects it."""

    async def __call__(self, request: httpx.Request) -> httpx.Response:  # type: ignore[override]
        if request.url.path != "/tasks/visual/scale":
            return super().__call__(request)
        self.calls += 1
        stamp = int(request.headers[signing.TIMESTAMP]) / 1000
        gateway_now = time.time() - 30 * 60.0
        if abs(stamp - gateway_now) > signing.WINDOW:
            await asyncio.sleep(0.05)
            return refusal("Timestamp Expired", date=gateway_now)
        return ok()


def test_calls_in_flight_when_the_clock_is_corrected_are_sent_again_not_halted(
    tmp_path: Path,
) -> None:
    server = SlowRefusals(lambda n, r: ok())
    notices: list[str] = []
    result, records = run_batch(tmp_path, server, url_items(8), notices, spec=signed_spec())
    assert result.halt is None and all(record.ok for record in records)
    assert sum("clock" in notice for notice in notices) == 1 and "ahead of" in notices[0]
    assert 10 <= server.calls <= 16 and result.paid_calls == 8  # 2+ refused in flight
