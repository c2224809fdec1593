"""What a run shows on stderr: a live bar on a terminal, plain lines otherwise, or nothing.

Three interchangeable displays (the plain and null ones are what tests and cron see):
``RichDisplay`` for a terminal, ``PlainDisplay`` for pipes and logs, ``NullDisplay`` for
``--quiet``.  stdout is never touched here: it carries results only.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from types import TracebackType
from typing import TYPE_CHECKING, TextIO

from zuotang_cli import reasons
from zuotang_cli.i18n import N_, ngettext
from zuotang_cli.i18n import gettext as _
from zuotang_cli.models import InputItem, Outcome, Record, Row
from zuotang_cli.outputs.report import Summary
from zuotang_cli.sanitize import visible

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID


class Counter:
    """What the display counts: finished inputs by outcome, calls started, time."""

    def __init__(self) -> None:
        self.summary = Summary()
        self.calls = 0
        self.started_at = time.monotonic()

    def add(self, record: Row) -> None:
        self.summary.add(record)

    def line(self) -> str:
        return self.summary.line()

    def status(self, *, seconds: bool = False) -> str:
        """``3 done, 1 failed · 5 calls · 1.20/s`` (and `` · 4 s``), in the active language."""
        calls = ngettext("{n} call", "{n} calls", self.calls).format(n=self.calls)
        parts = [self.line(), calls, f"{self.rate:.2f}/s"]
        if seconds:
            parts.append(f"{self.elapsed:.0f} s")
        return " · ".join(parts)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started_at

    @property
    def rate(self) -> float:
        """Images saved per second so far."""
        elapsed = self.elapsed
        return self.summary.counts[Outcome.DONE] / elapsed if elapsed > 0 else 0.0


PROBLEM_LINES = {
    Outcome.FAILED: N_("failed: {input}: {label}: {reason}"),
    Outcome.INVALID: N_("invalid: {input}: {label}: {reason}"),
    Outcome.NOT_ATTEMPTED: N_("not attempted: {input}: {label}: {reason}"),
}
"""A problem line per outcome: the error class (``label``) stays as the report has it; an
engine's reason is translated when the catalog has it, a server's shown as it came."""


def describe_failure(record: Record) -> str:
    reason = reasons.shown(record.message or record.state_meaning or record.error_class or "")
    label = record.error_class or record.outcome.value
    template = PROBLEM_LINES.get(record.outcome, N_("{outcome}: {input}: {label}: {reason}"))
    return _(template).format(
        outcome=record.outcome.value, input=record.input, label=label, reason=reason
    )


def say(stream: TextIO | None, message: str) -> bool:
    """``zuotang: MESSAGE`` on ``stream`` (stderr) as one line: control characters from
    outside (a server's words, a file name) are shown escaped, never acted on."""
    return write_stderr(stream, f"zuotang: {visible(message)}\n")


def write_stderr(stream: TextIO | None, text: str) -> bool:
    """Write ``text`` to ``stream`` (stderr); False when it is closed or its reader went
    away (``2>&1 | head -1``): a message that cannot be shown never fails an image.  Once
    sys.stderr fails it is swapped for the null device, so exit does not complain."""
    if stream is None:
        return False
    try:
        stream.write(text)
        stream.flush()
    except (OSError, ValueError):  # EPIPE, EBADF, or a closed file object
        if stream is sys.stderr:
            with contextlib.suppress(OSError):
                # lives until exit, like stderr itself
                sys.stderr = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115, PTH123
        return False
    return True


OUTCOME_WORDS = {Outcome.DONE: N_("done"), Outcome.SKIPPED: N_("skipped")}
"""``--verbose``'s word for an input saved or already there."""

MAX_PROBLEM_LINES = 20
"""Per-input problem lines shown without --verbose (a screenful); the rest are counted."""


class NullDisplay:
    """``--quiet``: only errors that end the run are shown."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream: TextIO | None = stream or sys.stderr
        self.counter = Counter()
        self.hidden = 0
        """Problem lines left out (over :data:`MAX_PROBLEM_LINES`)."""
        self._lock = threading.Lock()

    def _write(self, message: str) -> None:
        with self._lock:
            if not say(self.stream, message):
                self.stream = None

    def __enter__(self) -> NullDisplay:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    def started(self, item: InputItem) -> None:
        self.counter.calls += 1

    def record(self, record: Row) -> None:
        self.counter.add(record)

    def log(self, message: str) -> None:
        return None

    @property
    def wants_total(self) -> bool:
        """Whether counting the inputs ahead (for an ETA) is worth it."""
        return False

    def set_total(self, total: int) -> None:
        return None

    def error(self, message: str) -> None:
        self._write(message)

    def print_result(self, stream: TextIO, text: str, *, flush: bool = True) -> None:
        """Write one result (a saved path, a JSON record) to ``stream`` (stdout)."""
        stream.write(text)
        if flush:
            stream.flush()


class PlainDisplay(NullDisplay):
    """Not a terminal: one plain line per problem, at most a screenful of them (every
    image with ``--verbose``), and a progress line every ``stats_interval`` seconds."""

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        verbose: bool = False,
        stats_interval: float = 0.0,
    ) -> None:
        super().__init__(stream)
        self.verbose = verbose
        self.stats_interval = stats_interval
        self._shown = 0
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    def __enter__(self) -> PlainDisplay:
        if self.stats_interval > 0:
            self._ticker = threading.Thread(target=self._tick, name="zuotang-stats", daemon=True)
            self._ticker.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=5)

    def _tick(self) -> None:
        while not self._stop.wait(self.stats_interval):
            counter = self.counter
            self.log(_("progress: {status}").format(status=counter.status(seconds=True)))

    def record(self, record: Row) -> None:
        super().record(record)
        if record.ok:
            if self.verbose:
                done = _(OUTCOME_WORDS.get(record.outcome, record.outcome.value))
                self.log(f"{done}: {record.input} -> {record.output}")
        elif self.verbose:
            self.log(describe_failure(record.full()))
        elif record.outcome is Outcome.NOT_ATTEMPTED:
            pass  # counted, and said once in the summary
        elif self._shown < MAX_PROBLEM_LINES:
            self._shown += 1
            self.log(describe_failure(record.full()))
        else:
            self.hidden += 1

    def log(self, message: str) -> None:
        self._write(message)


class RichDisplay(PlainDisplay):
    """A terminal: a live line of counts, rate and elapsed time; problems printed above."""

    def __init__(self, console: Console, *, verbose: bool = False) -> None:
        super().__init__(sys.stderr, verbose=verbose)
        self.console = console
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._total: int | None = None

    def __enter__(self) -> RichDisplay:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            SpinnerColumn(),
            BarColumn(bar_width=24),
            MofNCompleteColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            TextColumn(_("ETA")),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
        )
        self._progress.start()
        self._task = self._progress.add_task(self._description(), total=self._total)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()

    def _description(self) -> str:
        return self.counter.status()

    def _refresh(self) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(
                self._task, description=self._description(), completed=self.counter.summary.total
            )

    @property
    def wants_total(self) -> bool:
        return True

    def set_total(self, total: int) -> None:
        self._total = total
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, total=total)

    def started(self, item: InputItem) -> None:
        super().started(item)
        self._refresh()

    def record(self, record: Row) -> None:
        super().record(record)
        self._refresh()

    def log(self, message: str) -> None:
        with contextlib.suppress(OSError, ValueError):  # a terminal that went away
            self.console.print(f"zuotang: {visible(message)}", markup=False, highlight=False)

    def error(self, message: str) -> None:
        self.log(message)

    def print_result(self, stream: TextIO, text: str, *, flush: bool = True) -> None:
        """A result for stdout while the live line is on stderr: when both are the
        terminal, the live line is taken down (it is transient: erased), the result
        written, and the line put back below it, so that a saved path is never glued onto
        it (rich's own ``console.print`` would send the result to stderr)."""
        progress = self._progress
        if progress is None or not _isatty(stream):
            super().print_result(stream, text, flush=flush)
            return
        with self._lock:
            progress.stop()
            try:
                stream.write(text)
                stream.flush()
            finally:
                progress.start()


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False
