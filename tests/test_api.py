"""Reply classification (pure) and single calls over httpx.MockTransport."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from urllib.parse import parse_qs

import httpx
import pytest

from zuotang_cli.models import InputItem, InputKind
from zuotang_cli.protocol.api import (
    BREAKER_PAUSE,
    CallSpec,
    Reply,
    Verdict,
    call_once,
    classify,
    link_expiry,
    network_reply,
    poll_once,
)
from zuotang_cli.protocol.rules import Billing, Body
from zuotang_cli.status import ExitStatus


def service(status: int, state: int | None, *, http: int = 200, image: str = "") -> bytes:
    data = None if state is None else {"state": state, "task_id": "t1", "image": image}
    return json.dumps({"status": status, "message": "m", "data": data}).encode()


def gateway(code: str | None, message: str, **extra: str) -> httpx.Headers:
    headers = {"X-Ca-Request-Id": "req-1", "X-Ca-Error-Message": message, **extra}
    if code:
        headers["X-Ca-Error-Code"] = code
    return httpx.Headers(headers)


@pytest.mark.parametrize(
    ("state", "verdict", "error_class"),
    [
        (1, Verdict.SUCCESS, None),
        (-1, Verdict.RETRY, "state-1"),
        (-2, Verdict.RETRY, "state-2"),
        (-8, Verdict.RETRY, "state-8"),
        (-3, Verdict.FINAL, "state-3"),
        (-5, Verdict.FINAL, "state-5"),
        (-7, Verdict.FINAL, "state-7"),
        (0, Verdict.PENDING, "unfinished"),
        (2, Verdict.PENDING, "unfinished"),
        (3, Verdict.PENDING, "unfinished"),
        (4, Verdict.PENDING, "unfinished"),
        (-99, Verdict.FINAL, "bad-reply"),
    ],
)
def test_states(state: int, verdict: Verdict, error_class: str | None) -> None:
    reply = classify(200, httpx.Headers(), service(200, state, image="http://x/r.png"))
    assert reply.verdict is verdict
    assert reply.error_class == error_class
    assert reply.state == state
    assert reply.task_id == "t1"


def test_success_needs_status_200_and_an_image() -> None:
    assert classify(200, httpx.Headers(), service(200, 1)).verdict is Verdict.FINAL
    assert classify(200, httpx.Headers(), service(500, 1, image="x")).verdict is Verdict.RETRY


@pytest.mark.parametrize(
    ("http", "code", "message", "verdict", "error_class"),
    [
        (401, "A401AC", "Invalid AppCode `not exists`", Verdict.HALT, "auth"),
        (400, "A400AC", "Invalid AppCode", Verdict.HALT, "auth"),
        (400, "A400MA", "Missing AppCode", Verdict.HALT, "auth"),
        (403, "B403MQ", "Quota Exhausted", Verdict.HALT, "quota-exhausted"),
        (403, None, "Api Market Subscription quota exhausted", Verdict.HALT, "quota-exhausted"),
        (403, "B403ME", "Quota Expired", Verdict.HALT, "quota-expired"),
        (403, None, "User Arrears", Verdict.HALT, "arrears"),
        (403, "I403AA", "Unauthorized", Verdict.HALT, "auth"),
        (403, None, "Throttled by USER Flow Control", Verdict.THROTTLE, "throttled"),
        (429, "T429QL", "Throttled", Verdict.THROTTLE, "throttled"),
        (500, None, "Internal Error", Verdict.RETRY, "server-error"),
        (503, None, "Service Unavailable", Verdict.RETRY, "server-error"),
        (504, "D504TO", "Backend timeout", Verdict.RETRY, "server-error"),
        (413, "I413RL", "Request body too Large", Verdict.FINAL, "too-large"),
        (400, None, "Bad Request", Verdict.FINAL, "http-400"),
    ],
)
def test_gateway_errors(
    http: int, code: str | None, message: str, verdict: Verdict, error_class: str
) -> None:
    reply = classify(http, gateway(code, message), b"")
    assert (reply.verdict, reply.error_class) == (verdict, error_class)
    assert reply.request_id == "req-1"
    assert reply.message == message


def test_404_halts_as_a_usage_error() -> None:
    reply = classify(404, httpx.Headers(), b"<html>not found</html>")
    assert reply.verdict is Verdict.HALT
    assert reply.halt_status is ExitStatus.USAGE


def test_retry_after_is_read() -> None:
    reply = classify(429, gateway("T429QL", "Throttled", **{"Retry-After": "3"}), b"")
    assert reply.retry_after == 3.0
    assert classify(429, gateway(None, "x", **{"Retry-After": "soon"}), b"").retry_after is None


@pytest.mark.parametrize(
    "body", [b"<html>oops</html>", b"[1, 2]", b'{"status": "x"}', b"\xff\xfe", b""]
)
def test_hostile_200_bodies_are_final_bad_replies(body: bytes) -> None:
    reply = classify(200, httpx.Headers(), body)
    assert reply.verdict is Verdict.FINAL
    assert reply.error_class == "bad-reply"


def test_service_json_errors_use_their_status() -> None:
    assert classify(400, httpx.Headers(), service(400, None)).error_class == "http-400"
    assert classify(200, httpx.Headers(), service(401, None)).verdict is Verdict.HALT
    assert classify(200, httpx.Headers(), service(429, None)).verdict is Verdict.THROTTLE


SPEC = CallSpec("https://api.test/tasks/visual/scale", "SECRET-CODE", "face", 2)
URL_ITEM = InputItem(0, "http://img.test/a.jpg", InputKind.URL, url="http://img.test/a.jpg")


def run_call(handler: httpx.MockTransport, item: InputItem = URL_ITEM) -> Reply:
    async def go() -> Reply:
        async with httpx.AsyncClient(transport=handler) as client:
            return await call_once(client, SPEC, item)

    return asyncio.run(go())


def test_url_call_is_form_encoded_with_appcode_header() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=service(200, 1, image="http://r/x.png"))

    reply = run_call(httpx.MockTransport(handler))
    assert reply.verdict is Verdict.SUCCESS
    request = seen[0]
    assert request.headers["Authorization"] == "APPCODE SECRET-CODE"
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded; charset=UTF-8"
    form = parse_qs(request.content.decode())
    assert form == {
        "image_url": ["http://img.test/a.jpg"],
        "type": ["face"],
        "sync": ["1"],
        "scale_factor": ["2"],
    }


def test_file_call_is_multipart(tmp_path: Path) -> None:
    image = tmp_path / "p.png"
    image.write_bytes(b"\x89PNG fake")
    item = InputItem(0, str(image), InputKind.FILE, path=image)
    seen: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.read())
        assert request.headers["Content-Type"].startswith("multipart/form-data")
        return httpx.Response(200, content=service(200, -7))

    reply = run_call(httpx.MockTransport(handler), item)
    assert reply.error_class == "state-7"
    assert b'name="image_file"; filename="p.png"' in seen[0]
    assert b"\x89PNG fake" in seen[0]


def test_network_errors_are_retryable_and_name_no_secret() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    reply = run_call(httpx.MockTransport(handler))
    assert reply.verdict is Verdict.RETRY
    assert reply.error_class == "network"
    assert "SECRET" not in repr(reply) and "SECRET" not in repr(SPEC)


def test_huge_reply_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("zuotang_cli.protocol.api.MAX_REPLY_BYTES", 1000)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"{" + b" " * 5000 + b"}")

    reply = run_call(httpx.MockTransport(handler))
    assert reply.error_class == "bad-reply"
    assert "larger than" in reply.message


# -- the real contract (docs/api-contract.md), row by row --------------------------------


@pytest.mark.parametrize(
    ("http", "code", "message", "error_class", "halt_status"),
    [
        # the classic gateway: a wrong AppCode is a 400 with only a message header
        (400, None, "Invalid AppCode `not exists`", "auth", ExitStatus.HALTED),
        (400, None, "Invalid AppCode", "auth", ExitStatus.HALTED),
        (400, None, "Invalid Url", "endpoint-refused", ExitStatus.USAGE),
        (400, None, "Invalid Param Location", "endpoint-refused", ExitStatus.USAGE),
        (400, None, "API Not Found", "endpoint-refused", ExitStatus.USAGE),
        (400, None, "Invalid Domain", "endpoint-refused", ExitStatus.USAGE),
        (403, None, "Unauthorized", "auth", ExitStatus.HALTED),
        (403, None, "Quota Exhausted", "quota-exhausted", ExitStatus.HALTED),
        (403, "B403MQ", "Api Market Subscription quota exhausted", "quota-exhausted", 3),
    ],
)
def test_account_and_endpoint_refusals_halt_without_a_code(
    http: int, code: str | None, message: str, error_class: str, halt_status: int
) -> None:
    reply = classify(http, gateway(code, message), b"")
    assert reply.verdict is Verdict.HALT
    assert (reply.error_class, reply.halt_status) == (error_class, halt_status)
    assert not reply.billed(Billing.EVERY_200)


@pytest.mark.parametrize("scope", ["USER", "APP", "API", "DOMAIN", "GROUP"])
def test_classic_flow_control_throttles(scope: str) -> None:
    reply = classify(403, gateway(None, f"Throttled by {scope} Flow Control"), b"")
    assert (reply.verdict, reply.error_class) == (Verdict.THROTTLE, "throttled")


@pytest.mark.parametrize("code", ["T429ID", "T429IN", "T429GR", "T429PA", "T429PR", "T429SR"])
def test_newer_flow_control_codes_throttle(code: str) -> None:
    assert classify(429, gateway(code, "Throttled"), b"").verdict is Verdict.THROTTLE


def test_unsupported_multipart_is_final_and_named() -> None:
    reply = classify(400, gateway(None, "Unsupported Multipart"), b"")
    assert (reply.verdict, reply.error_class) == (Verdict.FINAL, "unsupported-multipart")


def test_the_circuit_breaker_pauses_90_s_unless_the_reply_says() -> None:
    reply = classify(503, gateway("D503CB", "Service Unavailable"), b"")
    assert (reply.verdict, reply.error_class, reply.retry_after) == (
        Verdict.THROTTLE,
        "circuit-open",
        BREAKER_PAUSE,
    )
    assert BREAKER_PAUSE == 90.0
    told = classify(503, gateway("D503CB", "x", **{"Retry-After": "7"}), b"")
    assert told.retry_after == 7.0


@pytest.mark.parametrize("message", ["Internal Error", "Failed To Invoke Backend Service"])
def test_backend_trouble_is_transient(message: str) -> None:
    assert classify(500, gateway(None, message), b"").verdict is Verdict.RETRY


def test_a_service_400_about_a_missing_field_means_the_body_was_not_read() -> None:
    body = json.dumps({"status": 400, "message": "image_url is required"}).encode()
    assert classify(400, httpx.Headers(), body).error_class == "params-not-seen"
    # the same words from the gateway (with a code) are not about our body encoding
    coded = classify(400, gateway("I400PL", "image_url is required"), body)
    assert coded.error_class == "http-400"
    other = json.dumps({"status": 400, "message": "type must be clean or face"}).encode()
    assert classify(400, httpx.Headers(), other).error_class == "http-400"


@pytest.mark.parametrize("value", [1, "1", 1.0, "1.0"])
def test_state_comes_as_number_or_string(value: object) -> None:
    body = {"status": "200", "data": {"state": value, "image": "http://r/x.png"}}
    reply = classify(200, httpx.Headers(), json.dumps(body).encode())
    assert (reply.verdict, reply.state) == (Verdict.SUCCESS, 1)


def test_real_reply_fields_are_read() -> None:
    data = {
        "state": 1,
        "task_id": "5c8e7a5e-0b7f-4b8e-9a55-2f1f0f7e6a11",
        "type": "clean",
        "image": "http://r/x.png",
        "image_width": 640,
        "image_height": 480,
    }
    reply = classify(200, httpx.Headers(), json.dumps({"status": 200, "data": data}).encode())
    assert reply.verdict is Verdict.SUCCESS
    assert reply.message == ""  # real successes carry no message
    assert (reply.image_width, reply.image_height) == (640, 480)
    failed = {"status": 200, "data": {"state": -7, "state_detail": "image resolution too big"}}
    reply = classify(200, httpx.Headers(), json.dumps(failed).encode())
    assert (reply.error_class, reply.message) == ("state-7", "image resolution too big")


def test_a_task_id_without_a_state_is_pending() -> None:
    body = {"status": 200, "message": "success", "data": {"task_id": "t-1"}}
    reply = classify(200, httpx.Headers(), json.dumps(body).encode())
    assert (reply.verdict, reply.task_id) == (Verdict.PENDING, "t-1")
    # an unfinished state with nothing to fetch it by is final
    lost = {"status": 200, "data": {"state": 4}}
    assert classify(200, httpx.Headers(), json.dumps(lost).encode()).verdict is Verdict.FINAL


def test_an_image_reply_is_the_result_itself() -> None:
    reply = classify(200, httpx.Headers({"Content-Type": "image/png"}), b"\x89PNG...")
    assert (reply.verdict, reply.result, reply.return_type) == (
        Verdict.SUCCESS,
        b"\x89PNG...",
        3,
    )


@pytest.mark.parametrize(
    ("http", "body", "every_200", "success_only"),
    [
        (200, service(200, 1, image="http://r/x.png"), True, True),
        (200, service(200, -8), True, False),
        (200, service(200, -7), True, False),
        (200, b"<html>garbage</html>", True, False),
        (400, service(400, None), False, False),
        (500, b"", False, False),
    ],
)
def test_billing_rules(http: int, body: bytes, every_200: bool, success_only: bool) -> None:
    reply = classify(http, httpx.Headers(), body)
    assert reply.billed(Billing.EVERY_200) is every_200
    assert reply.billed(Billing.SUCCESS_ONLY) is success_only


def test_a_link_says_when_it_expires() -> None:
    assert link_expiry("https://b.oss-cn-hz.aliyuncs.com/r.png?Expires=1700000000&S=x") == (
        1700000000.0
    )
    v4 = "https://b.oss-cn-hz.aliyuncs.com/r.png?x-oss-date=20240101T000000Z&x-oss-expires=3600"
    assert link_expiry(v4) == 1704067200.0 + 3600
    assert link_expiry("https://cdn.test/r.png") is None
    assert link_expiry("https://cdn.test/r.png?x-oss-date=garbage&x-oss-expires=10") is None


def test_a_timeout_after_sending_may_have_been_paid() -> None:
    request = httpx.Request("POST", "https://api.test/")
    timeout = network_reply(httpx.ReadTimeout("slow", request=request), sent=True)
    assert (timeout.error_class, timeout.lost_after_sending) == ("timeout", True)
    refused = network_reply(httpx.ConnectError("refused", request=request), sent=True)
    assert not refused.lost_after_sending
    assert not network_reply(httpx.ReadTimeout("slow", request=request)).lost_after_sending


def test_multipart_body_for_urls_when_asked() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=service(200, 1, image="http://r/x.png"))

    async def go() -> Reply:
        spec = CallSpec(SPEC.endpoint, "SECRET-CODE", "clean", None, Body.MULTIPART)
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            return await call_once(client, spec, URL_ITEM)

    assert asyncio.run(go()).verdict is Verdict.SUCCESS
    content_type = seen[0].headers["Content-Type"]
    assert content_type.startswith("multipart/form-data; boundary=")
    body = seen[0].read()
    assert b'name="image_url"' in body and b"http://img.test/a.jpg" in body
    assert b'name="sync"' in body


def test_a_task_is_fetched_with_the_same_auth() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=service(200, 1, image="http://r/x.png"))

    async def go() -> Reply:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            return await poll_once(client, SPEC, "a b/c", lambda: None)

    assert asyncio.run(go()).verdict is Verdict.SUCCESS
    assert seen[0].method == "GET"
    assert str(seen[0].url) == "https://api.test/tasks/visual/scale/a%20b%2Fc"
    assert seen[0].headers["Authorization"] == "APPCODE SECRET-CODE"
