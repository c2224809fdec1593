"""What the parts of one batch share: the scheduler (:mod:`~zuotang_cli.engine.batch`),
the calls (:mod:`~zuotang_cli.engine.calls`), the saving of results
(:mod:`~zuotang_cli.engine.saving`) and the job of each input
(:mod:`~zuotang_cli.engine.job`)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

from zuotang_cli.engine.budget import CallBudget, DailyBudget
from zuotang_cli.engine.ratelimit import RateGate
from zuotang_cli.engine.state import BODY_SETTING, FILES_SETTING, BatchConfig, BatchResult
from zuotang_cli.engine.uploads import NO_BUCKET, Uploads
from zuotang_cli.models import ErrorClass, InputItem
from zuotang_cli.protocol.api import CallSpec, Reply, Verdict
from zuotang_cli.protocol.rules import Body, FileTransport
from zuotang_cli.status import ExitStatus
from zuotang_cli.store.journal import Journal

CALLS_TODAY = "calls-today"
"""The journal's memory of the paid calls of the day (``DAY COUNT``), for
``--max-calls-per-day`` across restarts."""


@dataclass
class Hooks:
    """What a batch tells its caller as it goes (each optional)."""

    on_start: Callable[[InputItem], None] | None = None
    """A call of this input is starting (the progress display)."""
    http_log: Callable[[str], None] | None = None
    """One line for each HTTP exchange (``--verbose``)."""
    notice: Callable[[str], None] | None = None
    """Something the user should know at once (the body encoding switched)."""
    on_halt: Callable[[Reply], None] | None = None
    """The run halts, and why (the CLI says it at once, and again at the end)."""


@dataclass
class Shared:
    config: BatchConfig
    journal: Journal
    spec: CallSpec
    """The call spec in force: its body encoding may change during the run."""
    halt: Callable[[Reply], None]
    """Start no new call: the account, the endpoint or the disk cannot go on."""
    hooks: Hooks = field(default_factory=Hooks)
    result: BatchResult = field(default_factory=BatchResult)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    stop_reason: str | None = None
    """Why nothing new starts any more (set once)."""
    multipart_refused: str | None = None
    """Why local files cannot be sent this run (the gateway refuses multipart)."""

    def __post_init__(self) -> None:
        self._remembered()
        hooks = self.hooks
        self.uploads = Uploads(self.config, self.journal, self.result, hooks.notice, hooks.http_log)
        self.gate = RateGate(self.config.qps)
        daily = None
        if self.config.max_calls_per_day is not None:
            daily = DailyBudget(
                self.config.max_calls_per_day,
                self.config.clock,
                self.stopping,
                recalled=self.journal.setting(CALLS_TODAY),
                remember=lambda value: self.journal.remember(CALLS_TODAY, value),
                notice=self.hooks.notice,
            )
        self.budget = CallBudget(self.config.max_calls, daily)

    def _remembered(self) -> None:
        """What the output directory's endpoint was found to need, unless the user chose:
        the body encoding of URL calls, and local files through the bucket."""
        config, journal = self.config, self.journal
        body = None if config.body_fixed else journal.setting(BODY_SETTING)
        if body in (Body.FORM.value, Body.MULTIPART.value):
            self.spec = dataclasses.replace(self.spec, body=Body(body))
        files = None if config.files_fixed else journal.setting(FILES_SETTING)
        if files == FileTransport.BUCKET.value and config.upload_to is not None:
            self.spec = dataclasses.replace(self.spec, files=FileTransport.BUCKET)
        elif files == FileTransport.BUCKET.value or (
            self.spec.files is FileTransport.BUCKET and config.upload_to is None
        ):
            self.multipart_refused = NO_BUCKET

    def halt_on_disk_error(self, message: str) -> None:
        """A result that cannot be saved is money lost: start no more calls."""
        self.halt(
            Reply(
                Verdict.HALT,
                ErrorClass.DISK_ERROR,
                message=message,
                halt_status=ExitStatus.TROUBLE,
            )
        )

    async def take(self, slots: asyncio.Semaphore) -> bool:
        """Take one of ``slots`` (waiting for it); False, none taken, when the run stops
        before one is free."""
        if self.stop_reason is not None:
            return False
        if not slots.locked():  # free: take it without yielding to the loop
            await slots.acquire()
            return True
        acquire = asyncio.ensure_future(slots.acquire())
        stopping = asyncio.ensure_future(self.stopping.wait())
        await asyncio.wait({acquire, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if acquire.done() and not acquire.cancelled() and self.stop_reason is None:
            return True
        if acquire.done() and not acquire.cancelled():
            slots.release()
        acquire.cancel()
        return False
