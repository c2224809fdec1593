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

from zuotang_cli import api, rules
from zuotang_cli.api import CallSpec, Reply, Verdict
from zuotang_cli.download import Downloader, DownloadFailed
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


@dataclass
class BatchResult:
    counts: dict[Outcome, int] = field(default_factory=lambda: dict.fromkeys(Outcome, 0))
    halt: Reply | None = None
    interrupted: bool = False

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
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        on_start: Callable[[InputItem], None] | None = None,
    ) -> None:
        self.config = config
        self._sink = sink
        self._transport = transport
        self._on_start = on_start
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
        limits = httpx.Limits(
            max_connections=self.concurrency, max_keepalive_connections=self.concurrency
        )
        timeout = httpx.Timeout(cfg.timeout, connect=min(cfg.timeout, 15.0))
        async with (
            httpx.AsyncClient(timeout=timeout, limits=limits, transport=self._transport) as calls,
            httpx.AsyncClient(
                timeout=httpx.Timeout(60.0, connect=15.0),
                transport=self._transport,
                follow_redirects=True,
            ) as downloads,
        ):
            self._calls = calls
            self._downloader = Downloader(downloads, cfg.output_dir, backoff=cfg.backoff / 2)
            self._download_slots = asyncio.Semaphore(
                cfg.download_concurrency or default_download_concurrency(cfg.qps)
            )
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
        async for item in items:
            if item.error is not None:
                self._emit(_invalid(item))
            elif self._stop_reason is not None:
                self._emit(_not_attempted(item, self._stop_reason))
            else:
                await self._slots.acquire()
                task = asyncio.create_task(self._run_one(item))
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

    async def _run_one(self, item: InputItem) -> None:
        try:
            record = await self._process(item)
        except Exception as exc:  # a bug must cost one input, not the batch
            record = Record(
                input=item.source,
                outcome=Outcome.FAILED,
                message=f"internal error: {type(exc).__name__}: {exc}",
                error_class="internal-error",
            )
        self._emit(record)

    def _emit(self, record: Record) -> None:
        self.result.counts[record.outcome] += 1
        self._sink(record)

    async def _process(self, item: InputItem) -> Record:
        record = Record(input=item.source, outcome=Outcome.FAILED)
        try:
            return await self._call_and_save(item, record)
        finally:
            if record.extra.get("started") is not None:
                record.elapsed = time.monotonic() - record.extra.pop("started")

    async def _call_and_save(self, item: InputItem, record: Record) -> Record:
        reply = await self._call(item, record)
        if reply is None:
            record.outcome = Outcome.NOT_ATTEMPTED
            record.message = self._stop_reason or ""
            record.error_class = "not-attempted"
            return record
        _fill(record, reply)
        if reply.verdict is not Verdict.SUCCESS:
            return record
        assert reply.image is not None
        # The link is valid for an hour from the call; keep a margin for clock and transit.
        deadline = asyncio.get_running_loop().time() + rules.LINK_TTL - 60.0
        try:
            async with self._download_slots:
                saved = await self._downloader.save(item, reply.image, deadline)
        except DownloadFailed as exc:
            record.error_class, record.message = exc.error_class, str(exc)
            return record
        record.outcome = Outcome.DONE
        record.output = str(saved.path)
        record.result_bytes, record.width, record.height = saved.size, saved.width, saved.height
        return record

    async def _call(self, item: InputItem, record: Record) -> Reply | None:
        """Call until success, a final answer, or the retry budgets are spent."""
        cfg = self.config
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
            try:
                reply = await api.call_once(self._calls, cfg.spec, item, on_sent=ticket.sent)
            finally:
                ticket.sent()  # never went out (or no trace): it counts from now
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

    def _note_reachability(self, reply: Reply) -> None:
        """Halt when the endpoint has answered nothing for many calls in a row: a wrong
        --endpoint, DNS failure or a server that went away; retrying cannot help."""
        if reply.http_status is not None:
            self._unanswered = 0
            return
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
