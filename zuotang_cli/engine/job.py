"""The work of one input, from its plan to its final row (docs/architecture.md, "One input").

A :class:`Job` downloads what an earlier run paid for while its link lives, fetches a task
an earlier run paid for, or calls (:mod:`~zuotang_cli.engine.calls`), then saves the result
(:mod:`~zuotang_cli.engine.saving`); a paid result whose link dies before it is saved is
money lost, so calling again for it is a paid retry.  Whatever happens, even a second
Ctrl-C or a disk that fails, :meth:`Job.run` returns the input's row, which nothing
changes afterwards, and the journal holds what it cost.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import time

from zuotang_cli import reasons
from zuotang_cli.engine.calls import Calls
from zuotang_cli.engine.rows import DOWNLOADS_LATER, PAID_NOT_SAVED, fill, restore
from zuotang_cli.engine.saving import Saver
from zuotang_cli.engine.shared import Shared
from zuotang_cli.engine.state import Work
from zuotang_cli.errors import LocalError
from zuotang_cli.models import ErrorClass, Outcome, Record
from zuotang_cli.protocol import api, preflight, rules
from zuotang_cli.protocol.api import Reply, Verdict
from zuotang_cli.protocol.rules import Billing
from zuotang_cli.store.download import DISK_ERROR, os_error_class
from zuotang_cli.store.journal import LINK_MARGIN, Status
from zuotang_cli.store.planner import RESULT_GONE, Action


class Job:
    """One input's processing (see the module)."""

    def __init__(self, work: Work, shared: Shared, calls: Calls, saver: Saver) -> None:
        self.work = work
        self.shared, self.calls, self.saver = shared, calls, saver
        self.config, self.journal, self.result = shared.config, shared.journal, shared.result
        item = work.item
        self.record = Record(
            input=item.source,
            outcome=Outcome.FAILED,
            input_width=item.width,
            input_height=item.height,
            type=shared.config.spec.type,
            scale=str(shared.config.spec.scale or "auto"),
        )
        work.record = self.record
        self._started: float | None = None
        """When this input's first call, fetch or download began (monotonic)."""

    async def run(self) -> Record:
        """The input's final row; every failure becomes one (a bug costs one input).  Its
        object in the user's bucket goes once the row is final, unless a re-run needs it."""
        record = await self._row()
        with contextlib.suppress(Exception):  # a failed delete: the sweep tries again
            await self.shared.uploads.finished(self.work, record)
        return record

    async def _row(self) -> Record:
        try:
            return await self._process()
        except asyncio.CancelledError:  # SIGTERM, a second Ctrl-C: say what was left undone
            return self._cut_short()
        except (LocalError, OSError) as exc:  # the journal or the disk
            cause = exc if isinstance(exc, OSError) else exc.__cause__
            error_class = os_error_class(cause) if isinstance(cause, OSError) else DISK_ERROR
            if error_class == DISK_ERROR:  # nothing more can be saved
                self.shared.halt_on_disk_error(str(exc))
            return self._local_failure(error_class, str(exc))
        except Exception as exc:
            message = self.shared.spec.secrets.mask(f"{type(exc).__name__}: {exc}")
            return self._failure(ErrorClass.INTERNAL, message)

    def _failure(self, error_class: ErrorClass, message: str) -> Record:
        return Record(
            input=self.work.item.source,
            outcome=Outcome.FAILED,
            message=message,
            error_class=error_class,
        )

    def _local_failure(self, error_class: ErrorClass, message: str) -> Record:
        """The row of an input the journal or the disk failed: what it paid is kept, and
        said, with what the next run does about it (the journal may not have booked it)."""
        record = self.record
        if not record.paid_calls:
            return self._failure(error_class, message)
        record.outcome, record.error_class, record.output = Outcome.FAILED, error_class, None
        with contextlib.suppress(LocalError):
            entry = self.journal.get(self.work.key)
            if entry is not None and entry.status in (Status.PAID, Status.PENDING):
                record.message = f"{PAID_NOT_SAVED}: {message}; {DOWNLOADS_LATER}"
                return record
        unbooked = "the journal could not book it: a re-run calls it again"
        record.message = f"{PAID_NOT_SAVED}: {message}; {unbooked}"
        return record

    def _cut_short(self) -> Record:
        """The row of an input whose processing a second Ctrl-C (or SIGTERM) cut short; a
        call cut short after it went out may still be billed: counted as possibly paid."""
        work, record = self.work, self.record
        entry = self.journal.get(work.key)
        if entry is not None and entry.status is Status.SAVED:
            return self.journal.located(entry.record)
        paid = entry is not None and entry.status in (Status.PAID, Status.PENDING)
        went_out, work.call_out = work.call_out, False
        if went_out:  # billed upstream or not, nobody can tell
            self.calls.count_paid(work, record, certain=False)
            self.calls.settle(work, record, Reply(Verdict.RETRY), billed=True)
        if paid:
            record.message = reasons.INTERRUPTED_PAID
        elif went_out:
            record.message = reasons.INTERRUPTED_WENT_OUT
        elif record.attempts:
            record.message = reasons.INTERRUPTED_BEFORE
        record.outcome, record.error_class = Outcome.FAILED, ErrorClass.INTERRUPTED
        if not paid and not record.attempts:
            record.outcome, record.error_class = Outcome.NOT_ATTEMPTED, ErrorClass.NOT_ATTEMPTED
            record.message = reasons.INTERRUPTED
        self.journal.failed(work.key, record)  # keeps a paid link or task for the next run
        return record

    async def _process(self) -> Record:
        record = self.record
        self.result.note_scale(self.config.spec.scale, record)
        try:
            await self._download_or_call()
        finally:
            if self.work.started is not None:
                record.elapsed = time.monotonic() - self.work.started
        if record.outcome is not Outcome.DONE:
            self.journal.failed(self.work.key, record)
        return record

    async def _download_or_call(self) -> None:
        """Download what an earlier run paid for while its link lives; fetch a task it
        paid for; else call.  A paid result whose link dies before it is saved is money
        lost: calling again for it is a paid retry (``--paid-retries``, over all runs)."""
        work, record = self.work, self.record
        plan, entry = work.plan, work.plan.entry
        if plan.lost:  # paid earlier, its link expired since: booked before paying again
            self.journal.link_dead(work.key)
            self.result.expired_links += 1
        if plan.action is Action.DOWNLOAD and entry is not None and entry.image:
            work.delivered = entry.status is Status.SAVED
            restore(record, entry.record)
            work.start()
            link_dies = (entry.link_expires or 0.0) + LINK_MARGIN  # stored with the margin
            if await self.saver.save(work, record, entry.image, link_dies, plan.reason):
                return
            if record.error_class != ErrorClass.LINK_EXPIRED:
                return
            if work.delivered:  # done before: its result is never paid for again
                record.outcome, record.error_class = Outcome.SKIPPED, None
                record.message = RESULT_GONE
                record.extra["unlisted"] = True  # no file to list on stdout
                return
            if not self.calls.may_pay_again(work, record):
                return
        note = plan.reason
        while True:
            image, expires = await self._paid_result()
            if image is None:
                return
            if await self.saver.save(work, record, image, expires, note):
                return
            if record.error_class != ErrorClass.LINK_EXPIRED:
                return
            if not self.calls.may_pay_again(work, record):
                return
            note = "its link expired before it was saved: called again (a paid retry)"

    async def _refused_by_probe(self) -> bool:
        """--probe: read a remote image's header first; refuse it if the service would."""
        item, record = self.work.item, self.record
        if not self.config.probe or item.url is None or record.input_width is not None:
            return False
        info = await preflight.probe_url(self.saver.downloader.client, item.url)
        if info is None:
            return False
        if isinstance(info, preflight.Refusal):
            refusal: str | None = info.reason
        else:
            record.input_width, record.input_height = info.width, info.height
            self.work.source_head = info.head or None
            refusal = preflight.problem(info)
        if refusal is None:
            self.result.note_scale(self.config.spec.scale, record)
            return False
        record.outcome, record.error_class, record.message = (
            Outcome.INVALID,
            ErrorClass.PREFLIGHT,
            refusal,
        )
        return True

    async def _paid_result(self) -> tuple[str | None, float]:
        """The result of the input (fetching the task an earlier run paid for, else calling
        under the --max-calls budget), and until when its link lives; None when none."""
        work, record = self.work, self.record
        entry = work.plan.entry
        reply: Reply | None = None
        if work.plan.action is Action.POLL and entry is not None and entry.task_id:
            work.plan = dataclasses.replace(work.plan, action=Action.CALL)  # once
            restore(record, entry.record)
            work.start()
            reply = await self.calls.fetch_paid_task(work, record, entry.task_id)
            paid = self.config.billing is Billing.EVERY_200
            self.calls.settle(work, record, reply, billed=paid)
            if reply.verdict is not Verdict.RETRY or not paid:
                return self._result(reply)
            if not self.calls.may_pay_again(work, record):
                return self._result(reply)
        elif await self._refused_by_probe():
            return None, 0.0
        refused = self.shared.multipart_refused
        if work.item.path is not None and refused is not None:
            record.outcome, record.message = Outcome.NOT_ATTEMPTED, refused
            record.error_class = ErrorClass.NOT_ATTEMPTED
            return None, 0.0
        reply = await self.calls.call(work, record, reply)
        if reply is None:
            if record.error_class != ErrorClass.MAX_CALLS:
                record.outcome = Outcome.NOT_ATTEMPTED
                record.message = self.shared.stop_reason or ""
                record.error_class = ErrorClass.NOT_ATTEMPTED
            return None, 0.0
        return self._result(reply)

    def _result(self, reply: Reply) -> tuple[str | None, float]:
        """Fill the row from the deciding reply; the result and when its link dies (wall
        time), booked as paid in the journal, or None when the reply brought none."""
        work, record = self.work, self.record
        fill(record, reply)
        if work.paid_note:
            record.message = (
                f"{record.message}; {work.paid_note}" if record.message else work.paid_note
            )
            work.paid_note = ""
        if reply.verdict is not Verdict.SUCCESS:
            refused = (ErrorClass.UNSUPPORTED_MULTIPART, ErrorClass.PARAMS_NOT_SEEN)
            if reply.error_class in refused and work.item.path and not work.via_bucket:
                # the endpoint would not take the file in the body (nothing was paid)
                record.outcome = Outcome.NOT_ATTEMPTED
                record.message = self.shared.multipart_refused or reply.message
            return None, 0.0
        now = time.time()
        image = reply.image or ""
        if reply.result is not None:  # the reply was the image itself
            image = base64.b64encode(reply.result).decode("ascii")
        expires = api.link_expiry(image) if image.startswith(("http://", "https://")) else None
        # a link a server built around the AppCode is downloaded as it is, stored masked
        self.journal.paid(work.key, record, self.shared.spec.secrets.mask(image), now, expires)
        return image, expires if expires is not None else now + rules.LINK_TTL
