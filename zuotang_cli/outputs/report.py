"""The per-image report: CSV, JSON or JSON Lines, written row by row as the batch goes.

Every row is flushed to the OS as soon as it is written, so a crash keeps every finished
row. A ``.json`` report is an array: ``[`` at open, rows joined by ``,\\n``, ``]`` at close;
after a crash it is an unterminated array, which :func:`read_report` still reads.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO, TypeVar

from zuotang_cli.cells import QUOTING, csv_cell, quoted_cell
from zuotang_cli.errors import LocalError, UsageError
from zuotang_cli.i18n import N_
from zuotang_cli.i18n import gettext as _
from zuotang_cli.models import REPORT_FIELDS, DoneRow, Outcome, Record, Row
from zuotang_cli.sanitize import from_spreadsheet_cell, json_text

FORMATS = (".csv", ".json", ".jsonl")


def report_format(path: Path) -> str:
    """The report format of ``path`` from its suffix (``.csv``...), or :class:`UsageError`."""
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        shown = suffix or "(none)"
        raise UsageError(
            _("unsupported report format '{suffix}': use .csv, .json or .jsonl").format(
                suffix=shown
            )
        )
    return suffix


_C = TypeVar("_C", bound="_Closing")


class _Closing:
    """``with`` closes it."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self: _C) -> _C:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class ReportWriter(_Closing):
    """Writes report rows to a text stream, one flushed row at a time. Subclasses format."""

    def __init__(self, stream: TextIO, path: Path | None = None, *, owned: bool = True) -> None:
        self.stream = stream
        self.path = path
        self.owned = owned
        """Close the stream with the report (not when it is stdout)."""
        self.closed = False
        self._start()
        self.stream.flush()

    def write(self, row: Row, *, flush: bool = True) -> None:
        self._row(row.full())
        if flush:
            self.stream.flush()

    def flush(self) -> None:
        if not self.closed:
            self.stream.flush()

    def close(self) -> None:
        """Finish the report (``]`` of a JSON array) and close the stream."""
        if not self.closed:
            self._end()
            self.abandon()

    def abandon(self) -> None:
        """Close the stream without finishing the report (a duplicate of another writer)."""
        if not self.closed:
            self.closed = True
            if self.owned:
                self.stream.close()

    def _start(self) -> None:
        """Written at open (a header)."""

    def _row(self, record: Record) -> None:
        raise NotImplementedError

    def _end(self) -> None:
        """Written at close (a terminator)."""


class CsvReportWriter(ReportWriter):
    """A header line, then one line per row, made to be opened in a spreadsheet.

    Every text cell is quoted (so no separator inside it, a comma or the semicolon some
    locales use, can start a new cell), shown with its control characters escaped (one
    row is one line, whatever the server said), and starts with ``'`` when it would
    otherwise start a formula (``=``, ``+``, ``-``, ``@``: OWASP's rule against CSV
    injection); :func:`read_report` takes that quote off again.  Numbers stay numbers;
    None is an empty cell.  JSON reports keep the exact text.
    """

    def _start(self) -> None:
        self._message = self._message_cell = ""
        self._spec: tuple[str, str] = ("", "")
        self._spec_cells = '"",""'
        self._csv = csv.writer(self.stream, lineterminator="\r\n", quoting=QUOTING)
        self._csv.writerow(REPORT_FIELDS)

    def _row(self, record: Record) -> None:
        self._csv.writerow([csv_cell(value) for value in record.as_row()])

    def write(self, row: Row, *, flush: bool = True) -> None:
        if type(row) is DoneRow:  # its stored cells as they are: no record decoded
            status, ids, figures = row.cells.split("\0")
            if row.message is not self._message:  # the same few messages, row after row
                self._message, self._message_cell = row.message, quoted_cell(row.message)
            self.stream.write(
                f'{quoted_cell(row.input)},"skipped",{quoted_cell(row.output)},{status},'
                f'{self._message_cell},{ids},0,"",{figures},0,"",'
                f"{quoted_cell(row.type)},{quoted_cell(row.scale)}\r\n"
            )
            if flush:
                self.stream.flush()
            return
        super().write(row, flush=flush)


class JsonLinesReportWriter(ReportWriter):
    """One JSON object per line; types kept (None is null)."""

    def _row(self, record: Record) -> None:
        self.stream.write(_dumps(record.as_dict()) + "\n")


class JsonReportWriter(ReportWriter):
    """A JSON array, one object per line; unterminated until :meth:`close`."""

    def _start(self) -> None:
        self.stream.write("[")
        self._separator = "\n"

    def _row(self, record: Record) -> None:
        self.stream.write(self._separator + _dumps(record.as_dict()))
        self._separator = ",\n"

    def _end(self) -> None:
        self.stream.write("\n]\n")


_WRITERS: dict[str, type[ReportWriter]] = {
    ".csv": CsvReportWriter,
    ".json": JsonReportWriter,
    ".jsonl": JsonLinesReportWriter,
}


def _dumps(row: dict[str, Any]) -> str:
    return json_text(row)


def open_report(path: Path) -> ReportWriter:
    """A writer for ``path`` (created with its folders, truncated), its format by suffix.

    Raises :class:`UsageError` for an unknown suffix or a path that cannot be written.
    """
    writer_class = _WRITERS[report_format(path)]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        stream = path.open("w", encoding="utf-8", newline="")
    except OSError as exc:
        raise UsageError(
            _("cannot write report {path}: {reason}").format(path=path, reason=exc.strerror or exc)
        ) from exc
    return writer_class(stream, path)


def stream_report(fmt: str, stream: TextIO) -> ReportWriter:
    """A writer of format ``fmt`` (``csv``, ``json`` or ``jsonl``) on an open stream that
    stays open (e.g. stdout)."""
    try:
        writer_class = _WRITERS[f".{fmt}"]
    except KeyError:
        raise UsageError(
            _("unsupported report format '{suffix}': use csv, json or jsonl").format(suffix=fmt)
        ) from None
    return writer_class(stream, owned=False)


class ReportSet(_Closing):
    """The same rows to several writers; writers on one same file write once (the first).

    A writer that fails (its disk full) is dropped and the others keep every row: a report
    on a disk with room stays whole.  ``on_lost`` is told of each writer dropped (the batch
    halts on it); without it, the failure raises :class:`LocalError`.
    """

    def __init__(
        self,
        writers: Sequence[ReportWriter],
        on_lost: Callable[[str], None] | None = None,
    ) -> None:
        self.on_lost = on_lost
        self.lost: list[str] = []
        """Why each dropped writer failed, e.g. ``the report out/report.csv failed: ...``."""
        self.writers: list[ReportWriter] = []
        seen: set[tuple[int, int]] = set()
        for writer in writers:
            identity = _file_identity(writer)
            if identity is not None and identity in seen:
                writer.abandon()
                continue
            if identity is not None:
                seen.add(identity)
            self.writers.append(writer)

    @classmethod
    def open(cls, paths: Iterable[Path]) -> ReportSet:
        """Open every path once (all checked first, so a bad suffix opens nothing)."""
        paths = list(dict.fromkeys(path.resolve() for path in paths))
        for path in paths:
            report_format(path)
        writers: list[ReportWriter] = []
        try:
            for path in paths:
                writers.append(open_report(path))
        except BaseException:
            for writer in writers:
                writer.close()
            raise
        return cls(writers)

    def write(self, row: Row, *, flush: bool = True) -> None:
        # _each's loop, without its copy and closure: this runs once a row of a re-run
        failed: list[tuple[ReportWriter, OSError]] = []
        for writer in self.writers:
            try:
                writer.write(row, flush=flush)
            except OSError as exc:
                failed.append((writer, exc))
        for writer, error in failed:
            self._drop(writer, error)

    def flush(self) -> None:
        self._each(ReportWriter.flush)

    def close(self) -> None:
        self._each(ReportWriter.close)

    def _each(self, action: Callable[[ReportWriter], None]) -> None:
        """``action`` on every writer; one that fails is dropped (see the class)."""
        for writer in list(self.writers):
            try:
                action(writer)
            except OSError as exc:
                self._drop(writer, exc)

    def _drop(self, writer: ReportWriter, exc: OSError) -> None:
        self.writers.remove(writer)
        with contextlib.suppress(OSError):  # its buffer cannot be written either
            writer.abandon()
        where = writer.path if writer.path is not None else "stream"
        message = f"the report {where} failed: {exc.strerror or exc}"
        self.lost.append(message)
        if self.on_lost is None:
            raise LocalError(message) from exc
        self.on_lost(message)


def _file_identity(writer: ReportWriter) -> tuple[int, int] | None:
    """(device, inode) of the writer's open file, so links and spellings of it compare equal."""
    try:
        info = os.fstat(writer.stream.fileno())
    except (OSError, ValueError):  # not a real file (e.g. io.StringIO)
        return None
    return info.st_dev, info.st_ino


def read_report(path: Path) -> list[dict[str, Any]]:
    """The rows of a report (CSV cells as strings, '' for none), for tests and tools.

    An unterminated JSON array (a crashed run) is read as if closed.
    """
    suffix = report_format(path)
    if suffix == ".csv":
        with path.open(encoding="utf-8", newline="") as stream:
            return [
                {name: from_spreadsheet_cell(cell) for name, cell in row.items()}
                for row in csv.DictReader(stream)
            ]
    text = path.read_text(encoding="utf-8")
    if suffix == ".jsonl":  # split on \n only: rows may hold U+2028 unescaped
        return [json.loads(line) for line in text.split("\n") if line.strip()]
    return _read_json_array(text)


def _read_json_array(text: str) -> list[dict[str, Any]]:
    try:
        rows: list[dict[str, Any]] = json.loads(text)
    except json.JSONDecodeError:
        rows = json.loads(text.rstrip().removesuffix(",") + "\n]")
    return rows


@dataclass
class Summary:
    """Counts of outcomes, for the run's last line."""

    counts: Counter[Outcome] = field(default_factory=Counter)

    def add(self, record: Row) -> None:
        self.counts[record.outcome] += 1

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def line(self) -> str:
        """E.g. ``12 done, 1 skipped, 2 failed``: zero counts left out, except done (human
        text, in the active language)."""
        parts = [
            counted(outcome, self.counts[outcome])
            for outcome in Outcome
            if outcome is Outcome.DONE or self.counts[outcome]
        ]
        return _(", ").join(parts)


OUTCOME_COUNTS = {
    Outcome.DONE: N_("{n} done"),
    Outcome.SKIPPED: N_("{n} skipped"),
    Outcome.FAILED: N_("{n} failed"),
    Outcome.INVALID: N_("{n} invalid"),
    Outcome.NOT_ATTEMPTED: N_("{n} not attempted"),
}
"""How a count of each outcome reads to a person (the outcome words of the reports and
the JSON stay English)."""


def counted(outcome: Outcome, n: int) -> str:
    """``12 done`` in the active language."""
    return _(OUTCOME_COUNTS[outcome]).format(n=n)


def summary_by_reason(reasons: Iterable[str]) -> str:
    """``state-7 3, link-expired 1``: the most common first."""
    counts = Counter(reasons)
    return ", ".join(f"{reason} {n}" for reason, n in counts.most_common())


def summarize(records: Iterable[Record]) -> Summary:
    summary = Summary()
    for record in records:
        summary.add(record)
    return summary
