"""Injected faults: resets, slow replies, failing states, spoiled downloads, seeding."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.conftest import EmulatorFactory
from tests.helpers import wait_until
from zuotang_cli.emulator import RunningEmulator
from zuotang_cli.protocol import rules

AUTH = {"Authorization": "APPCODE test-code"}


def post(emu: RunningEmulator, timeout: float = 10) -> httpx.Response:
    return httpx.post(
        emu.endpoint,
        data={"type": "clean", "image_url": emu.file_url("harbour-320x240.jpg")},
        headers=AUTH,
        timeout=timeout,
        trust_env=False,
    )


def get(url: str) -> httpx.Response:
    return httpx.get(url, timeout=10, trust_env=False)


def test_reset_drops_the_connection_mid_reply(emulator: EmulatorFactory) -> None:
    emu = emulator(faults={"reset": 1.0})
    with pytest.raises(httpx.TransportError):
        post(emu)
    stats = emu.stats()
    assert stats["faults"] == {"reset": 1}
    assert stats["billed"] == 0 and stats["by_status"] == {}


@pytest.mark.timing
def test_slow_ends_in_a_gateway_504(emulator: EmulatorFactory) -> None:
    emu = emulator(faults={"slow": 1.0}, slow_seconds=0.3)
    started = time.monotonic()
    response = post(emu)
    assert time.monotonic() - started >= 0.3
    assert response.status_code == 504
    assert response.headers["X-Ca-Error-Code"] == "D504TO"
    assert response.content == b""
    assert emu.stats()["billed"] == 0


@pytest.mark.timing
def test_a_client_that_gives_up_on_slow_frees_the_call(emulator: EmulatorFactory) -> None:
    emu = emulator(faults={"slow": 1.0})  # 120 s
    with pytest.raises(httpx.ReadTimeout):
        post(emu, timeout=0.3)
    wait_until(lambda: emu.stats()["in_flight"] == 0, timeout=3)
    assert emu.stats()["max_in_flight"] == 1


def test_stopping_answers_calls_that_are_still_waiting(emulator: EmulatorFactory) -> None:
    emu = emulator(faults={"slow": 1.0})
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        post(emu, timeout=0.2)
    emu.stop()
    assert time.monotonic() - started < 3
    assert emu.stats()["faults"] == {"slow": 1}  # still readable once stopped
    with pytest.raises(httpx.ConnectError):
        post(emu)


INJECTED_STATES = sorted(s for s in rules.STATE_MEANINGS if s != rules.STATE_DONE)


@pytest.mark.parametrize("state", INJECTED_STATES)
def test_injected_states_come_in_a_200_and_are_billed_as_one(
    emulator: EmulatorFactory, state: int
) -> None:
    emu = emulator(faults={f"state{state}": 1.0})  # billing="every-200", reply_shape="real"
    response = post(emu)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == 200 and "message" not in body
    assert body["data"]["state"] == state
    assert body["data"]["state_detail"] == rules.state_meaning(state)
    assert body["data"]["progress"] == 0 and "image" not in body["data"]
    stats = emu.stats()
    assert stats["billed"] == stats["billed_failures"] == 1
    assert stats["faults"] == {f"state{state}": 1}
    assert stats["by_state"] == {str(state): 1}


@pytest.mark.parametrize("state", INJECTED_STATES)
def test_injected_states_are_not_billed_under_success_only(
    emulator: EmulatorFactory, state: int
) -> None:
    emu = emulator(faults={f"state{state}": 1.0}, billing="success-only", reply_shape="doc")
    body = post(emu).json()
    assert body["message"] == rules.state_meaning(state)
    assert body["data"]["state"] == state
    assert body["data"]["progress"] == 0 and body["data"]["image"] == ""
    stats = emu.stats()
    assert stats["billed"] == stats["billed_failures"] == 0
    assert stats["billing"] == "success-only"


def test_truncate_spoils_only_the_first_download(emulator: EmulatorFactory) -> None:
    emu = emulator(faults={"truncate": 1.0})
    data = post(emu).json()["data"]
    assert data["state"] == 1
    with pytest.raises(httpx.TransportError):
        get(data["image"])
    second = get(data["image"])
    assert second.status_code == 200
    assert len(second.content) == int(second.headers["Content-Length"]) > 1000
    stats = emu.stats()
    assert stats["billed"] == 1 and stats["faults"] == {"truncate": 1}
    assert (stats["downloads"], stats["download_attempts"]) == (1, 2)


def test_truncate_is_seen_by_a_streaming_reader(emulator: EmulatorFactory) -> None:
    emu = emulator(faults={"truncate": 1.0})
    url = post(emu).json()["data"]["image"]
    received = 0
    with (
        httpx.Client(trust_env=False) as client,
        client.stream("GET", url) as response,
        pytest.raises(httpx.RemoteProtocolError),
    ):
        declared = int(response.headers["Content-Length"])
        for chunk in response.iter_raw():
            received += len(chunk)
    assert 0 < received < declared


def test_expire_gives_a_dead_link_but_is_billed(emulator: EmulatorFactory) -> None:
    emu = emulator(faults={"expire": 1.0})
    data = post(emu).json()["data"]
    assert data["state"] == 1
    response = get(data["image"])
    assert response.status_code == 403
    assert "<Code>AccessDenied</Code>" in response.text
    assert "Request has expired" in response.text
    assert emu.stats()["billed"] == 1


def story(emu: RunningEmulator, calls: int) -> list[tuple[int, int | None]]:
    outcomes = []
    for _ in range(calls):
        response = post(emu)
        state = response.json()["data"]["state"] if response.status_code == 200 else None
        outcomes.append((response.status_code, state))
    return outcomes


def test_a_seed_replays_the_same_faults(emulator: EmulatorFactory) -> None:
    config: dict[str, Any] = {
        "faults": {"500": 0.3, "state-2": 0.2},
        "qps": 1000,
        "cheap": True,
        "latency": (0.0, 0.01),
        "seed": 42,
    }
    first = story(emulator(**config), 30)
    again = story(emulator(**config), 30)
    assert first == again
    assert {outcome for outcome in first} == {(200, 1), (500, None), (200, -2)}


def test_a_403_fault_is_the_older_throttle_whatever_the_throttle_style(
    emulator: EmulatorFactory,
) -> None:
    emu = emulator(faults={"403": 1.0})  # throttle_style 429: flow control would say 429
    response = post(emu)
    assert response.status_code == 403
    assert response.headers["X-Ca-Error-Message"] == "Throttled by USER Flow Control"
    assert "X-Ca-Error-Code" not in response.headers and "Retry-After" not in response.headers
    stats = emu.stats()
    assert stats["faults"] == {"403": 1} and stats["billed"] == 0


def test_an_async_fault_answers_a_task_id_though_sync_was_asked(
    emulator: EmulatorFactory,
) -> None:
    emu = emulator(faults={"async": 1.0}, latency=(0.2, 0.2), qps=100)
    response = httpx.post(
        emu.endpoint,
        data={"type": "clean", "sync": "1", "image_url": emu.file_url("harbour-320x240.jpg")},
        headers=AUTH,
        timeout=10,
        trust_env=False,
    )
    data = response.json()["data"]
    assert response.status_code == 200 and "state" not in data and data["task_id"]
    assert emu.stats()["billed"] == 1  # every HTTP 200 is billed, a task's creation too
    deadline = time.monotonic() + 5
    while True:
        polled = httpx.get(f"{emu.endpoint}/{data['task_id']}", headers=AUTH, trust_env=False)
        if polled.json()["data"].get("state") == rules.STATE_DONE:
            break
        assert time.monotonic() < deadline, polled.json()
        time.sleep(0.05)
    assert get(polled.json()["data"]["image"]).status_code == 200
    stats = emu.stats()
    assert stats["faults"] == {"async": 1} and stats["billed"] == 1 and stats["polls"] >= 1


def test_a_fault_cap_injects_a_kind_at_most_that_often(emulator: EmulatorFactory) -> None:
    emu = emulator(faults={"breaker": 1.0}, fault_caps={"breaker": 1}, breaker_seconds=0.0, qps=100)
    assert post(emu).headers["X-Ca-Error-Code"] == "D503CB"
    assert [post(emu).status_code for _ in range(3)] == [200, 200, 200]
    stats = emu.stats()
    assert stats["faults"] == {"breaker": 1} and stats["breaker_refused"] == 1
