"""The console script: a stop signal that arrives while the CLI is still importing.

Importing the command line takes a few tenths of a second.  A Ctrl-C in that window used
to raise KeyboardInterrupt inside whichever import was running, and CPython can swallow
it there ("Exception ignored" in an import-lock callback): the run then went ahead and
paid as if nothing had been pressed.  So while the CLI is imported the stop signals are
only recorded; one recorded there ends the process before anything is read or called,
exit 130 (143 for SIGTERM), as a signal before the batch does (docs/architecture.md,
"Errors and exit codes").  From then on the run's own handler takes over
(:mod:`zuotang_cli.app.stop_signals`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from types import FrameType
from typing import Any

_STOP_SIGNALS = tuple(
    sig for sig in (signal.SIGINT, getattr(signal, "SIGTERM", None)) if sig is not None
)

_BATCHES = frozenset({"enhance", "watch"})
"""The commands whose run installs its own handler (after its imports, which a command
imports when it starts: these are imported here, while signals are recorded)."""


def main() -> None:
    """``zuotang``: import the CLI with stop signals recorded, then run it."""
    caught: list[int] = []

    def keep(signum: int, frame: FrameType | None) -> None:
        caught.append(signum)

    previous: dict[int, Any] = {}
    for sig in _STOP_SIGNALS:
        try:
            previous[sig] = signal.signal(sig, keep)
        except (ValueError, OSError):  # not the main thread: nothing to keep
            continue
    try:
        from zuotang_cli.cli.main import main as run
        from zuotang_cli.status import ExitStatus

        if _BATCHES.intersection(sys.argv[1:]):
            import zuotang_cli.cli.run  # noqa: F401  the batch's imports, the heaviest, too
    except BaseException:
        _restore(previous)
        raise
    if caught:
        # Still recording, and out without the interpreter's shutdown, which puts the
        # default handlers back: a second signal cannot kill the exit half-way.
        sigterm = getattr(signal, "SIGTERM", None)
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError, AttributeError):
                stream.flush()
        os._exit(ExitStatus.TERMINATED if sigterm in caught else ExitStatus.INTERRUPTED)
    _restore(previous)
    run()


def _restore(previous: dict[int, Any]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)
