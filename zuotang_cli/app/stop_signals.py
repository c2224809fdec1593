"""Ctrl-C (SIGINT) and SIGTERM over the whole of one ``zuotang enhance``.

One Python-level handler from the start of the run to its end, on every OS (no
``loop.add_signal_handler``: Windows' loops have none, and on POSIX the loop removes its
handlers, putting back the defaults, as it closes, which left the run's teardown open to
a bare KeyboardInterrupt or an instant death).  What a signal does depends on where the
run is:

- **before the batch** (settings, ``--wait-lock``, the journal): it raises
  KeyboardInterrupt in the main thread, which breaks any wait; nothing has been read or
  paid for yet, and the run exits 130 (143 for SIGTERM);
- **from** :meth:`StopSignals.hold` (the reports are open) **until the batch runs**: it
  is kept, and handed to the batch as soon as it starts, so every input read gets its row;
- **while the batch runs**: it is handed to the event loop
  (``call_soon_threadsafe``), which calls the batch's handler, in order;
- **after**: it is kept; the run's summary is printed and the exit status says it.

The handler itself only records the signal and wakes the loop: it writes nothing and
takes no lock, so a signal arriving in the middle of a write to stderr or a report can
never make that write re-enter itself (which is how CPython ends up with "Fatal Python
error: _enter_buffered_busy").
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any

from zuotang_cli.status import ExitStatus

SIGTERM: int | None = getattr(signal, "SIGTERM", None)
STOP_SIGNALS = tuple(sig for sig in (signal.SIGINT, SIGTERM) if sig is not None)


class StopRequested(KeyboardInterrupt):
    """A stop signal before the batch started (SIGTERM included)."""


class StopSignals:
    """The run's handler of SIGINT and SIGTERM (see the module); ``with`` installs it
    (main thread only: elsewhere it does nothing) and puts the previous handlers back."""

    def __init__(self) -> None:
        self.received: list[int] = []
        """Every stop signal so far, in order."""
        self._delivered = 0
        self._raising = True
        self._loop: asyncio.AbstractEventLoop | None = None
        self._on_signal: Callable[[int], None] | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        for sig in STOP_SIGNALS:
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except (ValueError, OSError):  # not the main thread, or not a signal here
                continue
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.detach()
        for sig, previous in self._previous.items():
            with contextlib.suppress(ValueError, OSError, TypeError):
                signal.signal(sig, previous)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.received.append(signum)  # atomic; nothing else that could block or re-enter
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop just closed: kept anyway
                loop.call_soon_threadsafe(self._deliver)
            return
        if self._raising:
            raise StopRequested

    def hold(self) -> None:
        """From now on a signal is kept for the batch instead of raising."""
        self._raising = False

    def attach(self, loop: asyncio.AbstractEventLoop, on_signal: Callable[[int], None]) -> None:
        """Hand every signal, those kept so far first, to ``on_signal`` on ``loop``."""
        self._raising = False
        self._on_signal = on_signal
        self._loop = loop
        loop.call_soon(self._deliver)

    def detach(self) -> None:
        """The batch's loop is ending: keep the signals from now on."""
        self._loop = None
        self._on_signal = None

    def _deliver(self) -> None:
        """In the loop: each signal not yet handed over, in order (called once or more
        per signal: it hands each one over once)."""
        while self._on_signal is not None and self._delivered < len(self.received):
            signum = self.received[self._delivered]
            self._delivered += 1
            self._on_signal(signum)

    @property
    def terminated(self) -> bool:
        return SIGTERM is not None and SIGTERM in self.received

    def exit_status(self, status: ExitStatus) -> ExitStatus:
        """``status``, unless a signal came: then 143 for SIGTERM, else 130."""
        if self.terminated:
            return ExitStatus.TERMINATED
        if self.received:
            return ExitStatus.INTERRUPTED
        return status
