"""The batch runner: inputs in, one record per input out (design.md §3).

Every request start passes one :class:`RateGate`; up to ``concurrency`` inputs are in
flight, each holding its slot from the call through the download, so results never pile
up waiting for a download while their links age.  Downloads have their own smaller pool
and never hold up the calls of other inputs.  A halt (auth, quota) or a stop request
(Ctrl-C) closes the gate: nothing new starts, what is in flight finishes.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import functools
import math
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import httpx

from zuotang_cli import api, naming, preflight, rules
from zuotang_cli.api import CallSpec, Reply, Verdict
from zuotang_cli.backlog import Backlog, Pace
from zuotang_cli.download import (
    DISK_ERROR,
    DOWNLOAD_RATE_WINDOW,
    TOO_MANY_OPEN_FILES,
    Downloader,
    DownloadFailed,
    copy_result,
    file_checksum,
    os_error_class,
)
from zuotang_cli.errors import LocalError
from zuotang_cli.http_pool import new_client
from zuotang_cli.inputs import DUPLICATE
from zuotang_cli.journal import (
    LINK_MARGIN,
    RESULT_GONE,
    Action,
    Entry,
    Journal,
    OutputListing,
    Plan,
    Status,
    entry_key,
    output_intact,
)
from zuotang_cli.models import DoneRow, ErrorClass, InputItem, Outcome, Record, Row
from zuotang_cli.options import DEFAULT_TIMEOUT
from zuotang_cli.pump import ThreadFeed
from zuotang_cli.ratelimit import RateGate
from zuotang_cli.rules import Billing, Body
from zuotang_cli.sanitize import Secrets
from zuotang_cli.status import ExitStatus

UNREACHABLE_AFTER = 12
"""Calls in a row without any HTTP reply after which the run halts."""
POLL_INTERVAL = 1.0
"""Seconds between two fetches of an asynchronous task."""
FEED_STEP = 256
"""Inputs decided between two turns of the event loop (a few milliseconds of rows done
before, so that the calls in flight and a Ctrl-C never wait long)."""
CLOCK_SKEW = 30.0
"""Seconds a result host's clock may be ahead of ours: a link refused closer than this
to its end may simply have expired there."""
REFUSED_LINKS_HALT = 3
"""Result links refused in a row, although they had not expired, after which the run
halts: the results cannot be fetched from here (a proxy or firewall), and every further
call would be paid for nothing."""
STOP_READ_GRACE = 1.0
"""After a stop (Ctrl-C, a halt), seconds to wait for the inputs' reader when it has
nothing ready: a list file is read to its end (each input gets its row), a pipe that has
gone quiet is not waited on."""
LAST_ROWS_WAIT = 1.0
"""Seconds the inputs in flight get to write their rows when the run is cancelled."""
BODY_SETTING = "body"
"""The journal's memory of the body encoding an output directory's endpoint reads."""


def default_concurrency(qps: float) -> int:
    """Calls in flight needed to keep ``qps`` starts a second when a call can take 30 s."""
    return max(4, math.ceil(qps * (rules.SERVICE_TIMEOUT + 2)))


def default_download_concurrency(qps: float) -> int:
    """Downloads at once at most: every input in flight may be downloading its result
    (the open-file limit may cut it: :mod:`zuotang_cli.fdlimit`)."""
    return default_concurrency(qps)


@dataclass(frozen=True)
class BatchConfig:
    spec: CallSpec
    output_dir: Path
    qps: float = rules.DEFAULT_QPS
    concurrency: int | None = None
    retries: int = 4
    """Further tries after a transient failure (throttle replies are counted apart)."""
    timeout: float = DEFAULT_TIMEOUT
    download_concurrency: int | None = None
    max_throttled: int = 30
    """Throttle replies one input may get before it is given up (a run-wide slowdown)."""
    backoff: float = 1.0
    backoff_cap: float = 30.0
    throttle_pause: float = 1.0
    """Run-wide pause after a throttle reply without Retry-After."""
    force: bool = False
    """Process again what an earlier run saved (a new paid call)."""
    retry_failed: bool = False
    """Try again what failed for good in an earlier run."""
    max_calls: int | None = None
    """At most this many paid calls in this run."""
    probe: bool = False
    """Check remote images (ranged GET of the header) before paying for a call."""
    billing: Billing = Billing.EVERY_200
    """Which replies are paid calls (the marketplace bills every HTTP 200)."""
    paid_retries: int = 1
    """Paid calls an input may make again after a billed failure (state -1 / -2 / -8, a
    timeout after the request went out), counted over all runs."""
    body_fixed: bool = False
    """The user chose ``spec.body``: never switch it, nor take the journal's memory."""
    max_upload: int = rules.MAX_UPLOAD_BYTES
    """Largest request body the gateway takes: bigger local files are refused unsent."""
    polls_use_gate: bool = True
    """Task fetches pass the rate gate: the gateway's flow control counts every request
    to the API, so a poll uses a start of the QPS like a call (assumed: not confirmed)."""
    dry_run: bool = False
    """Decide every input exactly as a run would, on a snapshot of the journal, but call,
    download and copy nothing: each decision goes to the batch's ``planned`` callback."""
    poll_interval: float = POLL_INTERVAL
    poll_limit: float = rules.SERVICE_TIMEOUT
    """How long one run fetches a task before leaving it to a re-run."""

    @property
    def paid_failures_allowed(self) -> int | None:
        """Billed calls without a result an input may cost, over all runs (None: no limit,
        because failures are not billed)."""
        if self.billing is Billing.SUCCESS_ONLY:
            return None
        return 1 + self.paid_retries


@dataclass
class Work:
    item: InputItem
    key: str
    plan: Plan
    paid_failures_left: int | None = None
    """Billed failures this input may still cost before it is given up (None: no cap)."""
    record: Record | None = None
    """What is known so far (set once processing starts), for a row if the run is cut."""
    call_out: bool = False
    """A call of this input went out whole and has not answered yet: cut short now, it
    may have been billed."""
    settling: bool = False
    """Paid work of an earlier run, settled before any new call (see _settle_paid_work)."""
    delivered: bool = False
    """The result being downloaded was saved by an earlier run (then moved or deleted): a
    dead link of it loses nothing."""

    def went_out(self) -> None:
        self.call_out = True


@dataclass(frozen=True)
class Duplicate:
    """An input whose result is another's: same URL, or same bytes, type and scale."""

    item: InputItem
    key: str
    first: str
    """The input it duplicates, as the user gave it (or ``input #N``)."""


class CallBudget:
    """--max-calls: at most ``limit`` paid calls (billed failures and calls that timed out
    after going out count too); a call in flight holds one unit, given back if it ends
    unpaid, so the total can never pass the limit."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.billed = 0
        self._held = 0
        self._changed = asyncio.Condition()

    async def reserve(self) -> bool:
        if self.limit is None:
            return True
        async with self._changed:
            while self.billed + self._held >= self.limit:
                if self.billed >= self.limit:
                    return False
                await self._changed.wait()
            self._held += 1
            return True

    async def release(self, *, billed: bool) -> None:
        self.billed += billed
        if self.limit is None:
            return
        async with self._changed:
            self._held -= 1
            self._changed.notify_all()


@dataclass
class BatchResult:
    counts: dict[Outcome, int] = field(default_factory=lambda: dict.fromkeys(Outcome, 0))
    halt: Reply | None = None
    interrupted: bool = False
    terminated: bool = False
    """Stopped by SIGTERM (exit 143 rather than 130)."""
    scale_not_applied: int = 0
    """Inputs whose requested --scale the service does not apply (long side too big)."""
    factor_uncertain: int = 0
    """Inputs whose factor the two API documents predict differently."""
    paid_calls: int = 0
    """Calls billed in this run, by the billing rule in force (failures included)."""
    paid_failures: int = 0
    """Of those, and of the possibly paid, the ones that brought no result."""
    possibly_paid: int = 0
    """Calls that timed out after going out: billed upstream or not, nobody can tell."""
    paid_retries: int = 0
    """Paid calls made again for an input after a billed failure."""
    throttled: int = 0
    """Throttle and circuit-breaker replies (none when --qps matches the account)."""
    polls: int = 0
    """Fetches of asynchronous tasks."""
    body_switched: bool = False
    """The endpoint did not read form bodies: URL calls went multipart."""
    expired_links: int = 0
    """Paid results lost because their link (or task) expired before they were saved."""
    recovered: int = 0
    """Paid results of earlier runs saved before any new call."""
    recovered_unlisted: int = 0
    """Of the paid work settled first, the inputs this run's list does not name."""
    download_pace: Pace | None = None
    """How fast results were saved, when new calls were held back for them."""

    @property
    def exit_status(self) -> ExitStatus:
        if self.terminated:
            return ExitStatus.TERMINATED
        if self.interrupted:
            return ExitStatus.INTERRUPTED
        if self.halt is not None:
            return self.halt.halt_status
        bad = sum(n for outcome, n in self.counts.items() if outcome not in _OK)
        return ExitStatus.SOME_FAILED if bad else ExitStatus.SUCCESS


_OK = (Outcome.DONE, Outcome.SKIPPED)

Sink = Callable[[Row], None]
Planned = Callable[[str, str, str], None]
"""Dry run: (input as given, action, reason) for every input, as the run would decide."""


class Batch:
    """Runs one batch; ``sink`` receives every record as soon as it is final."""

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
        self.config = config
        self._on_halt = on_halt
        """Told of the halt when it happens (the CLI says why at once, and again at the end)."""
        self._sink = sink
        self.journal = journal
        self.spec = config.spec
        """The call spec in force: its body encoding may change during the run."""
        remembered = None if config.body_fixed else journal.setting(BODY_SETTING)
        if remembered in (Body.FORM.value, Body.MULTIPART.value):
            self.spec = dataclasses.replace(self.spec, body=Body(remembered))
        self._notice = notice
        self._planned = planned
        self._predicted: set[str] = set()
        """Dry run: keys this run would call, download or fetch (so their duplicates would
        get copies)."""
        self._predicted_calls = 0
        self._multipart_refused: str | None = None
        """Why local files cannot be sent this run (the gateway refuses multipart)."""
        self.budget = CallBudget(config.max_calls)
        self._transport = transport
        self._on_start = on_start
        self._http_log = http_log
        self.concurrency = config.concurrency or default_concurrency(config.qps)
        self.gate = RateGate(config.qps)
        self.result = BatchResult()
        self._stop_reason: str | None = None
        self._stopping = asyncio.Event()
        self._feeder: asyncio.Task[None] | None = None
        self._items: AsyncIterator[list[InputItem]] | None = None
        self._file_keys: dict[str, str] = {}
        """Content keys of the local files met in this run -> the first one's input."""
        self._duplicates: list[Duplicate] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._fatal: BaseException | None = None
        self._outputs = OutputListing(journal.root)
        self._recovered: dict[str, tuple[InputItem, Record | Plan]] = {}
        """Paid work of earlier runs settled before any new call (a plan in a dry run),
        by key, until a line names it."""
        self._refused_in_a_row = 0
        """Result links refused in a row although they had not expired."""
        self._in_call = 0
        """Calls sent and not answered yet (a Ctrl-C says how many may still be billed)."""
        self._unanswered = 0
        """Calls in a row that got no HTTP reply at all."""
        self._answered_at = float("-inf")
        """When the endpoint last sent an HTTP reply (monotonic)."""

    # -- control -------------------------------------------------------------------------

    def request_stop(self) -> None:
        """First Ctrl-C: start nothing new, let what is in flight finish; the inputs not
        yet started get their rows as not attempted."""
        self.result.interrupted = True
        self._stop("interrupted")

    @property
    def calls_in_flight(self) -> int:
        """Calls sent and not answered yet: cutting them short may still be billed."""
        return self._in_call

    def cut_short(self, *, terminated: bool = False) -> None:
        """SIGTERM, or a second Ctrl-C: stop now, whatever the run waits on.  The calls
        and downloads in flight are cancelled (each gets its row, saying what it had
        cost), the inputs read so far get theirs as not attempted, and the reading of
        the inputs is not waited for (a FIFO or a stdin nobody closes)."""
        self.result.interrupted = True
        self.result.terminated = self.result.terminated or terminated
        self._stop("interrupted")
        if isinstance(self._items, ThreadFeed):
            self._items.stop(0)
        for task in list(self._tasks):
            task.cancel()

    def report_lost(self, message: str) -> None:
        """A report could not be written (its disk full): halt as on any disk error, while
        the other reports and the journal keep every input's row."""
        self._halt_on_disk_error(message)

    def _halt(self, reply: Reply) -> None:
        if reply.error_class in (ErrorClass.ENDPOINT_REFUSED, ErrorClass.ENDPOINT_NOT_FOUND):
            reply = dataclasses.replace(
                reply, message=f"{reply.message} (endpoint {self.spec.endpoint})"
            )
        if self.result.halt is None:
            self.result.halt = reply
            self._stop(f"halted: {reply.error_class}")
            if self._on_halt is not None:
                self._on_halt(reply)
        self.gate.close()

    def _stop(self, reason: str) -> None:
        if self._stop_reason is None:
            self._stop_reason = reason
        self.gate.close()
        self._stopping.set()
        if isinstance(self._items, ThreadFeed):
            # The inputs still coming get their rows, but a source that has nothing
            # ready (a pipe whose writer is gone quiet) is not waited on.
            self._items.stop(STOP_READ_GRACE)

    # -- the run -------------------------------------------------------------------------

    async def run(self, items: AsyncIterator[list[InputItem]]) -> BatchResult:
        """Run every input of ``items`` (lists of them, as :func:`aiter_in_thread` reads
        them) to its record."""
        cfg = self.config
        self._items = items
        if cfg.dry_run:  # the same decisions, no HTTP at all
            self._feeder = asyncio.create_task(self._settle_then_feed(items))
            await self._finish_all()
            return self.result
        timeout = httpx.Timeout(cfg.timeout, connect=min(cfg.timeout, 15.0))
        hooks = {"response": [self._log_exchange]} if self._http_log else {}
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
        ):
            self._calls = calls
            self._downloader = Downloader(
                downloads,
                cfg.output_dir,
                backoff=cfg.backoff / 2,
                rate_window=min(DOWNLOAD_RATE_WINDOW, cfg.timeout),
            )
            self._backlog = Backlog(downloads_at_once)
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
        self.result.download_pace = self._backlog.pace()
        return self.result

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
        duplicates, self._duplicates = self._duplicates, []
        for duplicate in duplicates:
            self._emit(self._settle_duplicate(duplicate))
        recovered, self._recovered = self._recovered, {}
        for key, (item, settled) in recovered.items():  # paid work this run's list omits
            self.result.recovered_unlisted += 1
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
            plan = self.journal.plan(
                entry, force=False, retry_failed=False, now=now, present=self._outputs
            )
            if plan.action not in (Action.DOWNLOAD, Action.POLL) or self._stop_reason:
                continue
            if cfg.dry_run:
                self._recovered[entry.key] = (item, plan)
                continue
            if not await self._free_slot():
                break
            work = Work(item, entry.key, plan, self._paid_failures_left(plan), settling=True)
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
                    refused = item.error is not None and item.error_class != DUPLICATE
                    if item.path is not None and not refused and not self._stop_reason:
                        key = await self._key(item)  # a file is known by its content
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
        if item.error is not None and item.error_class != DUPLICATE:
            self._emit(_invalid(item))
            return None
        if self._stop_reason is not None:
            self._not_attempted(item)
            return None
        assert key is not None
        first = self._file_keys.get(key) if item.path is not None else None
        if item.error_class == DUPLICATE or first is not None:
            self._duplicates.append(Duplicate(item, key, first or _first_of(item)))
            return None
        if item.path is not None:
            self._file_keys[key] = item.source
        settled = self._recovered.pop(key, None)
        if settled is not None and (
            isinstance(settled[1], Plan) or settled[1].error_class != ErrorClass.LINK_EXPIRED
        ):
            self._emit_recovered(item, key, settled[1])
            return None
        plan = self.journal.plan(
            known[key] if key in known else self.journal.get(key),
            force=cfg.force,
            retry_failed=cfg.retry_failed,
            now=now,
            paid_failures_allowed=cfg.paid_failures_allowed,
            present=self._outputs,
        )
        if plan.action is Action.SKIP and plan.entry is not None:
            self._emit(self._skipped(item, key, plan))
        elif plan.action is Action.SKIP_FAILED:
            self._emit(_from_journal(item, plan))
        elif item.path is not None and plan.action is Action.CALL and self._unsendable(item):
            pass
        else:
            return plan
        return None

    async def _launch(self, item: InputItem, key: str, plan: Plan) -> None:
        """Start the work ``plan`` says for ``item`` in a free slot (a dry run: say it)."""
        if self.config.dry_run:
            self._plan_work(item, key, plan)
        elif not await self._free_slot():
            self._not_attempted(item)
        else:
            self._start(Work(item, key, plan, self._paid_failures_left(plan)))

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
            self.result.counts[Outcome.NOT_ATTEMPTED] += 1
            self._planned(item.source, "not-attempted", f"max-calls {limit} reached")
            return
        self._predicted_calls += paid
        self._predicted.add(key)
        self._note_scale(
            Record(item.source, Outcome.DONE, input_width=item.width, input_height=item.height)
        )
        self.result.counts[Outcome.DONE] += 1
        self._planned(item.source, plan.action.value, plan.reason)

    async def _free_slot(self) -> bool:
        """Wait for a slot; False (no slot taken) if the run stops meanwhile."""
        if self._stop_reason is not None:
            return False
        if not self._slots.locked():  # free: take it without yielding to the loop
            await self._slots.acquire()
            return True
        acquire = asyncio.ensure_future(self._slots.acquire())
        stopping = asyncio.ensure_future(self._stopping.wait())
        await asyncio.wait({acquire, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if acquire.done() and not acquire.cancelled() and self._stop_reason is None:
            return True
        if acquire.done() and not acquire.cancelled():
            self._slots.release()
        acquire.cancel()
        return False

    async def _key(self, item: InputItem) -> str | None:
        """The journal key of a local file: it is read (once: the journal caches its
        digest by size and mtime) and known by its content.  None: an unreadable file,
        whose row is emitted here."""
        spec = self.config.spec
        assert item.path is not None
        try:
            stat = item.path.stat()
            digest = self.journal.known_digest(item.path, stat.st_size, stat.st_mtime_ns)
            if digest is None:
                digest = await asyncio.to_thread(file_checksum, item.path)
                self.journal.remember_digest(item.path, stat.st_size, stat.st_mtime_ns, digest)
        except OSError as exc:
            self._emit(_invalid(dataclasses.replace(item, error=f"cannot read: {exc.strerror}")))
            return None
        self.journal.forget(entry_key(item, spec.type, spec.scale))  # a stopped run's row
        return entry_key(item, spec.type, spec.scale, digest)

    def _not_attempted(self, item: InputItem) -> None:
        """The row of an input the run stopped before, kept in the journal too (unless it
        holds more of it), so that ``zuotang report`` lists every input."""
        record = _not_attempted(item, self._stop_reason or "")
        spec = self.config.spec
        with contextlib.suppress(LocalError):  # a journal that failed: the report has it
            self.journal.placeholder(entry_key(item, spec.type, spec.scale), record)
        self._emit(record)

    def _skipped(self, item: InputItem, key: str, plan: Plan) -> Row:
        """An input done before: its row, and (when it is the same content under another
        name, a copied or moved file) a copy of the result under its own name."""
        entry = plan.entry
        assert entry is not None
        if (  # a URL done before: its row from the stored cells, nothing decoded
            item.path is None
            and entry.cells is not None
            and entry.output is not None
            and self._planned is None
            and not self.spec.secrets.found_in(item.source)
        ):
            return DoneRow(
                item.source,
                self.journal.where(entry.output),
                plan.reason,
                entry.cells,
                functools.partial(_from_journal, item, plan, self.journal),
            )
        earlier = entry.fields.get("input")
        if earlier == item.source:
            return _from_journal(item, plan, self.journal)
        return self._deliver(item, key, entry, f"same content as {earlier}, done before")

    def _settle_duplicate(self, duplicate: Duplicate) -> Record:
        """A duplicate gets the result of the input it duplicates, once that is settled."""
        entry = self.journal.get(duplicate.key)
        label = f"duplicate of {duplicate.first}"
        if duplicate.key in self._predicted:  # dry run: the first one would be done
            copy = duplicate.item.path is not None and duplicate.item.error_class != DUPLICATE
            record = Record(input=duplicate.item.source, outcome=Outcome.SKIPPED)
            record.message = f"{label}: {'a copy of' if copy else 'the same'} result"
            record.extra["copy"] = copy
            return record
        if entry is None or entry.status is not Status.SAVED:
            first = entry.record if entry is not None else None
            record = Record(
                input=duplicate.item.source,
                outcome=Outcome.NOT_ATTEMPTED if first is None else first.outcome,
                message=f"{label}, which was not done"
                + (f": {first.message}" if first is not None and first.message else ""),
                error_class=ErrorClass.DUPLICATE,
            )
            if record.outcome is Outcome.DONE:
                record.outcome = Outcome.FAILED
            return record
        return self._deliver(duplicate.item, duplicate.key, entry, label)

    def _deliver(self, item: InputItem, key: str, entry: Entry, label: str) -> Record:
        """A ``skipped`` row for ``item`` whose result is ``entry``'s: at its own name (a
        copy, made once and reserved) when that differs from the saved one's."""
        source = self.journal.output_path(entry)
        assert source is not None
        record = self.journal.located(Record.from_dict(entry.record.as_dict()))
        record.input, record.outcome, record.attempts, record.elapsed = (
            item.source,
            Outcome.SKIPPED,
            0,
            None,
        )
        record.paid_calls, record.error_class = 0, None
        wanted = naming.output_relpath(item, source.suffix.lstrip(".") or "png")
        relpath = self.journal.claim(key, wanted)
        dest = naming.safe_join(self.config.output_dir, relpath)
        if dest == source:
            record.message = f"{label}: the same result"
            record.extra["unlisted"] = True  # the file is listed on stdout once a run
            return record
        record.extra["copy"] = True
        if self.config.dry_run:
            record.message = f"{label}: a copy of {entry.output}"
            return record
        if not output_intact(entry, self.journal.root):  # moved, deleted or edited since
            record.output = None
            record.message = (
                f"{label}: not copied, its result {entry.output} was moved, deleted or "
                "changed since it was saved"
            )
            return record
        if not dest.exists():  # a copy there (made before) is never overwritten
            copy_result(source, dest, self._downloader.tmp_path())
        record.output = str(dest)
        record.message = f"{label}: copied from {entry.output}"
        self.journal.duplicate(item, key, record)
        return record

    def _paid_failures_left(self, plan: Plan) -> int | None:
        allowed = self.config.paid_failures_allowed
        if allowed is None:
            return None
        earlier = plan.entry.paid_failures + plan.lost if plan.entry is not None else 0
        if self.config.retry_failed:
            earlier = 0  # asked to pay again: a fresh allowance
        return max(0, allowed - earlier)

    def _unsendable(self, item: InputItem) -> bool:
        """Emit the row of a local file that cannot be sent this run, and say so."""
        if self._multipart_refused is not None:
            self._emit(_not_attempted(item, self._multipart_refused))
            return True
        assert item.path is not None
        try:
            size = item.path.stat().st_size
        except OSError:
            return False  # the call reports it unreadable
        if size + api.MULTIPART_OVERHEAD <= self.config.max_upload:
            return False
        limit = self.config.max_upload / (1024 * 1024)
        message = (
            f"{size / (1024 * 1024):.1f} MB makes a request body over the gateway's "
            f"{limit:g} MB limit: host the file and pass its URL (or --max-upload on a "
            "dedicated gateway)"
        )
        self._emit(
            Record(
                input=item.source,
                outcome=Outcome.INVALID,
                message=message,
                error_class=ErrorClass.UPLOAD_TOO_LARGE,
            )
        )
        return True

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._slots.release()
        if not task.cancelled() and task.exception() is not None and self._fatal is None:
            # Only the sink (report / stdout) can fail here: nothing more can be recorded.
            self._fatal = task.exception()
            self._stop("the report could not be written")
            if self._feeder is not None:
                self._feeder.cancel()

    async def _run_one(self, work: Work) -> None:
        try:
            record = await self._process(work)
        except asyncio.CancelledError:  # a second Ctrl-C: say what was left undone
            record = self._cut_short(work)
        except (LocalError, OSError) as exc:  # the journal or the disk
            cause = exc if isinstance(exc, OSError) else exc.__cause__
            error_class = os_error_class(cause) if isinstance(cause, OSError) else DISK_ERROR
            record = self._local_failure(work, error_class, str(exc))
            if error_class == DISK_ERROR:  # nothing more can be saved
                self._halt_on_disk_error(str(exc))
        except Exception as exc:  # a bug must cost one input, not the batch
            message = self.spec.secrets.mask(f"{type(exc).__name__}: {exc}")
            record = self._failure(work, "internal-error", message)
        if work.settling:  # paid work of an earlier run: its row comes with its line
            self.result.recovered += record.outcome is Outcome.DONE
            self._recovered[work.key] = (work.item, record)
            return
        self._emit(record)

    @staticmethod
    def _failure(work: Work, error_class: str, message: str) -> Record:
        return Record(
            input=work.item.source,
            outcome=Outcome.FAILED,
            message=message,
            error_class=error_class,
        )

    def _local_failure(self, work: Work, error_class: str, message: str) -> Record:
        """The row of an input the journal or the disk failed: what it paid is kept, and
        said, with what the next run does about it (the journal may not have booked it)."""
        record = work.record
        if record is None or not record.paid_calls:
            return self._failure(work, error_class, message)
        record.outcome, record.error_class, record.output = Outcome.FAILED, error_class, None
        with contextlib.suppress(LocalError):
            entry = self.journal.get(work.key)
            if entry is not None and entry.status in (Status.PAID, Status.PENDING):
                record.message = f"{PAID_NOT_SAVED}: {message}; {DOWNLOADS_LATER}"
                return record
        unbooked = "the journal could not book it: a re-run calls it again"
        record.message = f"{PAID_NOT_SAVED}: {message}; {unbooked}"
        return record

    def _halt_on_disk_error(self, message: str) -> None:
        """A result that cannot be saved is money lost: start no more calls."""
        reply = Reply(
            Verdict.HALT, ErrorClass.DISK_ERROR, message=message, halt_status=ExitStatus.TROUBLE
        )
        self._halt(reply)

    def _emit(self, record: Row) -> None:
        if type(record) is Record:
            _mask_record(record, self.spec.secrets)
        self.result.counts[record.outcome] += 1
        if self._planned is not None:  # a dry run: never a DoneRow
            self._planned(record.input, _planned_action(record.full()), record.message)
            return
        self._sink(record)

    def _cut_short(self, work: Work) -> Record:
        """The row of an input whose processing a second Ctrl-C (or SIGTERM) cut short; a
        call cut short after it went out may still be billed: counted as possibly paid."""
        record = work.record or Record(input=work.item.source, outcome=Outcome.FAILED)
        entry = self.journal.get(work.key)
        if entry is not None and entry.status is Status.SAVED:
            return self.journal.located(entry.record)
        paid = entry is not None and entry.status in (Status.PAID, Status.PENDING)
        went_out, work.call_out = work.call_out, False
        if went_out:  # billed upstream or not, nobody can tell
            self._count_paid(work, record, certain=False)
            self._settle(work, record, Reply(Verdict.RETRY), billed=True)
        if paid:
            record.message = "interrupted: paid, not saved yet; the next run fetches it"
        elif went_out:
            record.message = (
                "interrupted after the call went out (possibly paid): the next run calls it "
                "again, within --paid-retries"
            )
        elif record.attempts:
            record.message = "interrupted before its call went out: the next run calls it"
        record.outcome, record.error_class = Outcome.FAILED, ErrorClass.INTERRUPTED
        if not paid and not record.attempts:
            record.outcome, record.error_class = Outcome.NOT_ATTEMPTED, ErrorClass.NOT_ATTEMPTED
            record.message = "interrupted"
        self.journal.failed(work.key, record)  # keeps a paid link or task for the next run
        return record

    async def _process(self, work: Work) -> Record:
        item = work.item
        record = Record(
            input=item.source,
            outcome=Outcome.FAILED,
            input_width=item.width,
            input_height=item.height,
        )
        work.record = record
        self._note_scale(record)
        try:
            await self._download_or_call(work, record)
        finally:
            if record.extra.get("started") is not None:
                record.elapsed = time.monotonic() - record.extra.pop("started")
        if record.outcome is not Outcome.DONE:
            self.journal.failed(work.key, record)
        return record

    async def _download_or_call(self, work: Work, record: Record) -> None:
        """Download what an earlier run paid for while its link lives; fetch a task it
        paid for; else call.  A paid result whose link dies before it is saved is money
        lost: calling again for it is a paid retry (``--paid-retries``, over all runs)."""
        plan, entry = work.plan, work.plan.entry
        if plan.lost:  # paid earlier, its link expired since: booked before paying again
            self.journal.link_dead(work.key)
            self.result.expired_links += 1
        if plan.action is Action.DOWNLOAD and entry is not None and entry.image:
            work.delivered = entry.status is Status.SAVED
            _restore(record, entry.record)
            record.extra.setdefault("started", time.monotonic())
            link_dies = (entry.link_expires or 0.0) + LINK_MARGIN  # stored with the margin
            if await self._save(work, record, entry.image, link_dies, plan.reason):
                return
            if record.error_class != ErrorClass.LINK_EXPIRED:
                return
            if work.delivered:  # done before: its result is never paid for again
                record.outcome, record.error_class = Outcome.SKIPPED, None
                record.message = RESULT_GONE
                record.extra["unlisted"] = True  # no file to list on stdout
                return
            if not self._may_pay_again(work, record):
                return
        note = plan.reason
        while True:
            image, expires = await self._paid_result(work, record)
            if image is None:
                return
            if await self._save(work, record, image, expires, note):
                return
            if record.error_class != ErrorClass.LINK_EXPIRED or not self._may_pay_again(
                work, record
            ):
                return
            note = "its link expired before it was saved: called again (a paid retry)"

    async def _refused_by_probe(self, work: Work, record: Record) -> bool:
        """--probe: read a remote image's header first; refuse it if the service would."""
        if not self.config.probe or work.item.url is None or record.input_width is not None:
            return False
        info = await preflight.probe_url(self._downloader.client, work.item.url)
        if info is None:
            return False
        if isinstance(info, preflight.Refusal):
            refusal: str | None = info.reason
        else:
            record.input_width, record.input_height = info.width, info.height
            refusal = preflight.problem(info)
        if refusal is None:
            self._note_scale(record)
            return False
        record.outcome, record.error_class, record.message = (
            Outcome.INVALID,
            preflight.PREFLIGHT,
            refusal,
        )
        return True

    def _note_scale(self, record: Record) -> None:
        """Count inputs whose requested --scale the service will not apply, and those
        whose factor the documents disagree on."""
        requested = self.config.spec.scale
        if record.input_width is None or record.input_height is None:
            return
        long_side = max(record.input_width, record.input_height)
        self.result.factor_uncertain += rules.factor_uncertain(long_side, requested)
        if requested is not None and rules.effective_factor(long_side, requested) != requested:
            self.result.scale_not_applied += 1

    async def _paid_result(self, work: Work, record: Record) -> tuple[str | None, float]:
        """The result of the input (fetching the task an earlier run paid for, else calling
        under the --max-calls budget), and until when its link lives; None when none."""
        entry = work.plan.entry
        reply: Reply | None = None
        if work.plan.action is Action.POLL and entry is not None and entry.task_id:
            work.plan = dataclasses.replace(work.plan, action=Action.CALL)  # once
            _restore(record, entry.record)
            record.extra.setdefault("started", time.monotonic())
            reply = await self._fetch_paid_task(work, record, entry.task_id)
            paid = self.config.billing is Billing.EVERY_200
            self._settle(work, record, reply, billed=paid)
            if reply.verdict is not Verdict.RETRY or not paid:
                return self._result(work, record, reply)
            if not self._may_pay_again(work, record):
                return self._result(work, record, reply)
        elif await self._refused_by_probe(work, record):
            return None, 0.0
        if work.item.path is not None and self._multipart_refused is not None:
            record.outcome, record.message = Outcome.NOT_ATTEMPTED, self._multipart_refused
            record.error_class = ErrorClass.NOT_ATTEMPTED
            return None, 0.0
        reply = await self._call(work, record, reply)
        if reply is None:
            if record.error_class != ErrorClass.MAX_CALLS:
                record.outcome = Outcome.NOT_ATTEMPTED
                record.message = self._stop_reason or ""
                record.error_class = ErrorClass.NOT_ATTEMPTED
            return None, 0.0
        return self._result(work, record, reply)

    async def _fetch_paid_task(self, work: Work, record: Record, task_id: str) -> Reply:
        """Fetch the task an earlier run created.  Under every-200 billing it was paid at
        creation; a seller billing successes only bills it now, so it takes a unit of the
        --max-calls budget like a call."""
        if self.config.billing is Billing.EVERY_200:
            return await self._poll(work, record, task_id, billed=True)
        if not await self.budget.reserve():
            _max_calls_reached(record, self.config.max_calls, tried=False)
            return Reply(Verdict.PENDING, ErrorClass.MAX_CALLS, message=record.message)
        billed = False
        try:
            reply = await self._poll(work, record, task_id, billed=False)
            billed = reply.billed(self.config.billing)
        finally:
            await self.budget.release(billed=billed)
        return reply

    def _result(self, work: Work, record: Record, reply: Reply) -> tuple[str | None, float]:
        _fill(record, reply)
        note = record.extra.pop("paid_note", None)
        if note:
            record.message = f"{record.message}; {note}" if record.message else note
        if reply.verdict is not Verdict.SUCCESS:
            if reply.error_class is ErrorClass.UNSUPPORTED_MULTIPART and work.item.path:
                record.outcome = Outcome.NOT_ATTEMPTED
                record.message = self._multipart_refused or reply.message
            return None, 0.0
        now = time.time()
        image = reply.image or ""
        if reply.result is not None:  # the reply was the image itself
            image = base64.b64encode(reply.result).decode("ascii")
        expires = api.link_expiry(image) if image.startswith(("http://", "https://")) else None
        # a link a server built around the AppCode is downloaded as it is, stored masked
        self.journal.paid(work.key, record, self.spec.secrets.mask(image), now, expires)
        return image, expires if expires is not None else now + rules.LINK_TTL

    async def _save(
        self, work: Work, record: Record, image: str, link_dies: float, note: str
    ) -> bool:
        """Download and save the result ``image`` whose link dies at ``link_dies`` (wall
        time); False, with the row's error, when it could not be saved."""
        deadline = _loop_deadline(link_dies)
        try:
            async with self._backlog.slot(deadline):
                saved = await self._downloader.save(
                    work.item, image, deadline, lambda wanted: self._claim(work, record, wanted)
                )
        except DownloadFailed as exc:
            # the message may quote the server's link: mask the AppCode should it echo it
            message = self.spec.secrets.mask(str(exc))
            record.error_class, record.message = exc.error_class, message
            if exc.error_class in (ErrorClass.LINK_EXPIRED, ErrorClass.LINK_REFUSED):
                alive = asyncio.get_running_loop().time() < deadline - CLOCK_SKEW
                fresh = exc.refused and alive
                self._dead_link(work, record, exc, fresh=fresh)
                return False
            record.message = f"{PAID_NOT_SAVED}: {message}; {self._next_run(work, image, exc)}"
            if exc.error_class == DISK_ERROR:
                self._halt_on_disk_error(message)
            return False
        self._refused_in_a_row = 0
        self._backlog.finished(saved.size)
        record.outcome = Outcome.DONE
        record.error_class = None
        record.message = note or record.message
        name_note = record.extra.pop("name_note", None)
        if name_note:
            record.message = f"{record.message}; {name_note}" if record.message else name_note
        record.output = str(saved.path)
        record.result_bytes, record.width, record.height = saved.size, saved.width, saved.height
        if record.input_width:
            record.factor = round(saved.width / record.input_width, 2)
        self.journal.saved(work.key, record, saved.path, saved.sha256)
        return True

    def _dead_link(self, work: Work, record: Record, exc: DownloadFailed, *, fresh: bool) -> None:
        """A result link that does not work.  Its host saying it has expired (or our clock)
        means a paid result not yet saved is lost: booked so, and calling again for it is a
        paid retry.  A link refused although it should live (a proxy, a firewall) keeps the
        paid result for a later run; fresh links refused again and again mean no result can
        be fetched from here, so the run halts rather than pay on."""
        if fresh and not work.delivered:  # what would be paid for again
            self._refused_in_a_row += 1
            if self._refused_in_a_row >= REFUSED_LINKS_HALT:
                message = (
                    f"{self._refused_in_a_row} result links in a row were refused by their "
                    f"host although they had not expired (last: {record.message})"
                )
                self._halt(
                    Reply(
                        Verdict.HALT,
                        ErrorClass.LINK_REFUSED,
                        message=message,
                        halt_status=ExitStatus.TROUBLE,
                    )
                )
            if exc.error_class == ErrorClass.LINK_REFUSED:
                record.message = f"{PAID_NOT_SAVED}: {record.message}; {DOWNLOADS_LATER}"
                return
        record.error_class = ErrorClass.LINK_EXPIRED
        self._lose_result(work)

    def _lose_result(self, work: Work) -> None:
        """A paid result that cannot be had from its link any more: booked once as a paid
        call without a result, so calling again for it is a paid retry."""
        self.journal.link_dead(work.key)
        if work.delivered:
            return  # a saved result's link: nothing was lost
        self.result.expired_links += 1
        self.result.paid_failures += 1
        if work.paid_failures_left is not None:
            work.paid_failures_left -= 1

    def _next_run(self, work: Work, image: str, exc: DownloadFailed) -> str:
        """What a re-run does about a paid result this run could not save: download it
        while its link lives, unless the link itself can never give it (not an http(s)
        link nor base64, a redirect to file:, too large) or was stored masked (it held
        the AppCode); then the link is given up and a re-run calls again."""
        if exc.error_class == DISK_ERROR or (
            exc.retryable and not self.spec.secrets.found_in(image)
        ):
            return DOWNLOADS_LATER
        self._lose_result(work)
        if self.spec.secrets.found_in(image):
            return CALLS_LATER_MASKED
        return CALLS_LATER

    def _claim(self, work: Work, record: Record, wanted: PurePosixPath) -> PurePosixPath:
        """Reserve the result's name in the journal; another input's name is never taken."""
        relpath = self.journal.claim(work.key, wanted)
        if relpath != wanted:
            record.extra["name_note"] = f"named {relpath}: {wanted} is another input's result"
        return relpath

    async def _call(self, work: Work, record: Record, reply: Reply | None) -> Reply | None:
        """Call until success, a final answer, or the retry budgets are spent; each call
        holds a unit of the --max-calls budget until it is known whether it was paid.
        None when no call could start (run stopping, budget spent)."""
        cfg = self.config
        failures = throttled = 0
        while True:
            if not await self.budget.reserve():
                _max_calls_reached(record, cfg.max_calls, tried=reply is not None)
                return reply
            billed = False
            try:
                attempt = await self._attempt(work, record)
                if attempt is None:
                    return reply
                reply, billed = attempt
            finally:
                # cut short after going out (a second Ctrl-C): possibly paid, so counted
                await self.budget.release(billed=billed or work.call_out)
            self._settle(work, record, reply, billed=billed)
            if reply.verdict in (Verdict.SUCCESS, Verdict.FINAL):
                if self._body_refused(work, reply):
                    continue  # sent again in the other encoding: a 400 is not billed
                return reply
            if reply.verdict is Verdict.HALT:
                self._halt(reply)
                return reply
            if reply.verdict is Verdict.PENDING:
                return reply  # the run stopped while the task ran: a re-run fetches it
            if reply.verdict is Verdict.THROTTLE:
                throttled += 1
                self.result.throttled += 1
                self.gate.pause(reply.retry_after or cfg.throttle_pause)
                if throttled > cfg.max_throttled:
                    return reply
                continue
            if billed and not self._may_pay_again(work, record):
                return reply
            failures += 1
            if failures > cfg.retries:
                return reply
            await self.gate.sleep(max(self._backoff(failures), reply.retry_after or 0.0))

    async def _attempt(self, work: Work, record: Record) -> tuple[Reply, bool] | None:
        """One call through the gate (and, for an asynchronous task, its fetches): the
        reply that decides, and whether the attempt was (or may have been) paid."""
        cfg, item, spec = self.config, work.item, self.spec
        # a result of this call must not wait for a download slot until its link dies
        await self._backlog.room_for_a_call(lambda: self._in_call, self._stopping)
        ticket = await self.gate.wait()
        if ticket is None:
            return None
        if self._on_start is not None:
            self._on_start(item)
        record.attempts += 1
        record.extra.setdefault("started", time.monotonic())
        self.journal.calling(work.key, record, item)
        started = time.monotonic()

        self._in_call += 1
        try:
            reply = await api.call_once(
                self._calls, spec, item, on_sent=ticket.sent, on_body_sent=work.went_out
            )
        finally:
            self._in_call -= 1
            ticket.sent()  # never went out (or no trace): it counts from now
        work.call_out = False  # answered (or given up): the reply decides what it cost
        if reply.http_status is None and self._http_log is not None:
            self._http_log(f"http: POST {spec.endpoint} -> no reply: {reply.message}")
        self._note_reachability(reply, started)
        billed = reply.billed(cfg.billing)
        if billed:
            self._count_paid(work, record)
        elif reply.lost_after_sending:
            self._count_paid(work, record, certain=False)
        if reply.verdict is Verdict.PENDING and reply.task_id:
            _fill(record, reply)
            self.journal.pending(work.key, record, reply.task_id, time.time())
            reply = await self._poll(work, record, reply.task_id, billed=billed)
        return reply, billed or reply.lost_after_sending or reply.billed(cfg.billing)

    async def _poll(self, work: Work, record: Record, task_id: str, *, billed: bool) -> Reply:
        """Fetch the task about once a second until it ends or ``poll_limit`` passes.

        A task that ends with its result is billed now if its creation was not (a seller
        billing successes only).  A task still running, or whose fetch path the endpoint
        refuses, stays paid-and-pending in the journal, so a re-run fetches it."""
        cfg = self.config
        loop = asyncio.get_running_loop()
        deadline = loop.time() + cfg.poll_limit
        last = Reply(Verdict.PENDING, ErrorClass.UNFINISHED, task_id=task_id)
        while loop.time() < deadline:
            await self.gate.sleep(cfg.poll_interval)
            ticket = await self.gate.wait(first=True) if cfg.polls_use_gate else None
            if self.gate.closed or (cfg.polls_use_gate and ticket is None):
                break
            self.result.polls += 1
            reply = await api.poll_once(
                self._calls, self.spec, task_id, ticket.sent if ticket else _nothing
            )
            if ticket is not None:
                ticket.sent()
            if reply.verdict is Verdict.THROTTLE:
                self.result.throttled += 1
                self.gate.pause(reply.retry_after or cfg.throttle_pause)
            elif reply.verdict is Verdict.HALT and reply.error_class in _ENDPOINT_REFUSALS:
                return _unfetchable(task_id, reply)
            elif reply.verdict is Verdict.HALT:
                self._halt(reply)
                break
            elif reply.verdict is Verdict.PENDING:
                last = reply  # still running
            elif reply.verdict is not Verdict.RETRY or reply.state is not None:
                # The task ended: with its result, a failing state, or a final answer.
                if not billed and reply.billed(cfg.billing):
                    self._count_paid(work, record)
                return dataclasses.replace(reply, task_id=task_id)
            # else the fetch itself failed (network, 5xx): fetch again
        message = (
            f"task {task_id} had not finished when this run stopped fetching it; "
            "a re-run fetches it without paying again"
        )
        return dataclasses.replace(last, verdict=Verdict.PENDING, message=message, task_id=task_id)

    def _count_paid(self, work: Work, record: Record, *, certain: bool = True) -> None:
        record.paid_calls += 1
        if certain:
            self.result.paid_calls += 1
        else:
            self.result.possibly_paid += 1
        self.journal.billed(work.key, certain=certain)

    def _settle(self, work: Work, record: Record, reply: Reply, *, billed: bool) -> None:
        """Book a paid attempt that brought no result against the input's allowance."""
        if not billed or reply.verdict in (Verdict.SUCCESS, Verdict.PENDING):
            return
        self.result.paid_failures += 1
        self.journal.paid_without_result(work.key)
        if work.paid_failures_left is not None:
            work.paid_failures_left -= 1

    def _may_pay_again(self, work: Work, record: Record) -> bool:
        """After a billed failure: whether --paid-retries allows another paid call."""
        if work.paid_failures_left is None or work.paid_failures_left > 0:
            self.result.paid_retries += 1
            return True
        record.extra["paid_note"] = (
            f"not called again: {record.paid_calls} paid call(s) of this run brought no "
            f"result (--paid-retries {self.config.paid_retries})"
        )
        return False

    def _body_refused(self, work: Work, reply: Reply) -> bool:
        """React to a reply saying the body encoding cannot work; True: send it again."""
        if reply.error_class is ErrorClass.UNSUPPORTED_MULTIPART:
            if work.item.path is not None:
                self._multipart_refused = (
                    "the gateway refuses multipart bodies (Unsupported Multipart), so local "
                    "files cannot be sent: host them and pass their URLs"
                )
                return False
            return self._switch_body(Body.FORM, reply, "refuses multipart bodies")
        if reply.error_class is not ErrorClass.PARAMS_NOT_SEEN:
            return False
        if work.item.path is not None:
            self._multipart_refused = (
                "the endpoint did not read the fields of a multipart upload, so local "
                f"files cannot be sent: {reply.message}"
            )
            return False
        return self._switch_body(Body.MULTIPART, reply, "did not read the form fields")

    def _switch_body(self, body: Body, reply: Reply, why: str) -> bool:
        if self.spec.body is body:
            return True  # another call switched it meanwhile: send this one again
        if self.config.body_fixed or self.result.body_switched:
            other = "multipart" if body is Body.MULTIPART else "form"
            message = f"the endpoint {why} ({reply.message}); try --body {other}"
            self._halt(dataclasses.replace(reply, message=message, halt_status=ExitStatus.USAGE))
            return False
        self.spec = dataclasses.replace(self.spec, body=body)
        self.result.body_switched = True
        self.journal.remember(BODY_SETTING, body.value)
        if self._notice is not None:
            self._notice(
                f"the endpoint {why} ({reply.message}): sending {body.value} bodies from now "
                "on (remembered for this output directory; --body sets it)"
            )
        return True

    async def _log_exchange(self, response: httpx.Response) -> None:
        if self._http_log is not None:
            self._http_log(api.describe_exchange(response, self.spec.secrets))

    def _note_reachability(self, reply: Reply, started: float) -> None:
        """Halt when the endpoint has answered nothing for many calls in a row: a wrong
        --endpoint, DNS failure or a server that went away; retrying cannot help.  A call
        that went out before the endpoint's latest reply does not count: the endpoint
        answered meanwhile (slow calls that time out together are not silence)."""
        if reply.http_status is not None:
            self._unanswered = 0
            self._answered_at = time.monotonic()
            return
        if reply.error_class == TOO_MANY_OPEN_FILES:
            return  # this process's limit, not the endpoint's silence
        if started < self._answered_at:
            return
        self._unanswered += 1
        if self._unanswered >= UNREACHABLE_AFTER:
            self._halt(
                Reply(
                    Verdict.HALT,
                    ErrorClass.UNREACHABLE,
                    message=f"no reply to {self._unanswered} calls in a row; last: {reply.message}",
                    halt_status=ExitStatus.TROUBLE,
                )
            )

    def _backoff(self, failures: int) -> float:
        """Full-jitter exponential backoff."""
        cfg = self.config
        return random.uniform(0, min(cfg.backoff_cap, cfg.backoff * 2 ** (failures - 1)))


_ENDPOINT_REFUSALS = (ErrorClass.ENDPOINT_REFUSED, ErrorClass.ENDPOINT_NOT_FOUND)


UNLISTED = "not in this run's list: "
"""The start of the row of an earlier run's paid work that this run settled unasked."""
PAID_NOT_SAVED = "paid, not saved"
"""The start of the message of an input whose result was paid for and not saved."""
DOWNLOADS_LATER = "a re-run downloads it without a new call while its link lives"
CALLS_LATER = "this link cannot give the result: a re-run calls again (a new paid call)"
CALLS_LATER_MASKED = (
    "its link held the AppCode, which is never stored: a re-run calls again (a new paid call)"
)


def _nothing() -> None:
    return None


_MASKED_FIELDS = ("input", "output", "state_meaning", "message", "task_id", "request_id")


def _mask_record(record: Record, secrets: Secrets) -> None:
    """The last net before a row reaches the report, stdout or stderr: the AppCode
    masked in every text field, wherever it came from."""
    for name in _MASKED_FIELDS:
        value = getattr(record, name)
        if value and secrets.found_in(value):
            setattr(record, name, secrets.mask(value))


def _unfetchable(task_id: str, reply: Reply) -> Reply:
    """The endpoint refuses to return tasks: the paid task stays pending in the journal."""
    message = (
        f"task {task_id} is unfinished and the endpoint refuses to return it "
        f"({reply.message or reply.http_status}); it stays paid-and-pending in the journal"
    )
    return dataclasses.replace(
        reply,
        verdict=Verdict.FINAL,
        error_class=ErrorClass.UNFINISHED,
        message=message,
        task_id=task_id,
    )


def _max_calls_reached(record: Record, limit: int | None, *, tried: bool) -> None:
    record.extra["paid_note"] = f"--max-calls {limit} reached"
    if tried:
        return  # the input keeps its last failure, with the note
    record.outcome = Outcome.NOT_ATTEMPTED
    record.message = f"not attempted (max-calls {limit} reached)"
    record.error_class = ErrorClass.MAX_CALLS


def _fill(record: Record, reply: Reply) -> None:
    record.http_status = reply.http_status
    record.status = reply.status
    record.state = reply.state
    record.state_meaning = rules.state_meaning(reply.state)
    record.message = reply.message
    record.task_id = reply.task_id
    record.request_id = reply.request_id
    record.created_at = reply.created_at
    record.completed_at = reply.completed_at
    record.error_class = reply.error_class


def _restore(record: Record, earlier: Record) -> None:
    """Carry over what the earlier run learnt from the (paid) call."""
    for name in ("http_status", "status", "state", "state_meaning", "task_id", "request_id"):
        setattr(record, name, getattr(earlier, name))
    record.created_at, record.completed_at = earlier.created_at, earlier.completed_at


def _loop_deadline(wall_time: float) -> float:
    """A wall-clock instant on the event loop's clock."""
    return asyncio.get_running_loop().time() + (wall_time - time.time())


def _planned_action(record: Record) -> str:
    """Dry run: the action of an input decided as a row."""
    if record.outcome is Outcome.SKIPPED:
        return "copy" if bool(record.extra.get("copy")) else Action.SKIP.value
    if record.outcome is Outcome.FAILED:
        return Action.SKIP_FAILED.value
    return str(record.outcome.value)  # invalid, not-attempted


def _first_of(item: InputItem) -> str:
    """The input a duplicate repeats, from the words of the input reader."""
    return (item.error or "").removeprefix("duplicate of ") or "an earlier input"


def _from_journal(item: InputItem, plan: Plan, journal: Journal | None = None) -> Record:
    """The row of an input decided by its journal entry (done or failed in an earlier
    run): nothing of this run's, no call and nothing paid."""
    entry = plan.entry
    assert entry is not None
    changes: dict[str, object] = {"input": item.source, "attempts": 0, "paid_calls": 0}
    changes["elapsed"] = None
    if plan.action is Action.SKIP:
        changes["outcome"], changes["message"] = Outcome.SKIPPED.value, plan.reason
    else:
        changes["message"] = f"{plan.reason}: {entry.fields.get('message') or ''}"
    record = entry.record_with(**changes)
    return record if journal is None else journal.located(record)


def _invalid(item: InputItem) -> Record:
    return Record(
        input=item.source,
        outcome=Outcome.INVALID,
        message=item.error or "",
        error_class=item.error_class or "bad-input",
    )


def _not_attempted(item: InputItem, reason: str) -> Record:
    return Record(
        input=item.source,
        outcome=Outcome.NOT_ATTEMPTED,
        message=reason,
        error_class="not-attempted",
    )
