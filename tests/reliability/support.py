"""Shared machinery of the reliability suites.

- :func:`enhance` runs the real CLI in a subprocess with a recognizable AppCode, counts the
  run and checks its streams for tracebacks and for the AppCode;
- :class:`Trial` and :data:`FIGURES` hold the figures the tests measure (written to
  tests/RELIABILITY.md by conftest.py);
- :class:`HostileServer` is a tiny HTTP/1.1 server on loopback that misbehaves on purpose;
- helpers check saved files and snapshot folders (the report's rows, list files and
  waiting for a condition: tests/helpers.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import sqlite3
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from PIL import Image

from tests import helpers

APPCODE = "zt-REL-SECRET-5f1c0d9a7e"
"""Recognizable: any occurrence in an output is a leak."""
TRACEBACK = "Traceback (most recent call last)"
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tiff"})


# ---------------------------------------------------------------------------------------
# Figures


@dataclass
class Trial:
    """What one test tried and measured; rendered into tests/RELIABILITY.md."""

    nodeid: str
    suite: str
    title: str
    inputs: int = 0
    runs: int = 0
    """CLI processes started."""
    tracebacks: int = 0
    """'Traceback' seen on stderr where none is documented (asserted to stay 0)."""
    saved: int = 0
    """Images saved and checked (Pillow opens them; they match their report row)."""
    billed_twice: int = 0
    """Inputs billed more than once."""
    billed_twice_unexplained: int = 0
    """Extra billings that no expired link explains (asserted to stay 0)."""
    faults: Counter[str] = field(default_factory=Counter)
    """Faults injected, by kind."""
    secret_scans: int = 0
    """Streams and files searched for the AppCode."""
    leaks: int = 0
    """Streams and files the AppCode was found in (asserted to stay 0)."""
    held: list[str] = field(default_factory=list)
    """What held, in words (with the measured numbers)."""
    outcome: str = "not run"
    reason: str = ""
    """Why a test is an expected failure (xfail), or how it failed."""
    seconds: float = 0.0
    ran_at: str = ""
    selection: str = ""

    def note(self, text: str) -> None:
        self.held.append(text)

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["faults"] = dict(self.faults)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Trial:
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        trial = cls(**known)
        trial.faults = Counter(trial.faults)
        return trial


class Figures:
    """Every trial of this session, by test id."""

    def __init__(self) -> None:
        self.trials: dict[str, Trial] = {}

    def trial(self, nodeid: str, suite: str, title: str) -> Trial:
        if nodeid not in self.trials:
            self.trials[nodeid] = Trial(nodeid, suite, title)
        return self.trials[nodeid]


FIGURES = Figures()


# ---------------------------------------------------------------------------------------
# The CLI in a subprocess


@dataclass(frozen=True)
class Run:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    seconds: float


def start(
    *args: str,
    endpoint: str | None,
    appcode: str | None = APPCODE,
    cwd: Path | None = None,
    preexec_fn: Callable[[], None] | None = None,
    env: Mapping[str, str] | None = None,
    command: str = "enhance",
) -> subprocess.Popen[bytes]:
    """``zuotang COMMAND ARGS`` started in a subprocess (stdin, stdout, stderr piped)."""
    return helpers.start(
        command,
        *args,
        env={**helpers.enhance_env(endpoint, appcode), **(env or {})},
        text=False,
        stdin=subprocess.PIPE,
        cwd=cwd,
        preexec_fn=preexec_fn,
    )


def finish(
    trial: Trial,
    proc: subprocess.Popen[bytes],
    *,
    stdin: bytes | None = None,
    timeout: float = 300.0,
    traceback_expected: bool = False,
) -> Run:
    """Wait for a run started by :func:`start`; count it and check its streams: never the
    AppCode and, unless ``traceback_expected`` (``-v`` on an error), never a traceback."""
    started = time.monotonic()
    try:
        stdout, stderr = proc.communicate(stdin if stdin is not None else b"", timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    args = proc.args[4:] if isinstance(proc.args, list) else ()
    run = Run(
        tuple(str(arg) for arg in args),
        proc.returncode,
        stdout.decode("utf-8", "replace"),
        stderr.decode("utf-8", "replace"),
        time.monotonic() - started,
    )
    trial.runs += 1
    trial.secret_scans += 2
    trial.leaks += (APPCODE.encode() in stdout) + (APPCODE.encode() in stderr)
    assert APPCODE.encode() not in stdout, "the AppCode leaked on stdout"
    assert APPCODE.encode() not in stderr, "the AppCode leaked on stderr"
    if not traceback_expected:
        trial.tracebacks += run.stderr.count(TRACEBACK)
        assert TRACEBACK not in run.stderr, run.stderr[-3000:]
    return run


def enhance(
    trial: Trial,
    *args: str,
    endpoint: str | None,
    appcode: str | None = APPCODE,
    stdin: bytes | None = None,
    cwd: Path | None = None,
    preexec_fn: Callable[[], None] | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 300.0,
    traceback_expected: bool = False,
    command: str = "enhance",
) -> Run:
    """``zuotang enhance ARGS`` run to its end (see :func:`finish` for what is checked)."""
    proc = start(
        *args,
        endpoint=endpoint,
        appcode=appcode,
        cwd=cwd,
        preexec_fn=preexec_fn,
        env=env,
        command=command,
    )
    return finish(trial, proc, stdin=stdin, timeout=timeout, traceback_expected=traceback_expected)


def assert_no_secret_in_files(trial: Trial, *roots: Path) -> int:
    """Search every file under ``roots`` for the AppCode; return how many were read."""
    needle = APPCODE.encode()
    scanned = 0
    leaked: list[Path] = []
    for root in roots:
        for path in sorted(root.rglob("*")):
            if path.is_symlink() or not path.is_file():
                continue
            scanned += 1
            if needle in _read_all(path):
                leaked.append(path)
    trial.secret_scans += scanned
    trial.leaks += len(leaked)
    assert not leaked, f"the AppCode leaked into {leaked}"
    return scanned


def _read_all(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


# ---------------------------------------------------------------------------------------
# Reports, saved files, folders


def journal_costs(out: Path) -> dict[str, tuple[int, int, int, int]]:
    """Input -> (paid calls, possibly paid calls, paid calls without a result, expired
    links), as the journal in ``out`` holds them over all runs.  A URL is known by itself,
    a local file as ``sha256:<hex>`` (as the emulator bills an upload); the entries of one
    content (its copies under other names cost nothing) are added up."""
    db = sqlite3.connect(out / ".zuotang" / "journal.sqlite")
    try:
        rows = db.execute(
            "SELECT key, paid_calls, possibly_paid, paid_failures, expired_links FROM entries"
        )
        costs: dict[str, tuple[int, int, int, int]] = {}
        for key, *figures in rows:
            content = key.rsplit("\0", 1)[-1]
            known = costs.get(content, (0, 0, 0, 0))
            costs[content] = tuple(a + b for a, b in zip(known, figures, strict=True))  # type: ignore[assignment]
        return costs
    finally:
        db.close()


def saved_images(out: Path) -> list[Path]:
    """Result files under ``out`` (not the journal, reports or temporary files)."""
    return sorted(
        path
        for path in out.rglob("*")
        if path.is_file() and ".zuotang" not in path.relative_to(out).parts
        if path.suffix.lower() in IMAGE_SUFFIXES
    )


def check_saved(out: Path, rows: Iterable[Mapping[str, str]]) -> list[Path]:
    """Every done / skipped row's file: inside ``out``, distinct, opened by Pillow, of the
    row's dimensions and size. Returns the paths."""
    root = out.resolve()
    paths: list[Path] = []
    for row in rows:
        if row["outcome"] not in ("done", "skipped"):
            continue
        path = Path(row["output"])
        assert path.resolve().is_relative_to(root), (row["output"], root)
        with Image.open(path) as image:
            image.load()
            size = image.size
        assert size == (int(row["width"]), int(row["height"])), row
        assert path.stat().st_size == int(row["result_bytes"]), row
        paths.append(path.resolve())
    assert len(set(paths)) == len(paths), "two inputs share an output file"
    return paths


def snapshot(root: Path, *, skip: Iterable[Path] = ()) -> dict[str, tuple[int, int]]:
    """(size, mtime_ns) of every file under ``root``, except under the ``skip`` folders."""
    skipped = [s.resolve() for s in skip]
    found: dict[str, tuple[int, int]] = {}
    for path in root.rglob("*"):
        resolved = path.resolve()
        if any(resolved.is_relative_to(s) for s in skipped) or not path.is_file():
            continue
        stat = path.stat()
        found[str(path)] = (stat.st_size, stat.st_mtime_ns)
    return found


def png_bytes(
    size: tuple[int, int] = (24, 16), color: tuple[int, int, int] = (200, 40, 90)
) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "PNG")
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------
# A hostile HTTP server


@dataclass(frozen=True)
class Received:
    """One request as the hostile server read it (header names lower-cased)."""

    method: str
    target: str
    headers: dict[str, str]
    body: bytes

    def form(self) -> dict[str, str]:
        if not self.headers.get("content-type", "").startswith("application/x-www-form"):
            return {}
        return dict(parse_qsl(self.body.decode("utf-8", "replace"), keep_blank_values=True))


class Conn:
    """The server side of one connection, for a handler to misbehave on."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stopping: asyncio.Event
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.stopping = stopping

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def head(
        self,
        status: int,
        headers: Mapping[str, str] | None = None,
        *,
        content_length: int | None = None,
        chunked: bool = False,
    ) -> None:
        lines = [f"HTTP/1.1 {status} Hostile", "Connection: close"]
        if chunked:
            lines.append("Transfer-Encoding: chunked")
        elif content_length is not None:
            lines.append(f"Content-Length: {content_length}")
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        await self.send(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    async def reply(
        self,
        status: int,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
        *,
        content_length: int | None = None,
    ) -> None:
        """A whole reply; ``content_length`` may lie about the body."""
        length = len(body) if content_length is None else content_length
        await self.head(status, headers, content_length=length)
        await self.send(body)

    async def chunks(
        self, status: int, pieces: Iterable[bytes], headers: Mapping[str, str] | None = None
    ) -> None:
        """A chunked reply of ``pieces`` (stops quietly when the client hangs up)."""
        await self.head(status, headers, chunked=True)
        for piece in pieces:
            await self.send(b"%x\r\n%s\r\n" % (len(piece), piece))
        await self.send(b"0\r\n\r\n")

    async def hang(self, seconds: float | None = None) -> None:
        """Say nothing until the client hangs up, the server stops or ``seconds`` pass."""
        deadline = None if seconds is None else time.monotonic() + seconds

        async def client_gone() -> None:
            while await self.reader.read(4096):
                pass

        waiters = {
            asyncio.ensure_future(client_gone()),
            asyncio.ensure_future(self.stopping.wait()),
        }
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()


Handler = Callable[[Received, Conn], Awaitable[None]]


class HostileServer:
    """An HTTP/1.1 server on 127.0.0.1 (a free port) in its own thread; one request per
    connection, answered by ``handler`` however badly it likes."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.received: list[Received] = []
        self.errors: list[BaseException] = []
        """Exceptions of the handler itself (a broken test server, not a client bug)."""
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stopping: asyncio.Event | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._thread = threading.Thread(target=self._run, name="hostile-server", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> HostileServer:
        self._thread.start()
        assert self._ready.wait(10), "the hostile server did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        if self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve())
        finally:
            self._loop.close()

    async def _serve(self) -> None:
        self._stopping = asyncio.Event()
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0, limit=1 << 20)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        async with server:
            await self._stopping.wait()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None and self._stopping is not None
        self._tasks.add(task)
        try:
            request = await _read_request(reader)
            self.received.append(request)
            await self.handler(request, Conn(reader, writer, self._stopping))
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # the client hung up: that is its right
        except asyncio.CancelledError:
            pass
        except Exception as exc:
            self.errors.append(exc)
        finally:
            self._tasks.discard(task)
            with contextlib.suppress(Exception):
                writer.close()


async def _read_request(reader: asyncio.StreamReader) -> Received:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length") or 0)
    body = await reader.readexactly(length) if length else b""
    return Received(method, target, headers, body)


@contextlib.contextmanager
def hostile_server(handler: Handler) -> Iterator[HostileServer]:
    with HostileServer(handler) as server:
        yield server
    assert not server.errors, f"the hostile server itself broke: {server.errors!r}"
