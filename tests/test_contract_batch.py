"""The batch under the real contract (docs/api-contract.md), over httpx.MockTransport:
billing of every HTTP 200, paid retries, asynchronous tasks, body encodings, the gateway's
message-only refusals and its circuit breaker."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers import ENDPOINT, Server, ok, png, run_batch, state, url_items
from zuotang_cli.models import InputItem, InputKind, Outcome
from zuotang_cli.protocol.api import CallSpec
from zuotang_cli.protocol.rules import Billing, Body
from zuotang_cli.status import ExitStatus
from zuotang_cli.store.journal import Journal, Status, entry_key


def journal_entry(tmp_path: Path, item: InputItem) -> object:
    with Journal.open(tmp_path) as journal:
        return journal.get(entry_key(item, "clean", None))


# -- billing ----------------------------------------------------------------------------


def test_a_billed_failure_counts_as_a_paid_call(tmp_path: Path) -> None:
    server = Server(lambda n, r: state(-8) if n == 1 else ok())
    result, records = run_batch(tmp_path, server, url_items(1))
    assert records[0].outcome is Outcome.DONE
    assert records[0].paid_calls == 2
    assert (result.paid_calls, result.paid_failures, result.paid_retries) == (2, 1, 1)
    entry = journal_entry(tmp_path, url_items(1)[0])
    assert entry.paid_calls == 2 and entry.paid_failures == 1  # type: ignore[attr-defined]


def test_a_billed_failure_is_paid_again_at_most_paid_retries_times(tmp_path: Path) -> None:
    server = Server(lambda n, r: state(-8))
    result, records = run_batch(tmp_path, server, url_items(1), retries=4)
    assert server.calls == 2  # the first call and one paid retry, not 1 + 4
    assert records[0].outcome is Outcome.FAILED
    assert "--paid-retries 1" in records[0].message
    assert result.paid_calls == 2
    # a re-run does not pay a third time: the input has spent its allowance
    again, records = run_batch(tmp_path, server, url_items(1), retries=4)
    assert server.calls == 2
    assert records[0].outcome is Outcome.FAILED and "--paid-retries" in records[0].message
    assert again.paid_calls == 0
    # --retry-failed is the explicit decision to pay again
    run_batch(tmp_path, server, url_items(1), retry_failed=True)
    assert server.calls == 4


def test_paid_retries_zero_never_pays_twice(tmp_path: Path) -> None:
    server = Server(lambda n, r: state(-1))
    run_batch(tmp_path, server, url_items(1), paid_retries=0)
    assert server.calls == 1


def test_success_only_billing_retries_failures_freely(tmp_path: Path) -> None:
    server = Server(lambda n, r: state(-8))
    result, _ = run_batch(tmp_path, server, url_items(1), retries=3, billing=Billing.SUCCESS_ONLY)
    assert server.calls == 4
    assert result.paid_calls == 0


def test_max_calls_counts_billed_failures(tmp_path: Path) -> None:
    server = Server(lambda n, r: state(-8) if n % 2 else ok())
    result, records = run_batch(tmp_path, server, url_items(5), max_calls=3, concurrency=2)
    assert server.calls == 3  # every one of them a billed HTTP 200
    assert result.paid_calls == 3
    assert sum(r.paid_calls for r in records) == 3
    assert any(r.error_class == "max-calls" for r in records)
    assert result.exit_status is ExitStatus.SOME_FAILED


# -- asynchronous tasks -----------------------------------------------------------------


class TaskServer(Server):
    """POST answers a task id; GET answers ``polls`` (one per fetch; the last repeats)."""

    def __init__(self, polls: list[httpx.Response]) -> None:
        super().__init__(lambda n, r: self._created(n))
        self.polls = polls
        self.fetches = 0

    def _created(self, n: int) -> httpx.Response:
        data = {"task_id": f"task-{n}"}
        return httpx.Response(200, json={"status": 200, "message": "success", "data": data})

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and request.url.path.startswith("/tasks/visual/scale/"):
            self.fetches += 1
            assert request.headers["Authorization"] == "APPCODE APPCODE-XYZ"
            return self.polls[min(self.fetches, len(self.polls)) - 1]
        if request.method == "POST":
            assert b"sync=1" in request.read()
        return super().__call__(request)


def running() -> httpx.Response:
    data = {"task_id": "t", "state": 4, "progress": 40}
    return httpx.Response(200, json={"status": 200, "data": data})


def test_an_async_task_is_fetched_until_done(tmp_path: Path) -> None:
    server = TaskServer([running(), running(), ok()])
    result, records = run_batch(tmp_path, server, url_items(1))
    assert records[0].outcome is Outcome.DONE
    assert (server.calls, server.fetches, result.polls) == (1, 3, 3)
    assert result.paid_calls == 1 and records[0].task_id == "task-1"


def test_a_pending_task_is_fetched_by_the_next_run_not_paid_again(tmp_path: Path) -> None:
    server = TaskServer([running()])
    _, records = run_batch(tmp_path, server, url_items(1), poll_limit=0.1)
    assert records[0].outcome is Outcome.FAILED
    assert "task-1" in records[0].message and "re-run" in records[0].message
    entry = journal_entry(tmp_path, url_items(1)[0])
    assert entry.status is Status.PENDING and entry.task_id == "task-1"  # type: ignore[attr-defined]
    server.polls = [ok()]
    again, records = run_batch(tmp_path, server, url_items(1))
    assert records[0].outcome is Outcome.DONE
    assert server.calls == 1  # fetched, not paid again
    assert again.paid_calls == 0


def test_a_refused_task_path_reports_the_task_id(tmp_path: Path) -> None:
    refused = httpx.Response(400, headers={"X-Ca-Error-Message": "Invalid Url"})
    server = TaskServer([refused])
    result, records = run_batch(tmp_path, server, url_items(1))
    assert records[0].outcome is Outcome.FAILED
    assert records[0].error_class == "unfinished"
    assert "task-1" in records[0].message and records[0].task_id == "task-1"
    assert result.halt is None  # the calls themselves work
    entry = journal_entry(tmp_path, url_items(1)[0])
    assert entry.status is Status.PENDING  # type: ignore[attr-defined]


def test_a_task_that_fails_is_a_paid_failure(tmp_path: Path) -> None:
    server = TaskServer([state(-8)])
    result, records = run_batch(tmp_path, server, url_items(1), paid_retries=0)
    assert records[0].error_class == "state-8"
    assert (server.calls, result.paid_calls, result.paid_failures) == (1, 1, 1)


@pytest.mark.timing
def test_polls_pass_the_rate_gate_unless_free(tmp_path: Path) -> None:
    gated = TaskServer([running(), running(), running(), ok()])
    started = time.monotonic()
    run_batch(tmp_path / "a", gated, url_items(1), qps=4.0)
    # 1 call + 4 fetches, spaced at 4 starts a second: at least 1 s
    assert time.monotonic() - started >= 1.0
    free = TaskServer([running(), running(), running(), ok()])
    started = time.monotonic()
    run_batch(tmp_path / "b", free, url_items(1), qps=4.0, polls_use_gate=False)
    assert time.monotonic() - started < 1.0


def test_a_paid_task_is_fetched_ahead_of_the_new_calls_waiting(tmp_path: Path) -> None:
    """40 inputs at 20 QPS all wait at the gate at once; a task created by the first call
    is fetched at the next turn, not 2 s later behind the other 39 calls (at the default
    concurrency and 10 QPS that wait would be 30 s: a task's whole fetching time)."""
    order: list[str] = []

    class Recording(TaskServer):
        def __call__(self, request: httpx.Request) -> httpx.Response:
            if request.url.path.startswith("/tasks/visual/scale"):
                order.append(request.method)
            return super().__call__(request)

    server = Recording([ok()])
    result, records = run_batch(tmp_path, server, url_items(40), qps=20.0)
    assert all(r.outcome is Outcome.DONE for r in records)
    assert (server.calls, server.fetches, result.paid_calls) == (40, 40, 40)
    assert order.index("GET") < 10, order


# -- body encodings ---------------------------------------------------------------------


def form_only(n: int, request: httpx.Request) -> httpx.Response:
    if request.headers["Content-Type"].startswith("multipart/form-data"):
        return ok()
    return httpx.Response(400, json={"status": 400, "message": "image_url is required"})


def test_an_endpoint_that_does_not_read_forms_switches_to_multipart_once(
    tmp_path: Path,
) -> None:
    notices: list[str] = []
    server = Server(form_only)
    result, records = run_batch(tmp_path, server, url_items(3), notices, concurrency=1)
    assert all(r.outcome is Outcome.DONE for r in records)
    assert result.body_switched and server.calls == 4  # one 400 (unbilled), then 3 good
    assert len(notices) == 1 and "multipart" in notices[0]
    with Journal.open(tmp_path) as journal:
        assert journal.setting("body") == "multipart"
    # the output directory remembers: the next run starts multipart
    later = Server(form_only)
    run_batch(tmp_path, later, url_items(4)[3:])
    assert later.calls == 1


def test_a_chosen_body_is_never_switched(tmp_path: Path) -> None:
    spec = CallSpec(ENDPOINT, "APPCODE-XYZ", "clean", None, Body.FORM)
    result, _ = run_batch(tmp_path, Server(form_only), url_items(3), spec=spec, body_fixed=True)
    assert result.halt is not None and result.exit_status is ExitStatus.USAGE
    assert "--body multipart" in result.halt.message


def local_files(tmp_path: Path, n: int, size: int = 0) -> list[InputItem]:
    items = []
    for i in range(n):
        path = tmp_path / "in" / f"p{i}.png"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(png() + b"\0" * size)
        items.append(InputItem(i, str(path), InputKind.FILE, path=path))
    return items


def test_unsupported_multipart_stops_local_files_not_urls(tmp_path: Path) -> None:
    def replies(n: int, request: httpx.Request) -> httpx.Response:
        if request.headers["Content-Type"].startswith("multipart/form-data"):
            return httpx.Response(400, headers={"X-Ca-Error-Message": "Unsupported Multipart"})
        return ok()

    server = Server(replies)
    files = local_files(tmp_path, 3)
    items = [
        files[0],
        *[InputItem(9, u.source, u.kind, url=u.url) for u in url_items(1)],
        *files[1:],
    ]
    _, records = run_batch(tmp_path / "out", server, items, concurrency=1)
    by_input = {r.input: r for r in records}
    assert server.calls == 2  # one refused upload, one URL; no upload tried again
    assert by_input[url_items(1)[0].source].outcome is Outcome.DONE
    for item in files:
        assert by_input[item.source].outcome is Outcome.NOT_ATTEMPTED
        assert "Unsupported Multipart" in by_input[item.source].message


def test_an_upload_over_the_gateway_limit_is_refused_unsent(tmp_path: Path) -> None:
    server = Server(lambda n, r: ok())
    files = local_files(tmp_path, 1, size=2048)
    _, records = run_batch(tmp_path / "out", server, files, max_upload=2048)
    assert server.calls == 0
    assert records[0].outcome is Outcome.INVALID
    assert records[0].error_class == "upload-too-large"
    assert "host the file and pass its URL" in records[0].message


# -- gateway --------------------------------------------------------------------------


def test_a_message_only_invalid_appcode_halts_with_exit_3(tmp_path: Path) -> None:
    headers = {"X-Ca-Error-Message": "Invalid AppCode `not exists`"}
    server = Server(lambda n, r: httpx.Response(400, headers=headers))
    result, records = run_batch(tmp_path, server, url_items(30), concurrency=3)
    assert result.exit_status is ExitStatus.HALTED
    assert server.calls <= 3
    assert sum(r.outcome is Outcome.NOT_ATTEMPTED for r in records) >= 27


@pytest.mark.parametrize("message", ["Invalid Url", "Invalid Param Location", "API Not Found"])
def test_a_refused_endpoint_halts_with_exit_2_naming_it(tmp_path: Path, message: str) -> None:
    server = Server(lambda n, r: httpx.Response(400, headers={"X-Ca-Error-Message": message}))
    result, _ = run_batch(tmp_path, server, url_items(10), concurrency=2)
    assert result.exit_status is ExitStatus.USAGE
    assert result.halt is not None and ENDPOINT in result.halt.message
    assert server.calls <= 2


def test_the_circuit_breaker_pauses_the_whole_run(tmp_path: Path) -> None:
    breaker = {"X-Ca-Error-Code": "D503CB", "X-Ca-Error-Message": "x", "Retry-After": "0.3"}
    server = Server(lambda n, r: httpx.Response(503, headers=breaker) if n == 1 else ok())
    result, records = run_batch(tmp_path, server, url_items(4), concurrency=1, retries=0)
    assert all(r.outcome is Outcome.DONE for r in records)  # not spent from any input's retries
    assert result.throttled == 1 and server.calls == 5


def test_report_rows_carry_paid_calls(tmp_path: Path) -> None:
    server = Server(lambda n, r: state(-2) if n == 1 else ok())
    _, records = run_batch(tmp_path, server, url_items(1))
    row = records[0].as_dict()
    assert row["paid_calls"] == 2
    assert json.loads(json.dumps(row))["paid_calls"] == 2
