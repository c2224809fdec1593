"""The batch runner: inputs in, one record per input out (design.md §3).

Every request start passes one :class:`RateGate`; up to ``concurrency`` inputs are in
flight, each holding its slot from the call through the download, so results never pile
up waiting for a download while their links age.  Downloads have their own smaller pool
and never hold up the calls of other inputs.  A halt (auth, quota) or a stop request
(Ctrl-C) closes the gate: nothing new starts, what is in flight finishes.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from zuotang_cli import api, preflight, rules
from zuotang_cli.api import CallSpec, Reply, Verdict
from zuotang_cli.download import (
    DISK_ERROR,
    TOO_MANY_OPEN_FILES,
    Downloader,
    DownloadFailed,
    os_error_class,
)
from zuotang_cli.errors import LocalError
from zuotang_cli.http_pool import new_client
from zuotang_cli.journal import LINK_MARGIN, Action, Journal, Plan, entry_key
from zuotang_cli.models import InputItem, Outcome, Record
from zuotang_cli.ratelimit import RateGate
from zuotang_cli.status import ExitStatus

UNREACHABLE_AFTER = 12
"""Calls in a row without any HTTP reply after which the run halts."""
DEFAULT_TIMEOUT = 45.0
"""Per-call timeout: above the service's 30 s processing ceiling."""


def default_concurrency(qps: float) -> int:
    """Calls in flight needed to keep ``qps`` starts a second when a call can take 30 s."""
    return max(4, math.ceil(qps * (rules.SERVICE_TIMEOUT + 2)))


def default_download_concurrency(qps: float) -> int:
    return min(64, max(4, math.ceil(qps * 2)))


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


@dataclass(frozen=True)
class Work:
    item: InputItem
    key: str
    plan: Plan


class CallBudget:
    """--max-calls: at most ``limit`` billed calls; a call in flight holds one unit, given
    back if it ends unpaid, so the total can never pass the limit."""

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
    scale_not_applied: int = 0
    """Inputs whose requested --scale the service does not apply (long side too big)."""

    @property
    def exit_status(self) -> ExitStatus:
        if self.interrupted:
            return ExitStatus.INTERRUPTED
        if self.halt is not None:
            return self.halt.halt_status
        bad = sum(n for outcome, n in self.counts.items() if outcome not in _OK)
        return ExitStatus.SOME_FAILED if bad else ExitStatus.SUCCESS


_OK = (Outcome.DONE, Outcome.SKIPPED)

Sink = Callable[[Record], None]


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
    ) -> None:
        self.config = config
        self._sink = sink
        self.journal = journal
        self.budget = CallBudget(config.max_calls)
        self._transport = transport
        self._on_start = on_start
        self._http_log = http_log
        self.concurrency = config.concurrency or default_concurrency(config.qps)
        self.gate = RateGate(config.qps)
        self.result = BatchResult()
        self._stop_reason: str | None = None
        self._feeder: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._fatal: BaseException | None = None
        self._unanswered = 0
        """Calls in a row that got no HTTP reply at all."""

    # -- control -------------------------------------------------------------------------

    def request_stop(self) -> None:
        """First Ctrl-C: start nothing new, let what is in flight finish."""
        self.result.interrupted = True
        self._stop_reason = "interrupted"
        self.gate.close()
        if self._feeder is not None:
            self._feeder.cancel()

    def _halt(self, reply: Reply) -> None:
        if self.result.halt is None:
            self.result.halt = reply
            self._stop_reason = f"halted: {reply.error_class}"
        self.gate.close()

    # -- the run -------------------------------------------------------------------------

    async def run(self, items: AsyncIterator[InputItem]) -> BatchResult:
        cfg = self.config
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
            self._downloader = Downloader(downloads, cfg.output_dir, backoff=cfg.backoff / 2)
            self._download_slots = asyncio.Semaphore(downloads_at_once)
            self._slots = asyncio.Semaphore(self.concurrency)
            # The feeder runs apart so that a stop request can cancel it while it waits for
            # input or for a slot, without touching the calls already in flight.
            self._feeder = asyncio.create_task(self._feed(items))
            try:
                await asyncio.wait({self._feeder})
                if not self._feeder.cancelled() and self._feeder.exception() is not None:
                    raise self._feeder.exception()  # type: ignore[misc]
                while self._tasks:
                    await asyncio.wait(set(self._tasks))
                if self._fatal is not None:
                    raise self._fatal
            finally:
                self._feeder.cancel()
                for task in self._tasks:
                    task.cancel()
        return self.result

    async def _feed(self, items: AsyncIterator[InputItem]) -> None:
        cfg = self.config
        async for item in items:
            if item.error is not None:
                self._emit(_invalid(item))
                continue
            key = entry_key(item, cfg.spec.type, cfg.spec.scale)
            plan = self.journal.plan(
                key, force=cfg.force, retry_failed=cfg.retry_failed, now=time.time()
            )
            if plan.action in (Action.SKIP, Action.SKIP_FAILED):
                self._emit(_from_journal(item, plan))
            elif self._stop_reason is not None:
                self._emit(_not_attempted(item, self._stop_reason))
            else:
                await self._slots.acquire()
                task = asyncio.create_task(self._run_one(Work(item, key, plan)))
                self._tasks.add(task)
                task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._slots.release()
        if not task.cancelled() and task.exception() is not None and self._fatal is None:
            # Only the sink (report / stdout) can fail here: nothing more can be recorded.
            self._fatal = task.exception()
            self.gate.close()
            if self._feeder is not None:
                self._feeder.cancel()

    async def _run_one(self, work: Work) -> None:
        try:
            record = await self._process(work)
        except (LocalError, OSError) as exc:  # the journal or the disk
            cause = exc if isinstance(exc, OSError) else exc.__cause__
            error_class = os_error_class(cause) if isinstance(cause, OSError) else DISK_ERROR
            record = self._failure(work, error_class, str(exc))
            if error_class == DISK_ERROR:  # nothing more can be saved
                self._halt_on_disk_error(record.message)
        except Exception as exc:  # a bug must cost one input, not the batch
            record = self._failure(work, "internal-error", f"{type(exc).__name__}: {exc}")
        self._emit(record)

    @staticmethod
    def _failure(work: Work, error_class: str, message: str) -> Record:
        return Record(
            input=work.item.source,
            outcome=Outcome.FAILED,
            message=message,
            error_class=error_class,
        )

    def _halt_on_disk_error(self, message: str) -> None:
        """A result that cannot be saved is money lost: start no more calls."""
        reply = Reply(Verdict.HALT, DISK_ERROR, message=message, halt_status=ExitStatus.SOME_FAILED)
        self._halt(reply)

    def _emit(self, record: Record) -> None:
        self.result.counts[record.outcome] += 1
        self._sink(record)

    async def _process(self, work: Work) -> Record:
        item = work.item
        record = Record(
            input=item.source,
            outcome=Outcome.FAILED,
            input_width=item.width,
            input_height=item.height,
        )
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
        """Download what an earlier run paid for while its link lives; else call (again
        once, if a fresh link turns out to have expired already)."""
        entry = work.plan.entry
        recall = False
        if work.plan.action is Action.DOWNLOAD and entry is not None and entry.image:
            _restore(record, entry.record)
            record.extra.setdefault("started", time.monotonic())
            deadline = _loop_deadline(entry.link_expires or 0.0)
            if await self._save(work, record, entry.image, deadline, work.plan.reason):
                return
            if record.error_class != "link-expired":
                return
            recall = True
        while True:
            note = "its link had expired: called again" if recall else work.plan.reason
            image = await self._paid_call(work, record)
            if image is None:
                return
            deadline = _loop_deadline(time.time() + rules.LINK_TTL - LINK_MARGIN)
            if await self._save(work, record, image, deadline, note):
                return
            if record.error_class != "link-expired" or recall:
                return
            recall = True

    async def _refused_by_probe(self, work: Work, record: Record) -> bool:
        """--probe: read a remote image's header first; refuse it if the service would."""
        if not self.config.probe or work.item.url is None or record.input_width is not None:
            return False
        info = await preflight.probe_url(self._downloader.client, work.item.url)
        if info is None:
            return False
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
        """Count inputs whose requested --scale the service will not apply."""
        requested = self.config.spec.scale
        if requested is None or record.input_width is None or record.input_height is None:
            return
        long_side = max(record.input_width, record.input_height)
        if rules.effective_factor(long_side, requested) != requested:
            self.result.scale_not_applied += 1

    async def _paid_call(self, work: Work, record: Record) -> str | None:
        """One input's calls under the --max-calls budget: the result image, or None."""
        if await self._refused_by_probe(work, record):
            return None
        if not await self.budget.reserve():
            record.outcome = Outcome.NOT_ATTEMPTED
            record.message = f"not attempted (max-calls {self.config.max_calls} reached)"
            record.error_class = "max-calls"
            return None
        reply = None
        try:
            reply = await self._call(work, record)
        finally:
            await self.budget.release(billed=reply is not None and reply.verdict is Verdict.SUCCESS)
        if reply is None:
            record.outcome = Outcome.NOT_ATTEMPTED
            record.message = self._stop_reason or ""
            record.error_class = "not-attempted"
            return None
        _fill(record, reply)
        if reply.verdict is not Verdict.SUCCESS:
            return None
        assert reply.image is not None
        self.journal.paid(work.key, record, reply.image, time.time())
        return reply.image

    async def _save(
        self, work: Work, record: Record, image: str, deadline: float, note: str
    ) -> bool:
        try:
            async with self._download_slots:
                saved = await self._downloader.save(work.item, image, deadline)
        except DownloadFailed as exc:
            # the message may quote the server's link: mask the AppCode should it echo it
            message = str(exc).replace(self.config.spec.appcode, "****")
            record.error_class, record.message = exc.error_class, message
            if exc.error_class == "link-expired":
                self.journal.link_expired(work.key)
            elif exc.error_class == DISK_ERROR:
                self._halt_on_disk_error(str(exc))
            return False
        record.outcome = Outcome.DONE
        record.error_class = None
        record.message = note or record.message
        record.output = str(saved.path)
        record.result_bytes, record.width, record.height = saved.size, saved.width, saved.height
        if record.input_width:
            record.factor = round(saved.width / record.input_width, 2)
        self.journal.saved(work.key, record, saved.path, saved.sha256)
        return True

    async def _call(self, work: Work, record: Record) -> Reply | None:
        """Call until success, a final answer, or the retry budgets are spent."""
        cfg, item = self.config, work.item
        reply: Reply | None = None
        failures = throttled = 0
        while True:
            ticket = await self.gate.wait()
            if ticket is None:
                return reply
            if self._on_start is not None:
                self._on_start(item)
            record.attempts += 1
            record.extra.setdefault("started", time.monotonic())
            self.journal.calling(work.key, record)
            try:
                reply = await api.call_once(self._calls, cfg.spec, item, on_sent=ticket.sent)
            finally:
                ticket.sent()  # never went out (or no trace): it counts from now
            if reply.http_status is None and self._http_log is not None:
                self._http_log(f"http: POST {cfg.spec.endpoint} -> no reply: {reply.message}")
            if reply.verdict in (Verdict.SUCCESS, Verdict.FINAL):
                return reply
            self._note_reachability(reply)
            if reply.verdict is Verdict.HALT:
                self._halt(reply)
                return reply
            if reply.verdict is Verdict.THROTTLE:
                throttled += 1
                self.gate.pause(reply.retry_after or cfg.throttle_pause)
                if throttled > cfg.max_throttled:
                    return reply
                continue
            failures += 1
            if failures > cfg.retries:
                return reply
            await self.gate.sleep(max(self._backoff(failures), reply.retry_after or 0.0))

    async def _log_exchange(self, response: httpx.Response) -> None:
        if self._http_log is not None:
            self._http_log(api.describe_exchange(response))

    def _note_reachability(self, reply: Reply) -> None:
        """Halt when the endpoint has answered nothing for many calls in a row: a wrong
        --endpoint, DNS failure or a server that went away; retrying cannot help."""
        if reply.http_status is not None:
            self._unanswered = 0
            return
        if reply.error_class == TOO_MANY_OPEN_FILES:
            return  # this process's limit, not the endpoint's silence
        self._unanswered += 1
        if self._unanswered >= UNREACHABLE_AFTER:
            self._halt(
                Reply(
                    Verdict.HALT,
                    "unreachable",
                    message=f"no reply to {self._unanswered} calls in a row; last: {reply.message}",
                    halt_status=ExitStatus.SOME_FAILED,
                )
            )

    def _backoff(self, failures: int) -> float:
        """Full-jitter exponential backoff."""
        cfg = self.config
        return random.uniform(0, min(cfg.backoff_cap, cfg.backoff * 2 ** (failures - 1)))


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


def _from_journal(item: InputItem, plan: Plan) -> Record:
    assert plan.entry is not None
    earlier = plan.entry.record
    record = Record.from_dict(earlier.as_dict())
    record.input = item.source
    record.attempts = 0
    record.elapsed = None
    if plan.action is Action.SKIP:
        record.outcome = Outcome.SKIPPED
        record.message = plan.reason
    else:
        record.message = f"{plan.reason}: {earlier.message}"
    return record


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
