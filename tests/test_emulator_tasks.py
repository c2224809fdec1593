"""The asynchronous service: task ids instead of results, ``sync=1``, and polling
``GET {SCALE_PATH}/{task_id}`` through the gateway — over loopback."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest

from tests.conftest import EmulatorFactory
from zuotang_cli.emulator import RunningEmulator

AUTH = {"Authorization": "APPCODE test-code"}
SAMPLE = "harbour-320x240.jpg"


def create(emu: RunningEmulator, name: str = SAMPLE, **extra: str) -> httpx.Response:
    data = {"type": "clean", "image_url": emu.file_url(name), **extra}
    return httpx.post(emu.endpoint, data=data, headers=AUTH, timeout=10, trust_env=False)


def poll(
    emu: RunningEmulator, task_id: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    return httpx.get(
        f"{emu.endpoint}/{task_id}",
        headers=AUTH if headers is None else headers,
        timeout=10,
        trust_env=False,
    )


def task_id_of(response: httpx.Response) -> str:
    assert response.status_code == 200
    body = response.json()
    assert body == {"status": 200, "data": {"task_id": body["data"]["task_id"]}}
    task_id: str = body["data"]["task_id"]
    assert str(uuid.UUID(task_id)) == task_id
    return task_id


def finished(emu: RunningEmulator, task_id: str, within: float = 5.0) -> dict[str, Any]:
    """Poll until the task is no longer processing (the emulator must allow the QPS)."""
    deadline = time.monotonic() + within
    while True:
        body: dict[str, Any] = poll(emu, task_id).json()
        if body["data"]["state"] != 4:
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.05)


def test_without_sync_the_vendor_backend_answers_a_task_id(emulator: EmulatorFactory) -> None:
    emu = emulator(replies="async-unless-sync", latency=(0.5, 0.5), qps=100)
    task_id = task_id_of(create(emu))
    running = poll(emu, task_id)
    assert running.status_code == 200 and "X-Ca-Error-Code" not in running.headers
    data = running.json()["data"]
    assert data["task_id"] == task_id and data["state"] == 4 and 0 <= data["progress"] < 100
    done = finished(emu, task_id)
    assert set(done) == {"status", "data"}
    assert done["data"]["state"] == 1 and done["data"]["task_id"] == task_id
    assert done["data"]["image_width"] == 1280
    assert httpx.get(done["data"]["image"], trust_env=False).status_code == 200
    stats = emu.stats()
    assert stats["billed"] == 1  # the task-id reply is an HTTP 200 (every-200)
    assert stats["polls"] >= 2 and stats["sync_requested"] == 0
    assert stats["by_state"] == {"1": 1} and stats["calls"] == 1


def test_with_sync_1_the_vendor_backend_answers_the_result(emulator: EmulatorFactory) -> None:
    emu = emulator(replies="async-unless-sync")
    body = create(emu, sync="1").json()
    assert body["data"]["state"] == 1 and body["data"]["image"]
    stats = emu.stats()
    assert stats["sync_requested"] == 1 and stats["billed"] == 1 and stats["polls"] == 0


def test_a_listing_that_drops_sync_always_answers_a_task_id(emulator: EmulatorFactory) -> None:
    emu = emulator(replies="async", qps=100)
    task_id = task_id_of(create(emu, sync="1"))
    assert finished(emu, task_id)["data"]["state"] == 1
    assert emu.stats()["sync_requested"] == 1


def test_the_async_fault_answers_some_sync_calls_with_a_task_id(
    emulator: EmulatorFactory,
) -> None:
    emu = emulator(faults={"async": 0.5}, seed=3, qps=100)
    bodies = [create(emu, sync="1").json() for _ in range(12)]
    tasks = [body["data"]["task_id"] for body in bodies if "state" not in body["data"]]
    assert 0 < len(tasks) < len(bodies)  # some answered with the result, some with a task
    assert all(finished(emu, task_id)["data"]["state"] == 1 for task_id in tasks)
    stats = emu.stats()
    assert stats["faults"] == {"async": len(tasks)}
    assert stats["billed"] == len(bodies)  # a task-id reply is an HTTP 200 (every-200)


def test_sync_replies_count_sync_1_too(emulator: EmulatorFactory) -> None:
    emu = emulator()
    assert create(emu, sync="1").json()["data"]["state"] == 1
    assert create(emu, sync="0").json()["data"]["state"] == 1
    assert emu.stats()["sync_requested"] == 1


def test_a_failed_task_reads_like_a_failed_sync_reply(emulator: EmulatorFactory) -> None:
    emu = emulator(replies="async", qps=100)
    task_id = task_id_of(create(emu, "missing.jpg"))
    body = finished(emu, task_id)
    assert "message" not in body
    assert body["data"]["state"] == -3 and "download failed" in body["data"]["state_detail"]
    stats = emu.stats()
    assert stats["billed"] == 1 and stats["billed_failures"] == 1
    assert stats["billed_by_input"] == {emu.file_url("missing.jpg"): 1}


def test_under_success_only_a_task_is_billed_when_it_succeeds(emulator: EmulatorFactory) -> None:
    emu = emulator(replies="async", billing="success-only", quota=1, qps=100)
    failed = task_id_of(create(emu, "missing.jpg"))
    assert finished(emu, failed)["data"]["state"] == -3
    good = task_id_of(create(emu))
    assert emu.stats()["billed"] == 0  # not yet: the task-id reply is not billed
    assert finished(emu, good)["data"]["state"] == 1
    assert create(emu).status_code == 403  # the quota of one is used
    stats = emu.stats()
    assert stats["billed"] == 1 and stats["billed_failures"] == 0


def test_polls_are_not_billed_and_need_the_appcode(emulator: EmulatorFactory) -> None:
    emu = emulator(replies="async", appcodes=frozenset({"test-code"}), qps=100)
    task_id = task_id_of(create(emu))
    missing = poll(emu, task_id, headers={})
    assert missing.status_code == 400 and missing.headers["X-Ca-Error-Code"] == "A400MA"
    wrong = poll(emu, task_id, headers={"Authorization": "APPCODE other"})
    assert wrong.status_code == 401 and wrong.headers["X-Ca-Error-Code"] == "A401AC"
    finished(emu, task_id)
    stats = emu.stats()
    assert stats["billed"] == 1 and stats["polls"] >= 3


def test_tasks_are_shared_by_every_client(emulator: EmulatorFactory) -> None:
    emu = emulator(replies="async", qps=100)
    task_id = task_id_of(create(emu))
    with httpx.Client(trust_env=False, headers={"Authorization": "APPCODE another"}) as other:
        deadline = time.monotonic() + 5
        while (data := other.get(f"{emu.endpoint}/{task_id}").json()["data"])["state"] == 4:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    assert data["state"] == 1


def test_an_unknown_task_is_the_services_404(emulator: EmulatorFactory) -> None:
    emu = emulator()
    response = poll(emu, str(uuid.uuid4()))
    assert response.status_code == 404
    assert "X-Ca-Error-Code" not in response.headers
    uuid.UUID(response.headers["X-Ca-Request-Id"])
    assert response.json() == {"status": 404, "message": "task not found", "data": None}


@pytest.mark.timing
def test_a_task_lives_as_long_as_its_result_link(emulator: EmulatorFactory) -> None:
    emu = emulator(replies="async", link_ttl=0.4, link_style="plain", qps=100)
    task_id = task_id_of(create(emu))
    image = finished(emu, task_id)["data"]["image"]
    time.sleep(0.5)  # past the link's own 0.4 s: the task goes with it
    assert poll(emu, task_id).status_code == 404
    assert httpx.get(image, trust_env=False).status_code == 403


@pytest.mark.timing
def test_polls_count_against_the_qps_window(emulator: EmulatorFactory) -> None:
    emu = emulator(replies="async", qps=2, cheap=True)
    task_id = task_id_of(create(emu))
    statuses = [poll(emu, task_id).status_code for _ in range(2)]
    assert statuses == [200, 429]
    stats = emu.stats()
    assert stats["throttled"] == 1 and stats["polls"] == 2
    assert len(stats["arrivals"]) == 3 and len(stats["accepted_arrivals"]) == 2


@pytest.mark.timing
def test_free_polls_take_no_place_in_the_window(emulator: EmulatorFactory) -> None:
    emu = emulator(replies="async", qps=1, cheap=True, polls_count_qps=False)
    task_id = task_id_of(create(emu))
    assert [poll(emu, task_id).status_code for _ in range(5)] == [200] * 5
    stats = emu.stats()
    assert stats["throttled"] == 0 and stats["polls"] == 5 and len(stats["arrivals"]) == 1


@pytest.mark.parametrize(
    ("style", "status", "message"),
    [("modern", 404, "API Not Found"), ("classic", 400, "Invalid Url")],
)
def test_without_a_task_path_a_poll_is_a_wrong_path(
    emulator: EmulatorFactory, style: str, status: int, message: str
) -> None:
    emu = emulator(replies="async", task_path=False, gateway_style=style)
    response = poll(emu, task_id_of(create(emu)))
    assert response.status_code == status and response.content == b""
    assert response.headers["X-Ca-Error-Message"] == message
    assert "X-Ca-Error-Code" not in response.headers
    assert emu.stats()["polls"] == 0


def test_a_task_of_return_type_3_gives_a_link(emulator: EmulatorFactory) -> None:
    emu = emulator(replies="async", return_type=3, qps=100)
    data = finished(emu, task_id_of(create(emu)))["data"]
    assert data["return_type"] == 1
    assert httpx.get(data["image"], trust_env=False).headers["Content-Type"] == "image/jpeg"


def test_a_doc_shaped_task_id_reply(emulator: EmulatorFactory) -> None:
    emu = emulator(replies="async", reply_shape="doc", qps=100)
    body = create(emu).json()
    assert body["message"] == "success" and len(body["data"]["task_id"]) == 32
    done = finished(emu, body["data"]["task_id"])
    assert done["message"] == "success" and done["data"]["type"] == 1


@pytest.mark.timing
def test_stopping_cancels_tasks_still_processing(emulator: EmulatorFactory) -> None:
    emu = emulator(replies="async", latency=(30.0, 30.0))
    task_id_of(create(emu))
    started = time.monotonic()
    emu.stop()
    assert time.monotonic() - started < 3
    assert emu.stats()["billed"] == 1
