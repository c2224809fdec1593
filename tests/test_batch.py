"""The batch runner's edge cases over httpx.MockTransport (no server)."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path

import httpx
import pytest

from tests.helpers import ENDPOINT, Server, aiter, ok, png, run_batch, state, url_items
from zuotang_cli.engine.batch import Batch, BatchConfig
from zuotang_cli.models import InputItem, InputKind, Outcome, Record
from zuotang_cli.protocol.api import CallSpec
from zuotang_cli.status import ExitStatus
from zuotang_cli.store.journal import Journal


def test_all_done_saves_real_images(tmp_path: Path) -> None:
    server = Server(lambda n, r: ok())
    result, records = run_batch(tmp_path, server, url_items(3))
    assert result.exit_status is ExitStatus.SUCCESS
    assert [r.outcome for r in records] == [Outcome.DONE] * 3
    for record in records:
        assert record.output and Path(record.output).is_file()
        assert Path(record.output).suffix == ".png"
        assert (record.width, record.height, record.attempts) == (40, 30, 1)
        assert record.result_bytes == Path(record.output).stat().st_size
    assert len({r.output for r in records}) == 3
    assert not list((tmp_path / ".zuotang" / "tmp").glob("*.part"))


def test_transient_state_is_retried_then_succeeds(tmp_path: Path) -> None:
    server = Server(lambda n, r: state(-8) if n == 1 else ok())
    _, records = run_batch(tmp_path, server, url_items(1))
    assert records[0].outcome is Outcome.DONE
    assert records[0].attempts == 2
    assert server.calls == 2


@pytest.mark.parametrize("final_state", [-3, -5, -7])
def test_final_states_are_not_retried(tmp_path: Path, final_state: int) -> None:
    server = Server(lambda n, r: state(final_state))
    result, records = run_batch(tmp_path, server, url_items(1))
    assert server.calls == 1
    assert records[0].outcome is Outcome.FAILED
    assert records[0].state == final_state
    assert result.exit_status is ExitStatus.SOME_FAILED


def test_retries_are_bounded(tmp_path: Path) -> None:
    server = Server(lambda n, r: httpx.Response(503, headers={"X-Ca-Error-Message": "busy"}))
    _, records = run_batch(tmp_path, server, url_items(1), retries=2)
    assert server.calls == 3
    assert records[0].attempts == 3
    assert records[0].error_class == "server-error"
    assert records[0].http_status == 503


def test_network_errors_are_retried(tmp_path: Path) -> None:
    def replies(n: int, request: httpx.Request) -> httpx.Response:
        if n == 1:
            raise httpx.ReadError("connection reset", request=request)
        return ok()

    _, records = run_batch(tmp_path, Server(replies), url_items(1))
    assert records[0].outcome is Outcome.DONE
    assert records[0].attempts == 2


def test_auth_failure_halts_and_starts_nothing_new(tmp_path: Path) -> None:
    headers = {"X-Ca-Error-Code": "A401AC", "X-Ca-Error-Message": "Invalid AppCode `not exists`"}
    server = Server(lambda n, r: httpx.Response(401, headers=headers))
    result, records = run_batch(tmp_path, server, url_items(20), qps=20.0, concurrency=4)
    assert result.exit_status is ExitStatus.HALTED
    assert result.halt is not None and result.halt.error_class == "auth"
    assert server.calls <= 4  # at most what was already in flight
    assert len(records) == 20
    assert sum(r.outcome is Outcome.NOT_ATTEMPTED for r in records) >= 16


def test_throttle_pauses_the_run_and_honours_retry_after(tmp_path: Path) -> None:
    def replies(n: int, request: httpx.Request) -> httpx.Response:
        if n == 1:
            return httpx.Response(429, headers={"X-Ca-Error-Code": "T429QL", "Retry-After": "0"})
        return ok()

    _, records = run_batch(tmp_path, Server(replies), url_items(2))
    assert [r.outcome for r in records] == [Outcome.DONE] * 2
    assert sum(r.attempts for r in records) == 3


def test_base64_result_is_saved(tmp_path: Path) -> None:
    encoded = base64.b64encode(png((8, 6))).decode()
    server = Server(lambda n, r: ok(image=f"data:image/png;base64,{encoded}"))
    _, records = run_batch(tmp_path, server, url_items(1))
    assert records[0].outcome is Outcome.DONE
    assert (records[0].width, records[0].height) == (8, 6)
    assert server.downloads == 0


def test_bad_base64_is_a_clear_failure(tmp_path: Path) -> None:
    server = Server(lambda n, r: ok(image="not base64 at all!"))
    _, records = run_batch(tmp_path, server, url_items(1))
    assert records[0].outcome is Outcome.FAILED
    assert records[0].error_class == "bad-reply"


def test_truncated_download_is_retried(tmp_path: Path) -> None:
    server = Server(lambda n, r: ok())
    full = png()
    attempts = []

    def result() -> httpx.Response:
        attempts.append(1)
        if len(attempts) == 1:
            return httpx.Response(200, content=full[: len(full) // 2])
        return httpx.Response(200, content=full)

    server.results["/r/1.png"] = result
    _, records = run_batch(tmp_path, server, url_items(1))
    assert records[0].outcome is Outcome.DONE
    assert len(attempts) == 2


def test_an_expired_link_is_called_again_once_and_no_more(tmp_path: Path) -> None:
    server = Server(lambda n, r: ok())
    server.results["/r/1.png"] = lambda: httpx.Response(403, text="<Error>expired</Error>")
    _, records = run_batch(tmp_path, server, url_items(1))
    assert records[0].outcome is Outcome.FAILED
    assert records[0].error_class == "link-expired"
    assert server.calls == 2  # a new call is the only way to the image; once is enough


def test_a_link_that_expired_before_download_is_called_again(tmp_path: Path) -> None:
    server = Server(lambda n, r: ok(image=f"https://cdn.test/r/{n}.png"))
    server.results["/r/1.png"] = lambda: httpx.Response(403, text="<Error>expired</Error>")
    _, records = run_batch(tmp_path, server, url_items(1))
    assert records[0].outcome is Outcome.DONE
    assert records[0].message == (
        "its link expired before it was saved: called again (a paid retry)"
    )
    assert server.calls == 2


def test_html_instead_of_image_is_refused(tmp_path: Path) -> None:
    server = Server(lambda n, r: ok())
    server.results["/r/1.png"] = lambda: httpx.Response(200, text="<html>login</html>")
    _, records = run_batch(tmp_path, server, url_items(1))
    assert records[0].error_class == "not-an-image"
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and ".zuotang" not in p.parts]


def test_result_url_with_a_foreign_scheme_is_refused(tmp_path: Path) -> None:
    server = Server(lambda n, r: ok(image="ftp://cdn.test/r.png"))
    _, records = run_batch(tmp_path, server, url_items(1))
    assert records[0].outcome is Outcome.FAILED
    assert records[0].error_class == "bad-reply"


def test_invalid_items_become_rows_and_are_never_sent(tmp_path: Path) -> None:
    bad = InputItem(
        0, "ftp://x", InputKind.URL, error="not an http(s) URL", error_class="bad-input"
    )
    server = Server(lambda n, r: ok())
    result, records = run_batch(tmp_path, server, [bad, *url_items(1)[0:1]])
    assert server.calls == 1
    assert {r.outcome for r in records} == {Outcome.INVALID, Outcome.DONE}
    assert result.exit_status is ExitStatus.SOME_FAILED


def test_report_fields_come_from_the_reply(tmp_path: Path) -> None:
    def replies(n: int, request: httpx.Request) -> httpx.Response:
        data = {"state": 1, "task_id": "task-9", "image": "https://cdn.test/r/1.png"}
        data |= {"created_at": 1700000000, "completed_at": 1700000002}
        body = {"status": 200, "message": "success", "data": data}
        return httpx.Response(200, content=json.dumps(body), headers={"X-Ca-Request-Id": "rq"})

    _, records = run_batch(tmp_path, Server(replies), url_items(1))
    record = records[0]
    assert (record.task_id, record.request_id, record.http_status) == ("task-9", "rq", 200)
    assert (record.created_at, record.completed_at, record.state_meaning) == (
        1700000000,
        1700000002,
        "done",
    )


def test_an_unreachable_endpoint_halts_the_run(tmp_path: Path) -> None:
    def replies(n: int, request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("Name or service not known", request=request)

    server = Server(replies)
    result, records = run_batch(tmp_path, server, url_items(40), concurrency=4)
    assert result.halt is not None and result.halt.error_class == "unreachable"
    assert result.exit_status is ExitStatus.TROUBLE  # trouble on the way: alert, retry later
    assert server.calls <= 12 + 4
    assert len(records) == 40
    assert sum(r.outcome is Outcome.NOT_ATTEMPTED for r in records) >= 30


def test_calls_that_time_out_after_the_endpoint_answered_are_not_silence(tmp_path: Path) -> None:
    """13 calls hang and time out together just after a later call was answered: the
    endpoint is reachable (it answered since they went out), so the run must not halt."""
    slow, answered = 13, asyncio.Event()
    calls = 0

    async def server(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        if request.url.path != "/tasks/visual/scale":
            return httpx.Response(200, content=png())
        calls += 1
        if calls <= slow:  # the first ones hang until the fast one was answered
            await answered.wait()
            await asyncio.sleep(0.2)
            raise httpx.ReadTimeout("timed out", request=request)
        if calls == slow + 1:
            asyncio.get_running_loop().call_later(0.05, answered.set)
        return ok(f"https://cdn.test/r/{calls}.png")

    records: list[Record] = []
    cfg = BatchConfig(
        spec=CallSpec(ENDPOINT, "APPCODE-XYZ", "clean", None),
        output_dir=tmp_path,
        qps=200.0,
        backoff=0.01,
        concurrency=slow + 1,
        paid_retries=2,
    )
    with Journal.open(tmp_path) as journal:
        batch = Batch(cfg, records.append, journal, transport=httpx.MockTransport(server))
        result = asyncio.run(batch.run(aiter(url_items(slow + 1))))
    assert result.halt is None, result.halt
    assert [r.outcome for r in records] == [Outcome.DONE] * (slow + 1)
    assert calls == 2 * slow + 1  # each hung call tried once more, answered at once


@pytest.mark.timing
def test_elapsed_counts_from_the_first_call_not_from_the_queue(tmp_path: Path) -> None:
    server = Server(lambda n, r: ok())
    _, records = run_batch(tmp_path, server, url_items(6), qps=5.0)
    assert all(r.elapsed is not None and r.elapsed < 0.5 for r in records)


def test_a_result_that_cannot_be_written_halts_the_run(tmp_path: Path) -> None:
    server = Server(lambda n, r: ok())
    with Journal.open(tmp_path):
        pass  # the journal lives; only results cannot be written
    (tmp_path / ".zuotang" / "tmp").write_text("a file where the temp folder should be")
    result, records = run_batch(tmp_path, server, url_items(20), concurrency=2)
    assert result.halt is not None and result.halt.error_class == "disk-error"
    assert result.exit_status is ExitStatus.TROUBLE
    assert server.calls <= 2  # what was in flight; no call is paid for nothing after that
    failed = [r for r in records if r.outcome is Outcome.FAILED]
    assert failed and all(r.error_class == "disk-error" for r in failed)
    assert "cannot write" in failed[0].message
