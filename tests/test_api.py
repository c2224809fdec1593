"""Reply classification (pure) and single calls over httpx.MockTransport."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from urllib.parse import parse_qs

import httpx
import pytest

from zuotang_cli.api import CallSpec, Reply, Verdict, call_once, classify
from zuotang_cli.models import InputItem, InputKind
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
        (0, Verdict.FINAL, "unfinished"),
        (2, Verdict.FINAL, "unfinished"),
        (3, Verdict.FINAL, "unfinished"),
        (4, Verdict.FINAL, "unfinished"),
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
        (500, None, "Internal Error", Verdict.RETRY, "server-500"),
        (503, None, "Service Unavailable", Verdict.RETRY, "server-503"),
        (504, "D504TO", "Backend timeout", Verdict.RETRY, "server-504"),
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
    assert form == {"image_url": ["http://img.test/a.jpg"], "type": ["face"], "scale_factor": ["2"]}


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
    monkeypatch.setattr("zuotang_cli.api.MAX_REPLY_BYTES", 1000)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"{" + b" " * 5000 + b"}")

    reply = run_call(httpx.MockTransport(handler))
    assert reply.error_class == "bad-reply"
    assert "larger than" in reply.message
