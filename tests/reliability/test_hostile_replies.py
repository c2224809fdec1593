"""Hostile replies end to end: a server of our own on loopback stands in for the endpoint
and for the result hosts, and answers each input with a different insult.  Each one is a
clear per-image error; nothing crashes; no file is written outside -o.

(tests/test_batch.py covers, over httpx.MockTransport: bad base64, a foreign result
scheme, HTML instead of an image, a truncated and an expired download.  This suite covers
the rest, over real sockets and the real CLI.)
"""

from __future__ import annotations

import base64
import json
import re
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import report_rows
from tests.reliability.support import (
    Conn,
    HostileServer,
    Received,
    Trial,
    check_saved,
    enhance,
    hostile_server,
    png_bytes,
    snapshot,
)
from zuotang_cli.cli.progress import MAX_PROBLEM_LINES
from zuotang_cli.status import ExitStatus

SUITE = "Hostile replies (a server of our own for the endpoint and the result hosts)"
PNG = png_bytes((40, 30))
MIB = 1024 * 1024

Reply = Callable[[Conn, str], Awaitable[None]]
"""How the endpoint answers: (connection, base URL of the server)."""


@dataclass(frozen=True)
class Scenario:
    call: Reply
    expected: frozenset[str]
    """Acceptable error_class values of the row ('' for a saved image)."""
    result: Callable[[Conn, str], Awaitable[None]] | None = None
    """How ``/r/<name>`` answers, when the call returns a link to it."""
    long: bool = False
    """Only in the reliability run: the download is retried with backoff (5 tries, up to
    15 s of waiting), or moves over 100 MiB."""


def _json(payload: object) -> bytes:
    return json.dumps(payload).encode()


def success(image: str) -> bytes:
    data = {"state": 1, "progress": 100, "task_id": "t1", "image": image, "return_type": 1}
    return _json({"status": 200, "message": "success", "data": data})


def answer(status: int, body: bytes, headers: dict[str, str] | None = None) -> Reply:
    async def reply(conn: Conn, base: str) -> None:
        await conn.reply(status, body, headers or {"Content-Type": "application/json"})

    return reply


def link(target: str) -> Reply:
    """A success whose image is ``target`` (``{base}`` is the server's own URL)."""

    async def reply(conn: Conn, base: str) -> None:
        await conn.reply(200, success(target.format(base=base)))

    return reply


def own_result(name: str) -> Reply:
    return link("{base}/r/" + name)


async def huge_call_body(conn: Conn, base: str) -> None:
    piece = b" " * MIB
    await conn.chunks(200, (piece for _ in range(66)), {"Content-Type": "application/json"})


async def huge_header(conn: Conn, base: str) -> None:
    await conn.reply(200, success(f"{base}/r/x"), {"X-Padding": "a" * 200_000})


async def redirect_to(conn: Conn, location: str) -> None:
    await conn.reply(302, b"", {"Location": location})


def redirect(location: str) -> Callable[[Conn, str], Awaitable[None]]:
    async def result(conn: Conn, base: str) -> None:
        await redirect_to(conn, location.format(base=base))

    return result


async def html_result(conn: Conn, base: str) -> None:
    await conn.reply(
        200, b"<html><body>Sign in to continue</body></html>", {"Content-Type": "text/html"}
    )


async def declared_too_large(conn: Conn, base: str) -> None:
    await conn.head(200, {"Content-Type": "image/png"}, content_length=200 * MIB)
    await conn.send(PNG)
    await conn.hang(5)


async def streamed_too_large(conn: Conn, base: str) -> None:
    piece = PNG + b"\0" * (MIB - len(PNG))
    await conn.chunks(200, (piece for _ in range(110)), {"Content-Type": "image/png"})


async def disposition(conn: Conn, base: str) -> None:
    headers = {
        "Content-Type": "image/png",
        "Content-Disposition": 'attachment; filename="../../escaped-by-disposition.png"',
    }
    await conn.reply(200, PNG, headers)


async def plain_png(conn: Conn, base: str) -> None:
    await conn.reply(200, PNG, {"Content-Type": "image/png"})


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


SCENARIOS: dict[str, Scenario] = {
    # -- replies of the endpoint that are not what the API documents --
    "nonjson-200": Scenario(
        answer(200, b"<html><body>Gateway</body></html>", {"Content-Type": "text/html"}),
        frozenset({"bad-reply"}),
    ),
    "binary-garbage-200": Scenario(answer(200, bytes(range(256)) * 4), frozenset({"bad-reply"})),
    "nonjson-502": Scenario(
        answer(502, b"<html>Bad Gateway</html>", {"Content-Type": "text/html"}),
        frozenset({"server-error"}),
    ),
    "json-array": Scenario(answer(200, b"[1, 2, 3]"), frozenset({"bad-reply"})),
    "json-null": Scenario(answer(200, b"null"), frozenset({"bad-reply"})),
    "json-data-is-text": Scenario(
        answer(200, _json({"status": 200, "message": "ok", "data": "oops"})),
        frozenset({"bad-reply"}),
    ),
    "json-image-is-number": Scenario(
        answer(200, _json({"status": 200, "data": {"state": 1, "image": 12345}})),
        frozenset({"bad-reply"}),
    ),
    "json-image-is-object": Scenario(
        answer(200, _json({"status": 200, "data": {"state": 1, "image": {"url": "x"}}})),
        frozenset({"bad-reply"}),
    ),
    "json-no-status": Scenario(
        answer(200, _json({"data": {"state": 1, "image": "http://127.0.0.1:9/r.png"}})),
        frozenset({"bad-reply"}),
    ),
    "json-state-is-word": Scenario(
        answer(200, _json({"status": 200, "data": {"state": "done", "image": "x"}})),
        frozenset({"bad-reply"}),
    ),
    "json-huge-number": Scenario(
        answer(200, b'{"status": 200, "data": {"state": 1' + b"0" * 5000 + b"}}"),
        frozenset({"bad-reply"}),
    ),
    "json-nested-deep": Scenario(answer(200, b"[" * 100_000), frozenset({"bad-reply"})),
    "body-over-64MiB": Scenario(huge_call_body, frozenset({"bad-reply"})),
    "header-over-64KiB": Scenario(huge_header, frozenset({"network"})),
    # -- a result that is not an http(s) link, or leads elsewhere --
    "result-javascript": Scenario(
        link("javascript:alert(document.cookie)"), frozenset({"bad-reply"})
    ),
    "result-file-url": Scenario(link("file:///etc/passwd"), frozenset({"bad-reply"})),
    "result-redirect-to-file": Scenario(
        own_result("redirect-to-file"),
        frozenset({"bad-result-url"}),
        redirect("file:///etc/passwd"),
    ),
    "result-redirect-to-javascript": Scenario(
        own_result("redirect-to-javascript"),
        frozenset({"bad-result-url"}),
        redirect("javascript:alert(1)"),
    ),
    "result-redirect-loop": Scenario(
        own_result("redirect-loop"),
        frozenset({"download-network", "download-redirects"}),
        redirect("{base}/r/redirect-loop"),
        long=True,
    ),
    "result-host-unresolvable": Scenario(
        link("http://result-host.invalid/r.png"), frozenset({"download-network"}), long=True
    ),
    # -- a result that is not an image, or too big --
    "result-html": Scenario(
        own_result("html"), frozenset({"not-an-image"}), html_result, long=True
    ),
    "result-declared-200MiB": Scenario(
        own_result("declared-too-large"), frozenset({"result-too-large"}), declared_too_large
    ),
    "result-streams-110MiB": Scenario(
        own_result("streamed-too-large"),
        frozenset({"result-too-large"}),
        streamed_too_large,
        long=True,
    ),
    "base64-text": Scenario(link(b64(b"this is not an image at all")), frozenset({"not-an-image"})),
    "base64-data-url-html": Scenario(
        link("data:text/html;base64," + b64(b"<script>alert(1)</script>")),
        frozenset({"not-an-image"}),
    ),
    # -- fine images that try to pick their own name --
    "result-content-disposition": Scenario(own_result("disposition"), frozenset({""}), disposition),
    "result-path-traversal": Scenario(
        link("{base}/r/../../../../etc/escaped-by-path.png"), frozenset({""})
    ),
}
RESULTS = {
    "redirect-to-file": SCENARIOS["result-redirect-to-file"].result,
    "redirect-to-javascript": SCENARIOS["result-redirect-to-javascript"].result,
    "redirect-loop": SCENARIOS["result-redirect-loop"].result,
    "html": html_result,
    "declared-too-large": declared_too_large,
    "streamed-too-large": streamed_too_large,
    "disposition": disposition,
}


def scenario_of(url: str) -> str:
    return url.rsplit("/", 1)[-1].removesuffix(".png")


def handler(server_url: list[str]) -> Callable[[Received, Conn], Awaitable[None]]:
    async def handle(request: Received, conn: Conn) -> None:
        base = server_url[0]
        if request.method == "POST":
            await SCENARIOS[scenario_of(request.form()["image_url"])].call(conn, base)
            return
        name = request.target.split("?")[0].rsplit("/", 1)[-1]
        result = RESULTS.get(name, plain_png)
        assert result is not None
        await result(conn, base)

    return handle


@dataclass
class TableRun:
    rows: dict[str, dict[str, str]]
    calls: Counter[str]
    returncode: int
    stderr: str
    outside_before: dict[str, tuple[int, int]]
    outside_after: dict[str, tuple[int, int]]
    out: Path


def run_table(trial: Trial, tmp_path: Path, names: list[str]) -> TableRun:
    url: list[str] = []
    out = tmp_path / "out"
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    before = snapshot(tmp_path, skip=[out])
    server: HostileServer
    with hostile_server(handler(url)) as server:
        url.append(server.url)
        inputs = [f"http://img.test/{name}.png" for name in names]
        run = enhance(
            trial,
            *inputs,
            "-o",
            str(out),
            "--retries",
            "2",
            "--qps",
            "50",
            endpoint=f"{server.url}/tasks/visual/scale",
            cwd=cwd,
            timeout=240,
        )
        calls = Counter(
            scenario_of(r.form().get("image_url", ""))
            for r in server.received
            if r.method == "POST"
        )
    trial.inputs += len(names)
    rows = {scenario_of(row["input"]): row for row in report_rows(out)}
    return TableRun(
        rows, calls, run.returncode, run.stderr, before, snapshot(tmp_path, skip=[out]), out
    )


def check_table(trial: Trial, table: TableRun, names: list[str]) -> dict[str, str]:
    assert table.returncode == ExitStatus.SOME_FAILED
    assert sorted(table.rows) == sorted(names)
    got = {name: table.rows[name]["error_class"] for name in names}
    # Nothing written outside -o (the working directory included), whatever a reply said.
    assert table.outside_after == table.outside_before
    saved = check_saved(table.out, table.rows.values())
    assert len(saved) == sum(1 for name in names if SCENARIOS[name].expected == {""})
    for path in table.out.rglob("*"):
        assert "escaped" not in path.name and "passwd" not in path.name, path
    assert not list(table.out.rglob("*.part"))
    trial.saved += len(saved)
    # Each error is on stderr too, up to a screenful of lines; the rest are counted there.
    failed = [table.rows[name] for name in names if table.rows[name]["outcome"] != "done"]
    assert all(row["message"] for row in failed), failed
    lines = table.stderr.splitlines()
    shown = [
        row
        for row in failed
        if any(line.startswith(f"zuotang: {row['outcome']}: {row['input']}: ") for line in lines)
    ]
    hidden = re.search(r"(\d+) more problem lines not shown", table.stderr)
    assert len(shown) == min(len(failed), MAX_PROBLEM_LINES), table.stderr
    assert len(failed) - len(shown) == (int(hidden[1]) if hidden else 0), table.stderr
    return got


@pytest.fixture(scope="module")
def fast_names() -> list[str]:
    return [name for name, s in SCENARIOS.items() if not s.long]


def test_every_hostile_reply_is_a_clear_per_image_error(
    trial: Trial, tmp_path: Path, fast_names: list[str]
) -> None:
    """One run, one hostile reply per input."""
    names = fast_names
    table = run_table(trial, tmp_path, names)
    got = check_table(trial, table, names)
    wrong = {n: got[n] for n in names if got[n] not in SCENARIOS[n].expected}
    assert not wrong, wrong
    finals = [n for n in names if got[n] in ("bad-reply", "bad-result-url", "not-an-image", "")]
    assert all(table.calls[n] == 1 for n in finals), table.calls  # final: never called again
    assert table.calls["nonjson-502"] == 3  # a 5xx is retried (--retries 2)
    trial.note(
        f"{len(names)} hostile replies in one run ({sum(table.calls.values())} calls): "
        + "; ".join(f"{n} -> {got[n] or 'saved'}" for n in names)
        + "; no file written outside -o; no traceback"
    )


@pytest.mark.reliability
@pytest.mark.timeout(600)
def test_hostile_results_that_are_retried_or_huge(trial: Trial, tmp_path: Path) -> None:
    """Results retried until they fail (HTML, redirect loop, no DNS), one of 110 MiB."""
    names = [name for name, s in SCENARIOS.items() if s.long]
    table = run_table(trial, tmp_path, names)
    got = check_table(trial, table, names)
    wrong = {n: got[n] for n in names if got[n] not in SCENARIOS[n].expected}
    assert not wrong, wrong
    trial.note(
        "; ".join(f"{n} -> {got[n]}" for n in names)
        + "; the 110 MiB chunked result cut off at the 100 MiB cap, its .part file removed"
    )
