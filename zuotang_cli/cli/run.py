"""``zuotang enhance`` on a terminal, in a pipe or in cron: the session run under the stop
signals, its rows to the reports and stdout, its progress and summary on stderr; and
``--dry-run``'s plan.  The work is the session's (:mod:`zuotang_cli.app.session`)."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import io
import os
import stat
import sys
import threading
import urllib.parse
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import BinaryIO, NoReturn, TextIO

from zuotang_cli.app.options import EnhanceOptions, WatchOptions
from zuotang_cli.app.session import Session
from zuotang_cli.app.stop_signals import SIGTERM, StopSignals
from zuotang_cli.cli.progress import NullDisplay, PlainDisplay, RichDisplay, write_stderr
from zuotang_cli.cli.summary import Tally, halt_line, summarize
from zuotang_cli.engine.batch import BatchResult
from zuotang_cli.engine.pump import aiter_in_thread
from zuotang_cli.i18n import N_, ngettext
from zuotang_cli.i18n import gettext as _
from zuotang_cli.inputs.scan import ScanTally
from zuotang_cli.inputs.watch import Watcher
from zuotang_cli.models import InputItem, Row
from zuotang_cli.outputs.report import ReportSet
from zuotang_cli.protocol import preflight
from zuotang_cli.protocol.rules import Billing
from zuotang_cli.sanitize import json_text, visible
from zuotang_cli.status import ExitStatus
from zuotang_cli.store.journal import Journal
from zuotang_cli.store.layout import Layout
from zuotang_cli.store.planner import Action

JSON_SCHEMA_VERSION = 1
"""The ``schema`` of every JSON record ``--json`` prints (fields are only ever added)."""


def _is_loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


class Emitter:
    """The batch's sink: report rows, stdout results, display updates, in that order.

    Rows and results are flushed once the loop has a moment (at the latest when the
    batch's next await lets it run), not one by one: a re-run emits a done list's rows
    tens of thousands a second, and a flush each would be most of its time.  Results for
    stdout wait in a list until then, so they make one write, even when stdout is
    unbuffered (``PYTHONUNBUFFERED``, ``python -u``)."""

    def __init__(
        self,
        reports: ReportSet,
        stdout: TextIO,
        display: NullDisplay,
        *,
        json_out: bool = False,
        print0: bool = False,
    ) -> None:
        self.reports = reports
        self.stdout: TextIO | None = stdout
        self.display = display
        self.json = json_out
        self.end = "\0" if print0 else "\n"
        self.tally = Tally()
        self._flush_due = False
        self._results: list[str] = []
        """Lines for stdout not written yet."""

    def __call__(self, record: Row) -> None:
        self.reports.write(record, flush=False)
        self._print(record)
        self.tally.add(record)
        self.display.record(record)
        if not self._flush_due:
            self._flush_due = True
            try:
                asyncio.get_running_loop().call_soon(self.flush)
            except RuntimeError:  # not in the loop: at once
                self.flush()

    def flush(self) -> None:
        self._flush_due = False
        self.reports.flush()
        results, self._results = self._results, []
        if self.stdout is None:
            return
        try:
            if results:
                self.display.print_result(self.stdout, "".join(results), flush=False)
            self.stdout.flush()
        except BrokenPipeError:
            self._lose_stdout()

    def _print(self, record: Row) -> None:
        if self.stdout is None:
            return
        if self.json:
            line = json_text({"schema": JSON_SCHEMA_VERSION, **record.full().as_dict()})
        elif record.ok and record.output and not record.extra.get("unlisted"):
            line = record.output
        else:
            return
        self._results.append(line + self.end)

    def _lose_stdout(self) -> None:
        """The reader went away (e.g. ``| head``): keep working, stop printing."""
        self.stdout = None
        with contextlib.suppress(OSError):
            # lives until exit, like stdout itself
            sys.stdout = Path(os.devnull).open("w", encoding="utf-8")  # noqa: SIM115


def _display(options: EnhanceOptions) -> NullDisplay:
    if options.quiet or sys.stderr is None:  # None: started with stderr closed
        return NullDisplay()
    if sys.stderr.isatty():
        from rich.console import Console

        return RichDisplay(Console(stderr=True), verbose=options.verbose)
    return PlainDisplay(verbose=options.verbose, stats_interval=options.stats_interval)


def run_enhance(
    options: EnhanceOptions,
    *,
    stdin: BinaryIO,
    stdout: TextIO,
    exit_on_signal: bool = False,
    watch: WatchOptions | None = None,
) -> ExitStatus:
    """Run one ``enhance`` (with ``watch``: one ``watch``, its folders watched until a stop
    signal, or with ``--once`` until what they hold is done) and return its exit status.
    Raises UsageError before any call.

    Ctrl-C and SIGTERM are handled over the whole run (:mod:`zuotang_cli.app.stop_signals`):
    any of them ends it with 130 (143 for SIGTERM), the report complete for every input
    read.  ``exit_on_signal`` (the command line): after a signal, the process exits here,
    its streams flushed, without the interpreter's shutdown, during which a further
    signal would kill it mid-way (its handlers are reset by then) and a thread still
    blocked on a FIFO or a stdin could hold a lock the shutdown needs."""
    with StopSignals() as signals:
        try:
            status = _enhance(options, stdin, stdout, signals, watch)
        except KeyboardInterrupt:  # before the batch: nothing read, nothing paid
            signals.hold()
            status = ExitStatus.INTERRUPTED
        signals.hold()  # on the way out: a signal now only sets the exit status
        status = signals.exit_status(status)
        if exit_on_signal and signals.received:
            _exit_now(status, stdout)
        return status


def _exit_now(status: ExitStatus, stdout: TextIO) -> NoReturn:
    for stream in (stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            stream.flush()
    os._exit(status)


def _enhance(
    options: EnhanceOptions,
    stdin: BinaryIO,
    stdout: TextIO,
    signals: StopSignals,
    watch: WatchOptions | None = None,
) -> ExitStatus:
    session = Session.prepare(options, watch)
    if options.dry_run:
        return dry_run(session, stdin=stdin, stdout=stdout)
    output_dir, endpoint = session.config.output_dir, session.config.spec.endpoint
    report_paths = [Layout(output_dir).report]
    if options.report is not None:
        report_paths.append(options.report)
    display = _display(options)
    host = urllib.parse.urlsplit(endpoint).hostname or ""
    signed = session.config.spec.signed  # the AppSecret never travels
    if endpoint.startswith("http://") and not _is_loopback(host) and not signed:
        display.error(_("warning: --endpoint is plain http: the AppCode travels unencrypted"))
    if session.note is not None:
        display.error(_("note: {note}").format(note=_(session.note)))
    scan = ScanTally()
    if watch is None:
        feed: AsyncIterator[list[InputItem]] = aiter_in_thread(session.inputs(stdin, scan))
        if display.wants_total and all(_read_twice_safely(source) for source in options.inputs):
            count_inputs_ahead(session, display)
        if "-" in options.inputs and _isatty(stdin):
            display.error(_("reading the list of inputs from stdin (one a line; end with Ctrl-D)"))
    with (
        session.opened() as journal,
        ReportSet.open(report_paths) as reports,
        display,
    ):
        signals.hold()  # the reports are open: a signal now gets every input its row
        emitter = Emitter(reports, stdout, display, json_out=options.json, print0=options.print0)
        sink: Callable[[Row], None] = emitter
        watcher = None
        if watch is not None:
            watcher = session.watcher()
            feed, sink = watcher, _watching(session, watcher, emitter, display)
        result = _run_batch(session, journal, feed, emitter, display, signals, sink)
        emitter.flush()
    if signals.received:  # also one that came as the batch ended: the summary says so
        result.interrupted = True
        result.terminated = result.terminated or signals.terminated
    summary = summarize(
        result,
        emitter.tally,
        calls=display.counter.calls,
        elapsed=display.counter.elapsed,
        report=report_paths[0],
        billing=options.billing,
        skipped_files=scan.counts(),
        hidden_lines=display.hidden,
    )
    if options.verbose:
        for reason, path in scan.skipped:
            display.log(_("not taken: {path}: {reason}").format(path=path, reason=_(reason)))
    for hint in scan.hints():
        display.log(_("hint: {hint}").format(hint=hint))
    for line in summary.lines():
        display.log(line)
    if options.gallery:
        from zuotang_cli.outputs.gallery import gallery_from_report

        display.log(_("gallery: {path}").format(path=gallery_from_report(output_dir)))
    if result.scale_not_applied:
        note = preflight.scale_note(options.scale, result.scale_not_applied)
        display.log(_("warning: {note}").format(note=note))
    if result.factor_uncertain:
        display.log(
            _("note: {note}").format(note=preflight.uncertain_note(result.factor_uncertain))
        )
    if result.halt is not None:
        display.error(halt_line(result.halt))  # the first and the last thing said
    if options.summary_json is not None:
        summary.write_json(options.summary_json)
    if options.json:
        write_stderr(sys.stderr, summary.json() + "\n")
    if watcher is not None and watcher.failure is not None:
        display.error(
            _("stopped watching: {reason}; try again once it is back").format(
                reason=watcher.failure
            )
        )
        return max(result.exit_status, ExitStatus.TROUBLE)
    return result.exit_status


def _watching(
    session: Session, watcher: Watcher, emitter: Emitter, display: NullDisplay
) -> Callable[[Row], None]:
    """Say what is watched; the batch's sink, which also moves each done original out of
    the inbox (``--move-done``)."""
    watch = session.watch
    assert watch is not None
    mover = session.mover(watcher, display.error)
    folders = ", ".join(str(root) for root in watcher.roots)
    how = _("what is there, then ends") if watch.once else _("until Ctrl-C or SIGTERM")
    display.log(
        _(
            "watching {folders} ({how_seen}; a file is taken once unchanged for {settle} s): "
            "{until}"
        ).format(
            folders=folders,
            how_seen=_("polled") if watch.poll else _("events"),
            settle=f"{watch.settle:g}",
            until=how,
        )
    )
    if mover is None:
        return emitter

    def sink(row: Row) -> None:
        emitter(row)
        mover(row)

    return sink


def _isatty(stream: object) -> bool:
    try:
        return bool(stream.isatty())  # type: ignore[attr-defined]
    except (AttributeError, ValueError, OSError):
        return False


def _read_twice_safely(source: str) -> bool:
    """Whether counting ``source`` ahead leaves it whole for the run: not stdin, nor a
    FIFO or a ``<(command)`` pipe, whose lines a second reader would take away."""
    if source == "-":
        return False
    try:
        mode = Path(source).stat().st_mode
    except (OSError, ValueError):
        return True  # a URL, or a path that gets its own row
    return stat.S_ISREG(mode) or stat.S_ISDIR(mode)


def count_inputs_ahead(session: Session, display: NullDisplay) -> None:
    """Count the inputs in a background thread, so the progress bar can show an ETA."""

    def count() -> None:
        total = sum(1 for _ in session.inputs(io.BytesIO()))
        display.set_total(total)

    threading.Thread(target=count, name="zuotang-count", daemon=True).start()


def dry_run(session: Session, *, stdin: BinaryIO, stdout: TextIO) -> ExitStatus:
    """Say what a run would call, download, fetch, copy and skip: the batch itself decides
    every input, on a snapshot of the journal, and nothing is called or written."""
    options, scale = session.options, session.options.scale
    counts: collections.Counter[str] = collections.Counter()

    def planned(source: str, action: str, reason: str) -> None:
        counts[action] += 1
        _print_plan(stdout, source, action, reason, as_json=options.json)

    items = session.inputs(stdin)
    with session.opened() as journal:
        batch = session.batch(journal, lambda row: None, planned=planned)
        result = asyncio.run(batch.run(aiter_in_thread(items)))
    not_applied, uncertain = result.scale_not_applied, result.factor_uncertain
    calls = counts[Action.CALL.value]
    capped = counts["not-attempted"] > 0
    eta = calls / options.qps
    if not options.quiet:
        parts = _(", ").join(_planned(action, n) for action, n in sorted(counts.items()))
        paid = ngettext("{n} paid call", "{n} paid calls", calls).format(n=calls)
        plan = _(
            "dry run: {plan}; {calls} would take about {duration} at --qps {qps} (plus the "
            "last call's 1-30 s)"
        ).format(
            plan=parts or _("no inputs"),
            calls=paid,
            duration=_duration(eta),
            qps=f"{options.qps:g}",
        )
        write_stderr(sys.stderr, f"zuotang: {plan}\n")
        retry_cost = _retry_cost(options, calls)
        if retry_cost:
            write_stderr(sys.stderr, f"zuotang: {retry_cost}\n")
        if not_applied:
            note = _("warning: {note}").format(note=preflight.scale_note(scale, not_applied))
            write_stderr(sys.stderr, f"zuotang: {note}\n")
        if uncertain:
            note = _("note: {note}").format(note=preflight.uncertain_note(uncertain))
            write_stderr(sys.stderr, f"zuotang: {note}\n")
    # The code the real run would end with, were every call to succeed.
    if capped or counts["invalid"] or counts[Action.SKIP_FAILED.value]:
        return ExitStatus.SOME_FAILED
    return ExitStatus.SUCCESS


_PLANNED = {
    Action.CALL.value: N_("{n} to call"),
    Action.DOWNLOAD.value: N_("{n} to download (paid before)"),
    Action.POLL.value: N_("{n} to fetch (paid before)"),
    Action.SKIP.value: N_("{n} to skip (done)"),
    Action.SKIP_FAILED.value: N_("{n} to skip (failed before)"),
    "copy": N_("{n} to copy (a duplicate)"),
    "invalid": N_("{n} invalid"),
    "not-attempted": N_("{n} not attempted (--max-calls)"),
}
"""The dry run's counts as a person reads them (stdout's plan lines keep the action
words, English)."""


def _planned(action: str, count: int) -> str:
    template = _PLANNED.get(action)
    return _(template).format(n=count) if template else f"{count} {action}"


def _retry_cost(options: EnhanceOptions, calls: int) -> str:
    """What retries of billed failures may add to the bill, at worst."""
    if options.billing is Billing.SUCCESS_ONLY or not calls:
        return ""
    if options.paid_retries == 0:
        return _("a failed call is billed and never paid for again (--paid-retries 0)")
    worst = calls * options.paid_retries
    if options.max_calls is not None:
        worst = max(0, min(worst, options.max_calls - calls))
    return ngettext(
        "every HTTP-200 reply is billed: retries of failed calls (state -1/-2/-8, timeouts) "
        "may add up to {n} paid call (--paid-retries {retries})",
        "every HTTP-200 reply is billed: retries of failed calls (state -1/-2/-8, timeouts) "
        "may add up to {n} paid calls (--paid-retries {retries})",
        worst,
    ).format(n=worst, retries=options.paid_retries)


def _print_plan(stdout: TextIO, source: str, action: str, reason: str, *, as_json: bool) -> None:
    if as_json:
        line = json_text(
            {"schema": JSON_SCHEMA_VERSION, "input": source, "action": action, "reason": reason}
        )
    else:  # one input a line, tab-separated, whatever its text holds
        line = f"{action}\t{visible(source)}" + (f"\t{visible(reason)}" if reason else "")
    stdout.write(line + "\n")


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def _run_batch(
    session: Session,
    journal: Journal,
    feed: AsyncIterator[list[InputItem]],
    emitter: Emitter,
    display: NullDisplay,
    signals: StopSignals,
    sink: Callable[[Row], None] | None = None,
) -> BatchResult:
    batch = session.batch(
        journal,
        sink or emitter,
        on_start=display.started,
        http_log=display.log if session.options.verbose else None,
        notice=display.error,
        on_halt=lambda reply: display.error(halt_line(reply)),
    )
    emitter.reports.on_lost = batch.report_lost

    async def main() -> BatchResult:
        loop = asyncio.get_running_loop()
        cut = False

        def on_signal(signum: int) -> None:
            """In the loop: the first Ctrl-C lets the calls in flight finish; SIGTERM or
            a second Ctrl-C cuts them short; after that, nothing more to do."""
            nonlocal cut
            terminated = signum == SIGTERM
            if cut:
                batch.result.terminated = batch.result.terminated or terminated
                return
            if terminated or batch.result.interrupted:
                cut = True
                batch.cut_short(terminated=terminated)
                if terminated:
                    said = _("SIGTERM: cutting the calls in flight short; writing the report")
                else:
                    said = _(
                        "interrupted again: cutting the calls in flight short; writing the report"
                    )
                display.error(said)
                return
            batch.request_stop()
            n = batch.calls_in_flight
            display.error(
                ngettext(
                    "interrupted: finishing the {n} call in flight (Ctrl-C again cuts them "
                    "short, and they may still be billed)",
                    "interrupted: finishing the {n} calls in flight (Ctrl-C again cuts them "
                    "short, and they may still be billed)",
                    n,
                ).format(n=n)
            )

        signals.attach(loop, on_signal)
        try:
            return await batch.run(feed)
        except asyncio.CancelledError:
            batch.result.interrupted = True
            return batch.result
        finally:
            signals.detach()

    return asyncio.run(main())
