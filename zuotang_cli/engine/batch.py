"""The batch: inputs in, one row per input out (docs/architecture.md, "The engine").

The scheduler of one run.  It settles the output directory's paid work first, then reads
the inputs, decides each one (a row at once when the journal or the input decides it,
else a :class:`~zuotang_cli.engine.job.Job` in a free slot), settles the duplicates at the
end, and stops (Ctrl-C, SIGTERM) or halts (the account, the endpoint, the disk) cleanly.
Every request start passes one rate gate; up to ``concurrency`` inputs are in flight, each
holding its slot from the call through the download, so results never pile up waiting
for a download while their links age.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Callable

import httpx

from zuotang_cli import reasons
from zuotang_cli.engine.backlog import Backlog
from zuotang_cli.engine.calls import Calls
from zuotang_cli.engine.http_pool import new_client
from zuotang_cli.engine.job import Job
from zuotang_cli.engine.pump import Stoppable
from zuotang_cli.engine.repeats import Duplicate, Repeats
from zuotang_cli.engine.rows import (
    UNLISTED,
    first_of,
    from_journal,
    invalid,
    mask_record,
    not_attempted,
    planned_action,
    unsendable,
)
from zuotang_cli.engine.saving import Saver
from zuotang_cli.engine.shared import Hooks, Shared
from zuotang_cli.engine.state import (
    FEED_STEP,
    LAST_ROWS_WAIT,
    STOP_READ_GRACE,
    BatchConfig,
    BatchResult,
    Work,
    default_concurrency,
    default_download_concurrency,
    paid_failures_left,
)
from zuotang_cli.errors import LocalError
from zuotang_cli.models import ErrorClass, InputItem, Outcome, Record, Row
from zuotang_cli.protocol.api import Reply
from zuotang_cli.protocol.rules import Billing
from zuotang_cli.store import planner
from zuotang_cli.store.download import DOWNLOAD_RATE_WINDOW, Downloader
from zuotang_cli.store.journal import NAMING_SETTING, Entry, Journal, entry_key
from zuotang_cli.store.naming import Naming
from zuotang_cli.store.planner import Action, OutputListing, Plan

__all__ = [
    "Batch",
    "BatchConfig",
    "BatchResult",
    "Hooks",
    "Sink",
    "default_concurrency",
    "default_download_concurrency",
]

Sink = Callable[[Row], None]
Planned = Callable[[str, str, str], None]
"""Dry run: (input as given, action, reason) for every input, as the run would decide."""


def _stop_reading(items: object, grace: float) -> None:
    """Tell the inputs' stream to end, if it can be told (see :class:`Stoppable`)."""
    if isinstance(items, Stoppable):
        items.stop(grace)


class Batch:
    """Runs one batch; ``sink`` receives every row as soon as it is final."""

    def __init__(
        self,
        config: BatchConfig,
        sink: Sink,
        journal: Journal,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        on_start: Callable[[InputItem], None] | None = None,
        http_log: Callable[[str], None] | None = None,
        notice: Callable[[str], None] | None = None,
        planned: Planned | None = None,
        on_halt: Callable[[Reply], None] | None = None,
    ) -> None:
        if config.naming.template is None and journal.setting(NAMING_SETTING) == "legacy":
            config = dataclasses.replace(config, naming=Naming(legacy=True))
        self.config = config
        self.journal = journal
        self.shared = Shared(
            config,
            journal,
            config.spec,
            self._halt,
            Hooks(on_start=on_start, http_log=http_log, notice=notice, on_halt=on_halt),
        )
        self._calls = Calls(self.shared)
        self._saver = Saver(self.shared)
        self._sink = sink
        self._transport = transport
        self._planned = planned
        self._repeats = Repeats(
            config, journal, self.shared.spec.secrets, lambda: self._saver.downloader.tmp_path()
        )
        self._predicted_calls = 0
        """Dry run: the paid calls this run would make (under --max-calls)."""
        self.concurrency = config.concurrency or default_concurrency(config.qps)
        self._feeder: asyncio.Task[None] | None = None
        self._items: AsyncIterator[list[InputItem]] | None = None
        self._file_keys: dict[str, str] = {}
        """Content keys of the local files met in this run -> the first one's input (in a
        stream: of the files in flight only)."""
        self._duplicates: list[Duplicate] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._fatal: BaseException | None = None
        self._root = str(journal.root)
        self._outputs = OutputListing(self._root)
        self._recovered: dict[str, tuple[InputItem, Record | Plan]] = {}
        """Paid work of earlier runs settled before any new call (a plan in a dry run),
        by key, until a line names it."""

    @property
    def result(self) -> BatchResult:
        return self.shared.result

    # -- control -------------------------------------------------------------------------

    def request_stop(self) -> None:
        """First Ctrl-C: start nothing new, let what is in flight finish; the inputs not
        yet started get their rows as not attempted."""
        self.shared.result.interrupted = True
        self._stop(reasons.INTERRUPTED)

    @property
    def calls_in_flight(self) -> int:
        """Calls sent and not answered yet: cutting them short may still be billed."""
        return self._calls.calls_in_flight

    def cut_short(self, *, terminated: bool = False) -> None:
        """SIGTERM, or a second Ctrl-C: stop now, whatever the run waits on.  The calls
        and downloads in flight are cancelled (each gets its row, saying what it had
        cost), the inputs read so far get theirs as not attempted, and the reading of
        the inputs is not waited for (a FIFO or a stdin nobody closes)."""
        self.shared.result.interrupted = True
        self.shared.result.terminated = self.shared.result.terminated or terminated
        self._stop(reasons.INTERRUPTED)
        _stop_reading(self._items, 0)
        for task in list(self._tasks):
            task.cancel()

    def report_lost(self, message: str) -> None:
        """A report could not be written (its disk full): halt as on any disk error, while
        the other reports and the journal keep every input's row."""
        self.shared.halt_on_disk_error(message)

    def _halt(self, reply: Reply) -> None:
        if reply.error_class in (ErrorClass.ENDPOINT_REFUSED, ErrorClass.ENDPOINT_NOT_FOUND):
            reply = dataclasses.replace(
                reply, message=f"{reply.message} (endpoint {self.shared.spec.endpoint})"
            )
        if self.shared.result.halt is None:
            self.shared.result.halt = reply
            self._stop(reasons.HALTED.format(reason=reply.error_class))
            if self.shared.hooks.on_halt is not None:
                self.shared.hooks.on_halt(reply)
        self.shared.gate.close()

    def _stop(self, reason: str) -> None:
        if self.shared.stop_reason is None:
            self.shared.stop_reason = reason
        self.shared.gate.close()
        self.shared.stopping.set()
        # The inputs still coming get their rows, but a source that has nothing ready (a
        # pipe whose writer is gone quiet, a watched folder) is not waited on.
        _stop_reading(self._items, STOP_READ_GRACE)

    async def run(self, items: AsyncIterator[list[InputItem]]) -> BatchResult:
        """Run every input of ``items`` (lists of them, as :func:`aiter_in_thread` reads
        them) to its record."""
        cfg = self.config
        self._items = items
        if cfg.dry_run:  # the same decisions, no HTTP at all
            self._feeder = asyncio.create_task(self._settle_then_feed(items))
            await self._finish_all()
            return self.shared.result
        timeout = httpx.Timeout(cfg.timeout, connect=min(cfg.timeout, 15.0))
        hooks = {"response": [self._calls.log_exchange]} if self.shared.hooks.http_log else {}
        downloads_at_once = cfg.download_concurrency or default_download_concurrency(cfg.qps)
        async with (
            new_client(
                self._transport, connections=self.concurrency, timeout=timeout, event_hooks=hooks
            ) as calls,
            new_client(
                self._transport,
                connections=downloads_at_once,
                timeout=timeout,
                follow_redirects=True,
                event_hooks=hooks,
            ) as downloads,
            self.shared.uploads.running(),  # the bucket checked before any call
        ):
            backlog = Backlog(downloads_at_once)
            self._calls.client, self._calls.backlog = calls, backlog
            self._saver.backlog = backlog
            self._saver.downloader = Downloader(
                downloads,
                cfg.output_dir,
                backoff=cfg.backoff / 2,
                rate_window=min(DOWNLOAD_RATE_WINDOW, cfg.timeout),
                finish=cfg.finish,
            )
            self._slots = asyncio.Semaphore(self.concurrency)
            # The feeder runs apart: it keeps reading the inputs after a stop, so that each
            # one gets its row, while the calls in flight finish.
            self._feeder = asyncio.create_task(self._settle_then_feed(items))
            try:
                await self._finish_all()
            except asyncio.CancelledError:
                # Cancelled from outside (a signal after cut_short): cut short what is
                # left, give the inputs in flight a moment to write their rows, and go.
                self.cut_short()
                self._feeder.cancel()
                await asyncio.wait({self._feeder, *self._tasks}, timeout=LAST_ROWS_WAIT)
            finally:
                self._feeder.cancel()
                for task in self._tasks:
                    task.cancel()
        self.shared.result.download_pace = backlog.pace()
        return self.shared.result

    async def _finish_all(self) -> None:
        """Wait for the feeder and every input in flight, then settle the duplicates."""
        assert self._feeder is not None
        await asyncio.wait({self._feeder})
        if not self._feeder.cancelled() and self._feeder.exception() is not None:
            raise self._feeder.exception()  # type: ignore[misc]
        while self._tasks:
            await asyncio.wait(set(self._tasks))
        if self._fatal is not None:
            raise self._fatal
        duplicates, self._duplicates = [*self._repeats.all_waiting(), *self._duplicates], []
        for duplicate in duplicates:
            self._emit(self._repeats.settle(duplicate))
        recovered, self._recovered = self._recovered, {}
        for key, (item, settled) in recovered.items():  # paid work this run's list omits
            self.shared.result.recovered_unlisted += 1
            self._emit_recovered(item, key, settled, UNLISTED)

    async def _settle_then_feed(self, items: AsyncIterator[list[InputItem]]) -> None:
        await self._settle_paid_work()
        await self._feed(items)

    async def _settle_paid_work(self) -> None:
        """Paid work first: before any new call, the output directory's paid results whose
        links still live are downloaded and its paid tasks fetched, whatever the order of
        the list and whether it names them; their rows come when their line does (or at
        the end: not in this run's list)."""
        cfg, now = self.config, time.time()
        started: list[asyncio.Task[None]] = []
        for entry, item in self.journal.live_paid_work(now):
            plan = planner.plan(
                entry,
                force=False,
                retry_failed=False,
                now=now,
                present=self._outputs,
                root=self._root,
            )
            if plan.action not in (Action.DOWNLOAD, Action.POLL) or self.shared.stop_reason:
                continue
            if cfg.dry_run:
                self._recovered[entry.key] = (item, plan)
                continue
            if not await self.shared.take(self._slots):
                break
            work = Work(item, entry.key, plan, paid_failures_left(self.config, plan), settling=True)
            started.append(self._start(work))
        if started:
            await asyncio.wait(started)

    def _emit_recovered(
        self, item: InputItem, key: str, settled: Record | Plan, note: str = ""
    ) -> None:
        """The row of paid work settled first, for the line that names it (or none)."""
        if isinstance(settled, Plan):  # a dry run
            reason = f"{note}{settled.reason}"
            self._plan_work(item, key, dataclasses.replace(settled, reason=reason))
            return
        settled.input = item.source
        settled.message = f"{note}{settled.message}"
        self._emit(settled)

    async def _feed(self, items: AsyncIterator[list[InputItem]]) -> None:
        spec = self.config.spec
        async for chunk in items:
            if self.config.stream:  # results saved since the last look are there now
                self._outputs = OutputListing(self._root)
            for start in range(0, len(chunk), FEED_STEP):
                part = chunk[start : start + FEED_STEP]
                # The journal entries of these URLs in one query, not one an input: a
                # re-run over a long list that is done is mostly this.
                keys = [
                    entry_key(i, spec.type, spec.scale) if i.path is None else None for i in part
                ]
                known = self.journal.entries([key for key in keys if key is not None])
                now = time.time()
                for item, key in zip(part, keys, strict=True):
                    refused = item.error is not None and item.error_class != ErrorClass.DUPLICATE
                    if item.path is not None and not refused and not self.shared.stop_reason:
                        key = await self._file_key(item)  # known by its content
                        if key is None:
                            continue
                    plan = self._decide(item, key, known, now)
                    if plan is not None:
                        assert key is not None
                        await self._launch(item, key, plan)
                await asyncio.sleep(0)  # the loop's turn: calls in flight, signals

    def _decide(
        self, item: InputItem, key: str | None, known: dict[str, Entry | None], now: float
    ) -> Plan | None:
        """Decide one input: its row at once (invalid, done before, failed before, not
        attempted, settled first) or at the end (a duplicate), else the plan of the work
        to start.  ``key``: its journal key (None for an input refused as it was read);
        ``known``: journal entries looked up ahead (None: not in the journal)."""
        cfg = self.config
        if item.error is not None and item.error_class != ErrorClass.DUPLICATE:
            self._emit(invalid(item))
            return None
        if self.shared.stop_reason is not None:
            self._not_attempted(item)
            return None
        assert key is not None
        first = self._file_keys.get(key) if item.path is not None else None
        if item.error_class == ErrorClass.DUPLICATE or first is not None:
            duplicate = Duplicate(item, key, first or first_of(item))
            if cfg.stream and first is not None:
                self._repeats.wait_for_first(duplicate)
            else:
                self._duplicates.append(duplicate)
            return None
        if item.path is not None and not cfg.stream:
            self._file_keys[key] = item.source
        settled = self._recovered.pop(key, None)
        if settled is not None and (
            isinstance(settled[1], Plan) or settled[1].error_class != ErrorClass.LINK_EXPIRED
        ):
            self._emit_recovered(item, key, settled[1])
            return None
        plan = planner.plan(
            known[key] if key in known else self.journal.get(key),
            force=cfg.force,
            retry_failed=cfg.retry_failed,
            now=now,
            paid_failures_allowed=cfg.paid_failures_allowed,
            present=self._outputs,
            root=self._root,
        )
        if plan.action is Action.SKIP and plan.entry is not None:
            self._emit(self._repeats.done_before(item, key, plan))
        elif plan.action is Action.SKIP_FAILED:
            self._emit(from_journal(item, plan))
        elif item.path is not None and plan.action is Action.CALL and self._unsendable(item):
            pass  # its row is out
        else:
            return plan
        return None

    async def _launch(self, item: InputItem, key: str, plan: Plan) -> None:
        """Start the work ``plan`` says for ``item`` in a free slot (a dry run: say it)."""
        if self.config.dry_run:
            self._plan_work(item, key, plan)
        elif not await self.shared.take(self._slots):
            self._not_attempted(item)
        else:
            if self.config.stream and item.path is not None:
                self._file_keys[key] = item.source  # in flight: its duplicates wait for it
            self._start(Work(item, key, plan, paid_failures_left(self.config, plan)))

    def _start(self, work: Work) -> asyncio.Task[None]:
        """Process ``work`` in a task of its own (it holds a slot, taken by the caller)."""
        task = asyncio.create_task(self._run_one(work))
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _plan_work(self, item: InputItem, key: str, plan: Plan) -> None:
        """Dry run: the work the run would start for ``item`` (under --max-calls)."""
        assert self._planned is not None
        paid = plan.action is Action.CALL or (
            plan.action is Action.POLL and self.config.billing is Billing.SUCCESS_ONLY
        )
        limit = self.config.max_calls
        if paid and limit is not None and self._predicted_calls >= limit:
            self.shared.result.counts[Outcome.NOT_ATTEMPTED] += 1
            self._planned(item.source, Outcome.NOT_ATTEMPTED.value, f"max-calls {limit} reached")
            return
        self._predicted_calls += paid
        self._repeats.predicted.add(key)
        self.shared.result.note_scale(
            self.config.spec.scale,
            Record(item.source, Outcome.DONE, input_width=item.width, input_height=item.height),
        )
        self.shared.result.counts[Outcome.DONE] += 1
        self._planned(item.source, plan.action.value, plan.reason)

    async def _file_key(self, item: InputItem) -> str | None:
        """A local file's journal key (None: it cannot be read; its row is out)."""
        try:
            return await self._repeats.file_key(item)
        except OSError as exc:
            self._emit(invalid(dataclasses.replace(item, error=f"cannot read: {exc.strerror}")))
            return None

    def _unsendable(self, item: InputItem) -> bool:
        """Whether a local file cannot be sent this run (its row is then out)."""
        cfg = self.config
        row = unsendable(item, self.shared.multipart_refused, cfg.max_upload, self.shared.spec)
        if row is not None:
            self._emit(row)
        return row is not None

    def _not_attempted(self, item: InputItem) -> None:
        """The row of an input the run stopped before, kept in the journal too (unless it
        holds more of it), so that ``zuotang report`` lists every input."""
        record = not_attempted(item, self.shared.stop_reason or "")
        spec = self.config.spec
        with contextlib.suppress(LocalError):  # a journal that failed: the report has it
            self.journal.placeholder(entry_key(item, spec.type, spec.scale), record)
        self._emit(record)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._slots.release()
        if not task.cancelled() and task.exception() is not None and self._fatal is None:
            # Only the sink (report / stdout) can fail here: nothing more can be recorded.
            self._fatal = task.exception()
            self._stop(reasons.REPORT_LOST)
            if self._feeder is not None:
                self._feeder.cancel()

    async def _run_one(self, work: Work) -> None:
        try:
            record = await Job(work, self.shared, self._calls, self._saver).run()
            if work.settling:  # paid work of an earlier run: its row comes with its line
                self.shared.result.recovered += record.outcome is Outcome.DONE
                self._recovered[work.key] = (work.item, record)
                return
            self._emit(record)
        finally:
            if self.config.stream and not work.settling:  # the next one: by the journal
                self._file_keys.pop(work.key, None)
                for row in self._repeats.settle_waiting(work.key):
                    self._emit(row)

    def _emit(self, record: Row) -> None:
        if type(record) is Record:
            mask_record(record, self.shared.spec.secrets)
            record.type = record.type or self.config.spec.type
            record.scale = record.scale or str(self.config.spec.scale or "auto")
        self.shared.result.counts[record.outcome] += 1
        if self._planned is not None:  # a dry run: never a DoneRow
            self._planned(record.input, planned_action(record.full()), record.message)
            return
        self._sink(record)
