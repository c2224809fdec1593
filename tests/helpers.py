"""What every test module shares: the CLI in a subprocess (to its end or in the
background), lists of URLs, the report's rows, waiting for a condition; and the batch run
in process against scripted replies (``httpx.MockTransport``).

Plain functions, not fixtures: each takes arguments of its own and is called from other
helpers too (``tests/reliability/support.py`` builds its checked runs on :func:`start`),
where a fixture would have to be threaded through every signature in between.
``conftest.py`` has pytest rewrite the asserts in here, so a failing one says what it saw.

The runs inherit this process's environment, where the autouse ``isolated_config``
fixture (conftest.py) has removed every setting's ``ZUOTANG_*`` variable and pointed the
config file at a temporary folder of the test's own.
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
from PIL import Image

from zuotang_cli.engine.batch import Batch, BatchConfig, BatchResult
from zuotang_cli.models import InputItem, InputKind, Record
from zuotang_cli.protocol.api import CallSpec
from zuotang_cli.store.journal import Journal

APPCODE = "e2e-SECRET-appcode-4242"
"""The AppCode of the tests' runs: recognizable, so a leak of it is easy to find."""
MODULE = ("-m", "zuotang_cli")
"""How the interpreter is told to run zuotang (``python -m zuotang_cli ARGS``)."""
TIMEOUT = 120.0
"""Seconds a run may take before the test fails (as pytest-timeout's default)."""

Env = Mapping[str, "str | None"]
"""Variables to set for a run; ``None`` removes one that this process has."""


def run_env(env: Env | None = None) -> dict[str, str]:
    """This process's environment with ``env`` applied."""
    merged = dict(os.environ)
    for name, value in (env or {}).items():
        if value is None:
            merged.pop(name, None)
        else:
            merged[name] = value
    return merged


def enhance_env(endpoint: str | None, appcode: str | None = APPCODE) -> dict[str, str | None]:
    """The variables of a run against ``endpoint`` with ``appcode`` (``None``: not set)."""
    return {"ZUOTANG_ENDPOINT": endpoint, "ZUOTANG_APPCODE": appcode}


def cli(
    *args: str,
    stdin: str | None = "",
    env: Env | None = None,
    cwd: Path | None = None,
    timeout: float = TIMEOUT,
    entry: Sequence[str] = MODULE,
) -> subprocess.CompletedProcess[str]:
    """``zuotang ARGS`` (any command) run to its end, its streams captured as text.

    stdin is empty unless given, so no run waits on (or reads) the terminal of whoever
    started the tests; ``entry`` replaces ``-m zuotang_cli`` (``("-c", code)``).
    """
    return subprocess.run(
        [sys.executable, *entry, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=run_env(env),
        cwd=cwd,
        timeout=timeout,
    )


def zuotang(
    *args: str,
    endpoint: str | None,
    appcode: str | None = APPCODE,
    stdin: str | None = "",
    env: Env | None = None,
    timeout: float = TIMEOUT,
) -> subprocess.CompletedProcess[str]:
    """``zuotang enhance ARGS`` against ``endpoint``, run to its end."""
    variables = {**enhance_env(endpoint, appcode), **(env or {})}
    return cli("enhance", *args, stdin=stdin, env=variables, timeout=timeout)


def enhance(
    emu: Any, *args: str, qps: int = 50, endpoint: str | None = None, **run: Any
) -> subprocess.CompletedProcess[str]:
    """``zuotang enhance ARGS --qps QPS`` against the emulator ``emu`` (or ``endpoint``),
    run to its end; ``run``: :func:`zuotang`'s other keywords.  ``--qps`` comes last, so
    it wins over one in ``args``."""
    return zuotang(*args, "--qps", str(qps), endpoint=endpoint or emu.endpoint, **run)


def start(
    *args: str,
    env: Env | None = None,
    entry: Sequence[str] = MODULE,
    text: bool = True,
    stdin: Any = subprocess.DEVNULL,
    stdout: Any = subprocess.PIPE,
    stderr: Any = subprocess.PIPE,
    **popen: Any,
) -> subprocess.Popen[Any]:
    """``zuotang ARGS`` (any command) started in the background; stdin empty (the null
    device) and stdout, stderr piped unless told otherwise; ``popen``: more of Popen's
    keywords (``cwd``, ``preexec_fn``)."""
    return subprocess.Popen(
        [sys.executable, *entry, *args],
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
        text=text,
        env=run_env(env),
        **popen,
    )


def start_zuotang(
    *args: str,
    endpoint: str | None,
    appcode: str | None = APPCODE,
    env: Env | None = None,
    **popen: Any,
) -> subprocess.Popen[Any]:
    """``zuotang enhance ARGS`` against ``endpoint`` in the background (see :func:`start`)."""
    variables = {**enhance_env(endpoint, appcode), **(env or {})}
    return start("enhance", *args, env=variables, **popen)


def first_ctrl_c_taken(proc: subprocess.Popen[str]) -> str:
    """Read the stderr of a run started by :func:`start` (text, stderr piped) until it
    says it took a first Ctrl-C ("interrupted: finishing the calls in flight"), so a
    second one is a second one; what it read."""
    assert proc.stderr is not None
    said = ""
    while "interrupted: " not in said:
        line = proc.stderr.readline()
        assert line, f"stderr ended before the run took the Ctrl-C: {said[-2000:]}"
        said += line
    return said


def zuotang_report(out: Path, *args: str) -> str:
    """What ``zuotang report OUT -q ARGS`` prints (it must succeed)."""
    proc = cli("report", str(out), "-q", *args)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def urls(emu: Any, n: int, *, stem: str = "i") -> list[str]:
    """``n`` URLs ``{stem}0.png``... on the emulator's image host: for a ``cheap``
    emulator, which answers without fetching them."""
    return [emu.file_url(f"{stem}{i}.png") for i in range(n)]


def url_list(
    tmp_path: Path,
    emu: Any,
    n: int,
    *,
    samples: Sequence[str] = (),
    name: str = "urls.txt",
) -> Path:
    """A list file of ``n`` URLs: :func:`urls`, or the real images ``samples`` (served by
    the emulator) in turn, each made a distinct input by a query (``?n=0``...)."""
    if samples:
        lines = [f"{emu.file_url(samples[i % len(samples)])}?n={i}" for i in range(n)]
    else:
        lines = urls(emu, n)
    return write_list(tmp_path / name, lines)


def write_list(path: Path, lines: Iterable[str]) -> Path:
    """A list file: ``lines``, one a line."""
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def report_rows(out: Path, name: str = "report.csv") -> list[dict[str, str]]:
    """The rows of the CSV report ``name`` in ``out``."""
    with (out / name).open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def wait_until(condition: Callable[[], object], timeout: float, interval: float = 0.02) -> None:
    """Poll ``condition`` every ``interval`` seconds until it holds; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not reached within {timeout} s"
        time.sleep(interval)


# -- the batch in process, against scripted replies (httpx.MockTransport) ----------------

ENDPOINT = "https://api.test/tasks/visual/scale"


def png(size: tuple[int, int] = (40, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (10, 120, 200)).save(buf, "PNG")
    return buf.getvalue()


def ok(image: str = "https://cdn.test/r/1.png") -> httpx.Response:
    data = {"state": 1, "progress": 100, "task_id": "t", "image": image, "return_type": 1}
    return httpx.Response(200, json={"status": 200, "message": "success", "data": data})


def state(value: int) -> httpx.Response:
    data = {"state": value, "progress": 0, "task_id": "t", "image": ""}
    return httpx.Response(200, json={"status": 200, "message": "failed", "data": data})


def url_items(n: int) -> list[InputItem]:
    """``n`` URL inputs (``https://img.test/0.jpg``...) as the reader makes them."""
    return [
        InputItem(i, f"https://img.test/{i}.jpg", InputKind.URL, url=f"https://img.test/{i}.jpg")
        for i in range(n)
    ]


async def aiter(items: list[InputItem]) -> AsyncIterator[list[InputItem]]:
    """The inputs as the batch reads them: in lists (here, of one)."""
    for item in items:
        yield [item]


class Server:
    """Scripted replies for the scale endpoint; result downloads served from `results`."""

    def __init__(self, replies: Callable[[int, httpx.Request], httpx.Response]) -> None:
        self.replies = replies
        self.calls = 0
        self.downloads = 0
        self.heads = 0
        """Ranged GETs of a source's header (its metadata), apart from result downloads."""
        self.results: dict[str, Callable[[], httpx.Response]] = {}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/tasks/visual/scale":
            self.calls += 1
            return self.replies(self.calls, request)
        if "range" in request.headers:
            self.heads += 1
            return httpx.Response(404)
        self.downloads += 1
        make = self.results.get(request.url.path)
        return make() if make else httpx.Response(200, content=png())


def run_batch(
    tmp_path: Path,
    server: Server,
    items: list[InputItem],
    notices: list[str] | None = None,
    **config: object,
) -> tuple[BatchResult, list[Record]]:
    """A batch of ``items`` against ``server``, its journal and results in ``tmp_path``:
    fast backoff, throttle pause and polls; ``config``: more of BatchConfig."""
    records: list[Record] = []
    cfg = BatchConfig(
        spec=config.pop("spec", CallSpec(ENDPOINT, "APPCODE-XYZ", "clean", None)),  # type: ignore[arg-type]
        output_dir=tmp_path,
        qps=config.pop("qps", 200.0),  # type: ignore[arg-type]
        backoff=0.01,
        throttle_pause=0.05,
        poll_interval=0.01,
        **config,  # type: ignore[arg-type]
    )
    with Journal.open(tmp_path) as journal:
        batch = Batch(
            cfg,
            records.append,
            journal,
            transport=httpx.MockTransport(server),
            notice=None if notices is None else notices.append,
        )
        result = asyncio.run(batch.run(aiter(items)))
    return result, records
