"""The gateway in front of the emulated service: auth, flow control, quota, body limits,
backend errors and the service's own 400s — all over loopback against a real server."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from typing import Any

import httpx
import pytest

from tests.conftest import EmulatorFactory
from zuotang_cli.emulator import RunningEmulator
from zuotang_cli.protocol import rules

AUTH = {"Authorization": "APPCODE test-code"}
SAMPLE = "harbour-320x240.jpg"


def post(
    emu: RunningEmulator,
    data: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    **kwargs: Any,
) -> httpx.Response:
    return httpx.post(
        emu.endpoint,
        data=data if data is not None else {"type": "clean", "image_url": emu.file_url(SAMPLE)},
        headers=AUTH if headers is None else headers,
        timeout=10,
        trust_env=False,
        **kwargs,
    )


def assert_gateway_error(
    response: httpx.Response, status: int, message: str, code: str | None
) -> None:
    assert response.status_code == status
    assert response.content == b""
    assert response.headers["X-Ca-Error-Message"] == message
    assert response.headers.get("X-Ca-Error-Code") == code
    uuid.UUID(response.headers["X-Ca-Request-Id"])


def test_a_good_call_succeeds_with_a_request_id(emulator: EmulatorFactory) -> None:
    emu = emulator()
    response = post(emu)
    assert response.status_code == 200
    assert "X-Ca-Error-Code" not in response.headers
    uuid.UUID(response.headers["X-Ca-Request-Id"])
    body = response.json()
    assert body["status"] == 200 and "message" not in body
    assert body["data"]["state"] == 1


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "APPCODE"}, {"Authorization": "appcode x"}, {"Authorization": "x"}],
)
def test_missing_or_malformed_auth_is_a_gateway_400(
    emulator: EmulatorFactory, headers: dict[str, str]
) -> None:
    emu = emulator()
    assert_gateway_error(post(emu, headers=headers), 400, "Missing AppCode", "A400MA")
    stats = emu.stats()
    assert stats["arrivals"] == [] and stats["by_status"] == {"400": 1}


def test_unknown_appcode_is_a_gateway_401_and_known_ones_pass(emulator: EmulatorFactory) -> None:
    emu = emulator(appcodes=frozenset({"good"}))
    refused = post(emu, headers={"Authorization": "APPCODE bad"})
    assert_gateway_error(refused, 401, "Invalid AppCode `not exists`", "A401AC")
    assert post(emu, headers={"Authorization": "APPCODE good"}).status_code == 200


async def burst(emu: RunningEmulator, count: int, codes: list[str]) -> list[httpx.Response]:
    async with httpx.AsyncClient(timeout=10, trust_env=False) as client:
        calls = [
            client.post(
                emu.endpoint,
                data={"type": "clean", "image_url": emu.file_url(SAMPLE)},
                headers={"Authorization": f"APPCODE {codes[i % len(codes)]}"},
            )
            for i in range(count)
        ]
        return list(await asyncio.gather(*calls))


@pytest.mark.timing
def test_a_burst_is_cut_to_qps_with_429s(emulator: EmulatorFactory) -> None:
    emu = emulator(qps=2, cheap=True)
    responses = asyncio.run(burst(emu, 10, ["one"]))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 2 + [429] * 8
    for response in responses:
        if response.status_code == 429:
            assert_gateway_error(response, 429, "Throttled by USER Flow Control", "T429QL")
            assert response.headers["Retry-After"] == "1"
    stats = emu.stats()
    assert stats["throttled"] == 8
    assert len(stats["arrivals"]) == 10 and len(stats["accepted_arrivals"]) == 2
    assert stats["billed"] == 2
    assert stats["by_status"] == {"200": 2, "429": 8}


@pytest.mark.timing
def test_older_gateways_throttle_with_a_bare_403(emulator: EmulatorFactory) -> None:
    emu = emulator(qps=1, cheap=True, throttle_style="403")
    responses = asyncio.run(burst(emu, 3, ["one"]))
    refused = [r for r in responses if r.status_code != 200]
    assert len(refused) == 2
    for response in refused:
        assert_gateway_error(response, 403, "Throttled by USER Flow Control", None)
        assert "Retry-After" not in response.headers


@pytest.mark.timing
def test_flow_control_is_per_appcode(emulator: EmulatorFactory) -> None:
    emu = emulator(qps=1, cheap=True)
    responses = asyncio.run(burst(emu, 4, ["one", "two"]))
    assert sorted(r.status_code for r in responses) == [200, 200, 429, 429]


@pytest.mark.timing
def test_spaced_calls_are_all_accepted(emulator: EmulatorFactory) -> None:
    emu = emulator(qps=5, cheap=True)
    statuses = []
    for _ in range(6):  # 5 fit in one second at this spacing, never 6
        statuses.append(post(emu).status_code)
        time.sleep(0.21)  # the spacing on the wall clock is what is tested
    assert statuses == [200] * 6
    assert emu.stats()["throttled"] == 0


@pytest.mark.timing
def test_the_window_slides_and_refused_calls_do_not_count(emulator: EmulatorFactory) -> None:
    emu = emulator(qps=2, cheap=True)
    first = asyncio.run(burst(emu, 2, ["test-code"]))
    assert [r.status_code for r in first] == [200, 200]
    time.sleep(0.3)  # the window's own clock is what is tested: still inside it
    assert post(emu).status_code == 429
    time.sleep(0.8)  # the first two left the window; the refused call never entered it
    assert post(emu).status_code == 200
    stats = emu.stats()
    arrivals, accepted = stats["arrivals"], stats["accepted_arrivals"]
    assert len(arrivals) == 4 and accepted == [arrivals[0], arrivals[1], arrivals[3]]


def test_quota_counts_only_billed_calls(emulator: EmulatorFactory) -> None:
    emu = emulator(quota=2, qps=100, billing="success-only")
    missing = {"type": "clean", "image_url": emu.file_url("missing.jpg")}
    assert post(emu, data=missing).json()["data"]["state"] == -3  # not billed
    assert post(emu).status_code == 200
    assert post(emu).status_code == 200
    assert_gateway_error(post(emu), 403, "Quota Exhausted", "B403MQ")
    assert emu.stats()["billed"] == 2


def test_quota_is_never_overshot_by_concurrent_calls(emulator: EmulatorFactory) -> None:
    emu = emulator(quota=3, qps=100, cheap=True, latency=(0.2, 0.2))
    responses = asyncio.run(burst(emu, 8, ["one"]))
    assert sorted(r.status_code for r in responses) == [200] * 3 + [403] * 5
    assert emu.stats()["billed"] == 3


def test_a_body_over_8_mib_is_a_gateway_413(emulator: EmulatorFactory) -> None:
    emu = emulator()
    padding = "x" * (8 * 1024 * 1024)
    response = post(emu, data={"type": "clean", "image_url": emu.file_url(SAMPLE), "pad": padding})
    assert_gateway_error(response, 413, "Request body too Large", "I413RL")


def test_a_chunked_body_over_8_mib_is_a_gateway_413(emulator: EmulatorFactory) -> None:
    emu = emulator()

    def chunks() -> Any:
        yield b"type=clean&pad="
        for _ in range(9):
            yield b"x" * (1024 * 1024)

    response = httpx.post(
        emu.endpoint,
        content=chunks(),
        headers={**AUTH, "Content-Type": "application/x-www-form-urlencoded"},
        timeout=10,
        trust_env=False,
    )
    assert_gateway_error(response, 413, "Request body too Large", "I413RL")


def long_url(emu: RunningEmulator) -> str:
    url = emu.file_url(SAMPLE) + "?"
    return url + "q" * (rules.MAX_URL_LENGTH + 1 - len(url))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"image_url": "URL"}, "type is required"),
        ({"type": "", "image_url": "URL"}, "type is required"),
        ({"type": "sharp", "image_url": "URL"}, "type must be clean or face"),
        ({"type": "clean", "image_url": "URL", "scale_factor": "3"}, "scale_factor must be"),
        ({"type": "clean", "image_url": "URL", "scale_factor": "auto"}, "scale_factor must be"),
        ({"type": "clean"}, "image_url is required"),
        ({"type": "clean", "image_url": ""}, "image_url is required"),
        ({"type": "clean", "image_url": "ftp://example.com/a.jpg"}, "http\\(s\\) URL"),
        ({"type": "clean", "image_url": "harbour.jpg"}, "http\\(s\\) URL"),
        ({"type": "clean", "image_url": "LONG"}, "longer than 512"),
    ],
)
def test_bad_parameters_are_service_400s(
    emulator: EmulatorFactory, fields: dict[str, str], message: str
) -> None:
    emu = emulator()
    substitutes = {"URL": emu.file_url(SAMPLE), "LONG": long_url(emu)}
    data = {name: substitutes.get(value, value) for name, value in fields.items()}
    response = post(emu, data=data)
    assert response.status_code == 400
    assert "X-Ca-Error-Code" not in response.headers
    uuid.UUID(response.headers["X-Ca-Request-Id"])
    body = response.json()
    assert body["status"] == 400 and body["data"] is None
    assert re.search(message, body["message"])
    assert emu.stats()["billed"] == 0


def test_a_url_of_exactly_512_characters_is_accepted(emulator: EmulatorFactory) -> None:
    emu = emulator()
    url = long_url(emu)[:-1]
    assert len(url) == rules.MAX_URL_LENGTH
    assert post(emu, data={"type": "clean", "image_url": url}).json()["data"]["state"] == 1


@pytest.mark.parametrize(
    "content_type",
    [None, "application/json", "text/plain"],
)
def test_other_content_types_are_400(emulator: EmulatorFactory, content_type: str | None) -> None:
    emu = emulator()
    headers = dict(AUTH)
    if content_type:
        headers["Content-Type"] = content_type
    response = httpx.post(
        emu.endpoint,
        content=b'{"type": "clean"}',
        headers=headers,
        timeout=10,
        trust_env=False,
    )
    assert response.status_code == 400
    assert "Content-Type must be" in response.json()["message"]


def test_form_with_charset_is_accepted(emulator: EmulatorFactory) -> None:
    emu = emulator()
    body = httpx.QueryParams({"type": "face", "image_url": emu.file_url(SAMPLE)})
    response = httpx.post(
        emu.endpoint,
        content=str(body).encode(),
        headers={**AUTH, "Content-Type": "application/x-www-form-urlencoded; charset=UTF-8"},
        timeout=10,
        trust_env=False,
    )
    assert response.json()["data"]["state"] == 1


@pytest.mark.parametrize(
    ("kind", "status", "message", "code"),
    [
        ("500", 500, "Internal Error", "D500IE"),
        ("503", 503, "Service Unavailable", "D503BB"),
        ("504", 504, "Backend Service Timeout", "D504TO"),
        ("429", 429, "Throttled by USER Flow Control", "T429QL"),
    ],
)
def test_injected_gateway_errors(
    emulator: EmulatorFactory, kind: str, status: int, message: str, code: str
) -> None:
    emu = emulator(faults={kind: 1.0})
    assert_gateway_error(post(emu), status, message, code)
    stats = emu.stats()
    assert stats["faults"] == {kind: 1}
    assert stats["billed"] == 0 and stats["throttled"] == 0
    assert stats["by_status"] == {str(status): 1}


def test_an_injected_429_follows_the_throttle_style(emulator: EmulatorFactory) -> None:
    emu = emulator(faults={"429": 1.0}, throttle_style="403")
    assert_gateway_error(post(emu), 403, "Throttled by USER Flow Control", None)
