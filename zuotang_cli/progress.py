"""What a run shows on stderr: a live bar on a terminal, plain lines otherwise, or nothing.

Three interchangeable displays (the plain and null ones are what tests and cron see):
``RichDisplay`` for a terminal, ``PlainDisplay`` for pipes and logs, ``NullDisplay`` for
``--quiet``.  stdout is never touched here: it carries results only.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from types import TracebackType
from typing import TYPE_CHECKING, TextIO

from zuotang_cli.models import InputItem, Outcome, Record
from zuotang_cli.report import Summary

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID


class Counter:
    """What the display counts: finished inputs by outcome, calls started, time."""

    def __init__(self) -> None:
        self.summary = Summary()
        self.calls = 0
        self.started_at = time.monotonic()

    def add(self, record: Record) -> None:
        self.summary.add(record)

    def line(self) -> str:
        return self.summary.line()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started_at

    @property
    def rate(self) -> float:
        """Images saved per second so far."""
        elapsed = self.elapsed
        return self.summary.counts[Outcome.DONE] / elapsed if elapsed > 0 else 0.0


def describe_failure(record: Record) -> str:
    reason = record.message or record.state_meaning or record.error_class or ""
    label = record.error_class or record.outcome.value
    return f"{record.outcome.value}: {record.input}: {label}: {reason}"


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


class NullDisplay:
    """``--quiet``: only errors that end the run are shown."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream: TextIO | None = stream or sys.stderr
        self.counter = Counter()

    def _write(self, message: str) -> None:
        if not write_stderr(self.stream, f"zuotang: {message}\n"):
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

    def record(self, record: Record) -> None:
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


class PlainDisplay(NullDisplay):
    """Not a terminal: one plain line per problem (and per image with ``--verbose``)."""

    def __init__(self, stream: TextIO | None = None, *, verbose: bool = False) -> None:
        super().__init__(stream)
        self.verbose = verbose

    def record(self, record: Record) -> None:
        super().record(record)
        if not record.ok:
            self.log(describe_failure(record))
        elif self.verbose:
            self.log(f"{record.outcome.value}: {record.input} -> {record.output}")

    def log(self, message: str) -> None:
        self._write(message)


class RichDisplay(PlainDisplay):
    """A terminal: a live line of counts, rate and elapsed time; problems printed above."""

    def __init__(self, console: Console, *, verbose: bool = False) -> None:
        super().__init__(verbose=verbose)
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
            TextColumn("ETA"),
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
        counter = self.counter
        return f"{counter.line()} · {counter.calls} calls · {counter.rate:.2f}/s"

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

    def record(self, record: Record) -> None:
        super().record(record)
        self._refresh()

    def log(self, message: str) -> None:
        with contextlib.suppress(OSError, ValueError):  # a terminal that went away
            self.console.print(f"zuotang: {message}", markup=False, highlight=False)
