"""Contract variants, one switch each (docs/api-contract.md): gateway style, refusals,
billing rule, body encodings, body limit, circuit breaker, reply shape, result links and
return type 3 — over loopback against a real emulator."""

from __future__ import annotations

import io
import math
import random
import time
import uuid
from calendar import timegm
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from PIL import Image

from tests.conftest import EmulatorFactory
from tests.helpers import wait_until
from zuotang_cli.cli.main import main
from zuotang_cli.emulator import EmulatorConfig, RunningEmulator
from zuotang_cli.emulator.form import DEDICATED_BODY_BYTES
from zuotang_cli.emulator.gateway import GatewayError, parse_refusal
from zuotang_cli.protocol import rules
from zuotang_cli.status import ExitStatus

AUTH = {"Authorization": "APPCODE test-code"}
SAMPLE = "harbour-320x240.jpg"


def fields(emu: RunningEmulator, name: str = SAMPLE, **extra: str) -> dict[str, str]:
    return {"type": "clean", "image_url": emu.file_url(name), **extra}


def post(emu: RunningEmulator, data: dict[str, str] | None = None, **kwargs: Any) -> httpx.Response:
    kwargs.setdefault("headers", AUTH)
    kwargs.setdefault("timeout", 10)
    return httpx.post(
        emu.endpoint, data=fields(emu) if data is None else data, trust_env=False, **kwargs
    )


def upload(emu: RunningEmulator) -> httpx.Response:
    files = {"type": (None, "clean"), "image_url": (None, emu.file_url(SAMPLE))}
    return httpx.post(emu.endpoint, files=files, headers=AUTH, timeout=10, trust_env=False)


def assert_gateway_error(
    response: httpx.Response, status: int, message: str, code: str | None
) -> None:
    assert response.status_code == status
    assert response.content == b"" and response.headers["Content-Length"] == "0"
    assert response.headers["X-Ca-Error-Message"] == message
    assert response.headers.get("X-Ca-Error-Code") == code
    uuid.UUID(response.headers["X-Ca-Request-Id"])


# --- gateway style -------------------------------------------------------------------


def test_classic_gateway_answers_a_bad_appcode_400_message_only(emulator: EmulatorFactory) -> None:
    emu = emulator(gateway_style="classic", appcodes=frozenset({"good"}))
    refused = post(emu, headers={"Authorization": "APPCODE bad"})
    assert_gateway_error(refused, 400, "Invalid AppCode `not exists`", None)
    assert_gateway_error(post(emu, headers={}), 400, "Missing AppCode", None)
    assert post(emu, headers={"Authorization": "APPCODE good"}).status_code == 200
    assert emu.stats()["billed"] == 1


@pytest.mark.timing
def test_classic_gateway_quota_and_throttle_are_bare_403s(emulator: EmulatorFactory) -> None:
    emu = emulator(gateway_style="classic", cheap=True, quota=1, qps=1, throttle_style="429")
    assert post(emu).status_code == 200
    throttled = post(emu)
    assert_gateway_error(throttled, 403, "Throttled by USER Flow Control", None)
    assert "Retry-After" not in throttled.headers
    time.sleep(1.05)  # the 1 s flow-control window passes: the quota answers, not the throttle
    assert_gateway_error(post(emu), 403, "Quota Exhausted", None)
    stats = emu.stats()
    assert stats["throttled"] == 1 and stats["billed"] == 1
    assert stats["by_status"] == {"200": 1, "403": 2}


def test_classic_gateway_sends_no_codes_for_backend_errors(emulator: EmulatorFactory) -> None:
    emu = emulator(gateway_style="classic", faults={"500": 1.0})
    assert_gateway_error(post(emu), 500, "Internal Error", None)


@pytest.mark.parametrize(
    ("style", "status", "message"),
    [("modern", 404, "API Not Found"), ("classic", 400, "Invalid Url")],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/tasks/visual/scal"),
        ("POST", "/"),
        ("GET", rules.SCALE_PATH),
        ("PUT", rules.SCALE_PATH),
        ("POST", rules.SCALE_PATH + "/some-task"),
    ],
)
def test_a_wrong_path_or_method_is_the_gateways(
    emulator: EmulatorFactory, style: str, status: int, message: str, method: str, path: str
) -> None:
    emu = emulator(gateway_style=style)
    response = httpx.request(
        method, emu.url + path, data=fields(emu), headers=AUTH, timeout=10, trust_env=False
    )
    assert_gateway_error(response, status, message, None)
    assert emu.stats()["calls"] == 0 and emu.stats()["billed"] == 0


def test_the_other_hosts_keep_their_own_404s(emulator: EmulatorFactory) -> None:
    emu = emulator(gateway_style="classic")
    assert httpx.get(emu.file_url(SAMPLE), trust_env=False).status_code == 200
    assert httpx.get(emu.url + "/files/missing.jpg", trust_env=False).status_code == 404
    missing = httpx.get(emu.url + "/results/0123.png", trust_env=False)
    assert missing.status_code == 404 and "NoSuchKey" in missing.text
    assert httpx.get(emu.url + "/__emulator__/nothing", trust_env=False).status_code == 404
    assert httpx.get(emu.url + "/__emulator__/stats", trust_env=False).status_code == 200


# --- refuse_with ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "status", "message", "code"),
    [
        ("400 Invalid Param Location", 400, "Invalid Param Location", None),
        ("403 Api Market Subscription quota exhausted|B403MQ", 403,
         "Api Market Subscription quota exhausted", "B403MQ"),
        ("403 User Arrears", 403, "User Arrears", None),
        ("403 Unauthorized", 403, "Unauthorized", None),
        ("400 API Not Found", 400, "API Not Found", None),
        ("400 Invalid Domain", 400, "Invalid Domain", None),
    ],
)  # fmt: skip
def test_refuse_with_answers_every_scale_call(
    emulator: EmulatorFactory, spec: str, status: int, message: str, code: str | None
) -> None:
    emu = emulator(refuse_with=spec)
    assert_gateway_error(post(emu), status, message, code)
    assert_gateway_error(post(emu, headers={}), status, message, code)
    big = {**fields(emu), "pad": "x" * 2_000_000}  # read to its end, then refused
    assert_gateway_error(post(emu, data=big), status, message, code)
    stats = emu.stats()
    assert stats["calls"] == 3 and stats["billed"] == 0
    assert stats["by_status"] == {str(status): 3}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("403 User Arrears", GatewayError(403, "User Arrears")),
        (" 403 Quota Exhausted|B403MQ ", GatewayError(403, "Quota Exhausted", "B403MQ")),
        ("400 Invalid Url", GatewayError(400, "Invalid Url")),
    ],
)
def test_parse_refusal(text: str, expected: GatewayError) -> None:
    assert parse_refusal(text) == expected
    assert EmulatorConfig(refuse_with=text).refusal == expected


@pytest.mark.parametrize(
    "text", ["", "403", "User Arrears", "200 OK", "600 Odd", "403 |B403MQ", "403 Quota|", "x y"]
)
def test_parse_refusal_rejects_garbage(text: str) -> None:
    with pytest.raises(ValueError, match="refuse-with"):
        parse_refusal(text)


# --- billing -------------------------------------------------------------------------


def test_every_200_bills_failures_and_counts_them(emulator: EmulatorFactory) -> None:
    emu = emulator(qps=100)
    assert post(emu).json()["data"]["state"] == 1
    assert post(emu, fields(emu, "missing.jpg")).json()["data"]["state"] == -3
    assert post(emu, {"type": "clean"}).status_code == 400  # the service's 400: not billed
    assert post(emu, headers={}).status_code == 400  # the gateway's: not billed
    stats = emu.stats()
    assert stats["billing"] == "every-200"
    assert (stats["billed"], stats["billed_failures"]) == (2, 1)
    assert stats["billed_by_input"] == {emu.file_url(SAMPLE): 1, emu.file_url("missing.jpg"): 1}


def test_success_only_bills_state_1_alone(emulator: EmulatorFactory) -> None:
    emu = emulator(qps=100, billing="success-only")
    assert post(emu).json()["data"]["state"] == 1
    assert post(emu, fields(emu, "missing.jpg")).json()["data"]["state"] == -3
    stats = emu.stats()
    assert stats["billing"] == "success-only"
    assert (stats["billed"], stats["billed_failures"]) == (1, 0)


def test_quota_counts_billed_failures_under_every_200(emulator: EmulatorFactory) -> None:
    emu = emulator(quota=2, qps=100)
    assert post(emu, fields(emu, "missing.jpg")).json()["data"]["state"] == -3
    assert post(emu).status_code == 200
    assert_gateway_error(post(emu), 403, "Quota Exhausted", "B403MQ")
    assert emu.stats()["billed"] == 2


@pytest.mark.parametrize(("billing", "billed"), [("every-200", 1), ("success-only", 0)])
def test_a_failure_whose_client_hung_up_is_billed_by_every_200(
    emulator: EmulatorFactory, billing: str, billed: int
) -> None:
    emu = emulator(billing=billing, latency=(0.4, 0.4), faults={"state-1": 1.0})
    with pytest.raises(httpx.ReadTimeout):
        post(emu, timeout=0.1)
    wait_until(lambda: emu.stats()["in_flight"] == 0, timeout=3)
    assert emu.stats()["billed"] == emu.stats()["billed_failures"] == billed


@pytest.mark.parametrize("billing", ["every-200", "success-only"])
def test_a_success_whose_client_hung_up_is_billed(emulator: EmulatorFactory, billing: str) -> None:
    emu = emulator(billing=billing, latency=(0.4, 0.4), cheap=True)
    with pytest.raises(httpx.ReadTimeout):
        post(emu, timeout=0.1)
    wait_until(lambda: emu.stats()["billed"] == 1, timeout=3)
    assert emu.stats()["billed_failures"] == 0


# --- bodies: what the service reads, what the gateway lets through, how big ------------


@pytest.mark.parametrize(("accept", "refused"), [("form", "multipart"), ("multipart", "form")])
def test_a_body_the_service_does_not_read_has_no_parameters(
    emulator: EmulatorFactory, accept: str, refused: str
) -> None:
    emu = emulator(body_accept=accept)
    send = {"form": post, "multipart": upload}
    response = send[refused](emu)
    assert response.status_code == 400
    assert "X-Ca-Error-Code" not in response.headers
    assert response.json() == {
        "status": 400,
        "message": "type is required (clean or face)",  # type is checked first
        "data": None,
    }
    assert send[accept](emu).json()["data"]["state"] == 1
    assert emu.stats()["billed"] == 1


@pytest.mark.parametrize(("style", "code"), [("modern", None), ("classic", None)])
def test_a_gateway_without_multipart_refuses_it(
    emulator: EmulatorFactory, style: str, code: str | None
) -> None:
    emu = emulator(gateway_multipart=False, gateway_style=style)
    assert_gateway_error(upload(emu), 400, "Unsupported Multipart", code)
    assert post(emu).json()["data"]["state"] == 1
    stats = emu.stats()
    assert stats["billed"] == 1 and stats["by_status"] == {"400": 1, "200": 1}


def test_the_body_limit_is_a_switch(emulator: EmulatorFactory) -> None:
    small = emulator(body_limit=1000)
    padded = {**fields(small), "pad": "x" * 1000}
    assert_gateway_error(post(small, padded), 413, "Request body too Large", "I413RL")
    assert post(small).status_code == 200
    dedicated = emulator(body_limit=DEDICATED_BODY_BYTES, cheap=True)
    nine_mib = {**fields(dedicated), "pad": "x" * (9 * 1024 * 1024)}
    assert post(dedicated, nine_mib, timeout=30).json()["data"]["state"] == 1
    assert_gateway_error(
        post(emulator(cheap=True), nine_mib), 413, "Request body too Large", "I413RL"
    )


# --- circuit breaker -----------------------------------------------------------------


@pytest.mark.timing
def test_an_open_breaker_refuses_every_call_until_it_closes(emulator: EmulatorFactory) -> None:
    emu = emulator(faults={"breaker": 1.0}, breaker_seconds=0.6, qps=100)
    for _ in range(3):
        response = post(emu)
        assert_gateway_error(response, 503, "Backend Circuit Breaker Open", "D503CB")
        assert "Retry-After" not in response.headers
    time.sleep(0.7)  # the breaker's own 0.6 s timer is what is tested
    post(emu)  # closed again: this call draws the fault anew and reopens it
    stats = emu.stats()
    assert stats["faults"] == {"breaker": 2}
    assert stats["breaker_refused"] == 4
    assert stats["billed"] == 0 and stats["by_status"] == {"503": 4}


@pytest.mark.timing
def test_the_breaker_can_say_when_it_closes(emulator: EmulatorFactory) -> None:
    emu = emulator(faults={"breaker": 1.0}, breaker_seconds=2.5, breaker_retry_after=True)
    assert post(emu).headers["Retry-After"] == "3"
    time.sleep(0.6)  # the breaker's own timer counts down its Retry-After
    assert post(emu).headers["Retry-After"] == "2"


def breaker_second_seed(probability: float) -> int:
    """A seed whose first call draws no fault and whose second draws the breaker (each
    call draws its fault, then its latency, from the one RNG)."""
    for seed in range(1000):
        rng = random.Random(seed)
        first, _, second = rng.random(), rng.random(), rng.random()
        if first >= probability and second < probability:
            return seed
    raise AssertionError("no seed found")


def test_an_open_breaker_refuses_polls_too(emulator: EmulatorFactory) -> None:
    seed = breaker_second_seed(0.5)
    emu = emulator(faults={"breaker": 0.5}, seed=seed, replies="async", qps=100, cheap=True)
    task_id = post(emu).json()["data"]["task_id"]
    assert_gateway_error(post(emu), 503, "Backend Circuit Breaker Open", "D503CB")
    poll = httpx.get(f"{emu.endpoint}/{task_id}", headers=AUTH, timeout=10, trust_env=False)
    assert_gateway_error(poll, 503, "Backend Circuit Breaker Open", "D503CB")
    stats = emu.stats()
    assert stats["breaker_refused"] == 2 and stats["faults"] == {"breaker": 1}
    assert stats["polls"] == 1 and stats["billed"] == 1  # the task, when it was created


# --- reply shape ---------------------------------------------------------------------


def test_the_real_shape_is_the_default(emulator: EmulatorFactory) -> None:
    emu = emulator()
    body = post(emu, fields(emu, type="face")).json()
    data = body["data"]
    assert "message" not in body
    assert data["type"] == "face" and str(uuid.UUID(data["task_id"])) == data["task_id"]
    assert (data["image_width"], data["image_height"]) == (1280, 960)
    assert data["created_at"] <= data["processed_at"] <= data["completed_at"]
    assert "state_detail" not in data


def test_the_doc_shape_is_the_marketplace_documents(emulator: EmulatorFactory) -> None:
    emu = emulator(reply_shape="doc")
    body = post(emu, fields(emu, type="face")).json()
    data = body["data"]
    assert body["message"] == "success"
    assert data["type"] == 1 and len(data["task_id"]) == 32 and "-" not in data["task_id"]
    assert set(data) == {
        "state", "progress", "task_id", "image", "return_type", "type", "created_at",
        "completed_at",
    }  # fmt: skip
    failed = post(emu, fields(emu, "missing.jpg")).json()
    assert "download failed" in failed["message"] and "state_detail" not in failed["data"]


# --- result links --------------------------------------------------------------------


def link_expiry(url: str) -> float:
    """The unix time a signed link says it expires at."""
    query = {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}
    if "Expires" in query:
        assert query["OSSAccessKeyId"] and query["Signature"]
        return float(query["Expires"])
    signed_at = timegm(time.strptime(query["x-oss-date"], "%Y%m%dT%H%M%SZ"))
    assert query["x-oss-signature"]
    return float(signed_at + int(query["x-oss-expires"]))


@pytest.mark.parametrize("style", ["oss", "oss-v4"])
@pytest.mark.timing
def test_a_signed_link_expires_when_it_says(emulator: EmulatorFactory, style: str) -> None:
    emu = emulator(link_style=style, link_ttl=1.5)
    asked = time.time()
    url = post(emu).json()["data"]["image"]
    expires = link_expiry(url)
    assert math.floor(asked) + 2 <= expires <= math.floor(time.time()) + 2
    assert urlsplit(url).path.endswith(".jpg")
    # Just before and just after the second the link names: that moment is what is tested.
    time.sleep(max(expires - time.time() - 0.25, 0))
    assert httpx.get(url, trust_env=False).status_code == 200
    time.sleep(max(expires - time.time() + 0.05, 0))
    assert httpx.get(url, trust_env=False).status_code == 403


def test_links_default_to_oss_with_an_hour_and_ignore_their_query(
    emulator: EmulatorFactory,
) -> None:
    emu = emulator()
    url = post(emu).json()["data"]["image"]
    assert abs(link_expiry(url) - (time.time() + 3600)) < 2
    bare = url.partition("?")[0]
    assert httpx.get(bare + "?Expires=1&Signature=other", trust_env=False).status_code == 200
    assert httpx.get(bare, trust_env=False).status_code == 200


def test_an_expired_signed_link_says_so_in_its_url(emulator: EmulatorFactory) -> None:
    emu = emulator(faults={"expire": 1.0})
    url = post(emu).json()["data"]["image"]
    assert link_expiry(url) <= time.time()
    assert httpx.get(url, trust_env=False).status_code == 403


def test_plain_links_are_bare(emulator: EmulatorFactory) -> None:
    emu = emulator(link_style="plain")
    assert "?" not in post(emu).json()["data"]["image"]


# --- return type 3 -------------------------------------------------------------------


def test_return_type_3_answers_the_image_itself(emulator: EmulatorFactory) -> None:
    emu = emulator(return_type=3, qps=100)
    response = post(emu)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "image/jpeg"
    uuid.UUID(response.headers["X-Ca-Request-Id"])
    assert Image.open(io.BytesIO(response.content)).size == (1280, 960)
    failed = post(emu, fields(emu, "missing.jpg"))
    assert failed.json()["data"]["state"] == -3  # a failure is still JSON
    stats = emu.stats()
    assert stats["billed"] == 2 and stats["by_state"] == {"1": 1, "-3": 1}


# --- settings ------------------------------------------------------------------------


def test_every_switch_has_its_documented_default() -> None:
    config = EmulatorConfig()
    assert config.gateway_style == "modern" and config.refuse_with is None
    assert config.billing == "every-200" and config.replies == "sync"
    assert config.task_path and config.polls_count_qps
    assert config.body_accept == "both" and config.gateway_multipart
    assert config.body_limit == 8 * 1024 * 1024
    assert config.breaker_seconds == 90.0 and not config.breaker_retry_after
    assert config.reply_shape == "real" and config.link_style == "oss"


def test_the_command_line_sets_every_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[EmulatorConfig] = []

    def serve(config: EmulatorConfig, *, host: str, port: int) -> int:
        seen.append(config)
        return 0

    monkeypatch.setattr("zuotang_cli.emulator.serve_forever", serve)
    args = ["emulator", "--gateway-style", "classic", "--refuse-with", "403 User Arrears"]
    args += ["--billing", "success-only", "--replies", "async-unless-sync", "--no-task-path"]
    args += ["--polls-free", "--body-accept", "form", "--no-gateway-multipart"]
    args += ["--body-limit", "33554432", "--faults", "breaker=0.01", "--breaker-seconds", "5"]
    args += ["--breaker-retry-after", "--reply-shape", "doc", "--link-style", "oss-v4"]
    args += ["--return-type", "3"]
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 0
    (config,) = seen
    assert config.refusal == GatewayError(403, "User Arrears")
    assert (config.gateway_style, config.billing, config.replies) == (
        "classic",
        "success-only",
        "async-unless-sync",
    )
    assert not config.task_path and not config.polls_count_qps and not config.gateway_multipart
    assert (config.body_accept, config.body_limit, config.faults) == (
        "form",
        DEDICATED_BODY_BYTES,
        {"breaker": 0.01},
    )
    assert (config.breaker_seconds, config.breaker_retry_after) == (5.0, True)
    assert (config.reply_shape, config.link_style, config.return_type) == ("doc", "oss-v4", 3)


def test_a_bad_refusal_on_the_command_line_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["emulator", "--port", "0", "--refuse-with", "teapot"])
    assert exit_info.value.code == ExitStatus.USAGE
    assert "refuse-with" in capsys.readouterr().err
