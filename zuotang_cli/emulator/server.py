"""Running the emulator: in a background thread (tests) or in the foreground (the CLI)."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any
from urllib.parse import quote

import uvicorn

from zuotang_cli.emulator.app import FILES_PREFIX, create_app
from zuotang_cli.emulator.config import EmulatorConfig
from zuotang_cli.emulator.state import EmulatorState
from zuotang_cli.protocol import rules

__all__ = ["EmulatorConfig", "RunningEmulator", "running_emulator", "serve_forever"]

STARTUP_TIMEOUT = 15.0
GRACEFUL_SHUTDOWN = 3
BROKEN_REPLY_LOG = "ASGI callable returned without completing response."


class _QuietBrokenReplies(logging.Filter):
    """Uvicorn logs an error for each reply cut short; here that is the point."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg != BROKEN_REPLY_LOG


def quiet_broken_replies() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _QuietBrokenReplies) for f in logger.filters):
        logger.addFilter(_QuietBrokenReplies())


class RunningEmulator:
    """An emulator serving from a background thread with its own event loop."""

    def __init__(self, config: EmulatorConfig, host: str, port: int) -> None:
        self.state = EmulatorState(config)
        app = create_app(self.state)
        self._sock = _bind(host, port)
        bound_port = self._sock.getsockname()[1]
        self.url = f"http://{f'[{host}]' if ':' in host else host}:{bound_port}"
        self.endpoint = self.url + rules.SCALE_PATH
        quiet_broken_replies()
        uv_config = uvicorn.Config(
            app,
            log_config=None,
            log_level="warning",
            access_log=False,
            date_header=False,  # the app sends its own, by its clock (--clock-offset)
            lifespan="on",
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN,
        )
        self._server = uvicorn.Server(uv_config)
        self._loop = asyncio.new_event_loop()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="zuotang-emulator", daemon=True)

    def file_url(self, path: str) -> str:
        """URL of ``path`` (relative to the served folder) on the emulator's image host."""
        return f"{self.url}{FILES_PREFIX}/{quote(path.lstrip('/'))}"

    def stats(self) -> dict[str, Any]:
        """The counters, as ``GET /__emulator__/stats`` returns them (also after stop)."""
        if not self._thread.is_alive():
            return self.state.stats.snapshot()

        async def snapshot() -> dict[str, Any]:
            return self.state.stats.snapshot()

        return asyncio.run_coroutine_threadsafe(snapshot(), self._loop).result(timeout=10)

    def expire_links(self) -> int:
        """Expire every result link made so far, as an hour passing would; how many were
        alive (``POST /__emulator__/expire-links`` does the same over HTTP)."""

        async def expire() -> int:
            return self.state.results.expire_all()

        return asyncio.run_coroutine_threadsafe(expire(), self._loop).result(timeout=10)

    def hold_downloads(self, hold: bool = True) -> None:
        """Make result downloads wait (``hold``) or let them go (as ``POST
        /__emulator__/downloads/hold`` and ``.../release``)."""
        flowing = self.state.results.flowing
        self._loop.call_soon_threadsafe(flowing.clear if hold else flowing.set)

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the emulator did not start: {self._failure!r}")
            time.sleep(0.005)

    def stop(self) -> None:
        """Stop serving; calls still waiting are answered at once. Idempotent."""
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self.state.stopping.set)
            self._loop.call_soon_threadsafe(self.state.results.flowing.set)  # held downloads
            self._server.should_exit = True
            self._thread.join(timeout=STARTUP_TIMEOUT)
        self._sock.close()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._server.serve(sockets=[self._sock]))
        except BaseException as exc:  # reported by start(); a thread has nowhere to raise
            self._failure = exc
        finally:
            self._loop.close()


def _bind(host: str, port: int) -> socket.socket:
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return sock


@contextmanager
def running_emulator(
    config: EmulatorConfig | None = None, *, host: str = "127.0.0.1", port: int = 0
) -> Iterator[RunningEmulator]:
    """Serve ``config`` on ``host:port`` (0: a free port) for the ``with`` block.

    Returns once the server is listening; stops it on exit.
    """
    emulator = RunningEmulator(config or EmulatorConfig(), host, port)
    emulator.start()
    try:
        yield emulator
    finally:
        emulator.stop()


def serve_forever(config: EmulatorConfig, *, host: str, port: int) -> int:
    """Serve until SIGINT or SIGTERM; print the URL as one line on stdout once listening."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    handled = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, on_signal) for sig in handled}
    try:
        with running_emulator(config, host=host, port=port) as emulator:
            sys.stdout.write(emulator.url + "\n")
            sys.stdout.flush()
            while not stop.wait(0.5):
                pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
