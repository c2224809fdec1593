"""Calls to the scale endpoint for one batch: every start through the rate gate, each under
the ``--max-calls`` budget, retried within the input's retries and paid retries, an
asynchronous task fetched until it ends; the body encoding switched once when the
endpoint does not read it; the run halted when the account, the endpoint or the network
says no input can succeed (docs/architecture.md, "Money").  Every reply that may have cost
money is booked as it comes: paid, possibly paid, or paid without a result."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time

import httpx

from zuotang_cli import reasons
from zuotang_cli.engine import uploads
from zuotang_cli.engine.backlog import Backlog
from zuotang_cli.engine.rows import (
    ENDPOINT_REFUSALS,
    fill,
    nothing,
    unfetchable,
)
from zuotang_cli.engine.shared import Shared
from zuotang_cli.engine.state import BODY_SETTING, FILES_SETTING, UNREACHABLE_AFTER, Work
from zuotang_cli.engine.uploads import UploadFailed
from zuotang_cli.i18n import N_
from zuotang_cli.i18n import gettext as _
from zuotang_cli.models import ErrorClass, Outcome, Record
from zuotang_cli.protocol import api
from zuotang_cli.protocol.api import Reply, Verdict
from zuotang_cli.protocol.rules import Billing, Body, FileTransport
from zuotang_cli.status import ExitStatus
from zuotang_cli.store.download import TOO_MANY_OPEN_FILES

SIGNATURE_RETRIES = {ErrorClass.NONCE_USED: 1, ErrorClass.CLOCK_SKEW: 2}
"""Refusals of a signed request sent again at once (a fresh nonce, a corrected clock),
and how many times one call is (a call signed just before another corrected the clock
may be refused once more); after that, the usual retries."""


def skew_notice(offset: float) -> str:
    """Said once a run, when the clock was first corrected."""
    if offset > 0:
        said = _(
            "the local clock is {seconds} s behind the gateway's: signature timestamps are "
            "corrected by that for the rest of this run (set the system clock right: NTP)"
        )
    else:
        said = _(
            "the local clock is {seconds} s ahead of the gateway's: signature timestamps are "
            "corrected by that for the rest of this run (set the system clock right: NTP)"
        )
    return said.format(seconds=f"{abs(offset):.0f}")


class Calls:
    """The calls of one batch (see the module); :attr:`client` and :attr:`backlog` are set
    when the batch starts running."""

    def __init__(self, shared: Shared) -> None:
        self.shared = shared
        self.config = shared.config
        self.journal = shared.journal
        self.result = shared.result
        self.gate = shared.gate
        self.budget = shared.budget
        self.client: httpx.AsyncClient
        self.backlog: Backlog
        self._in_call = 0
        """Calls sent and not answered yet (a Ctrl-C says how many may still be billed)."""
        self._unanswered = 0
        """Calls in a row that got no HTTP reply at all."""
        self._answered_at = float("-inf")
        """When the endpoint last sent an HTTP reply (monotonic)."""

    @property
    def calls_in_flight(self) -> int:
        """Calls sent and not answered yet: cutting them short may still be billed."""
        return self._in_call

    async def call(self, work: Work, record: Record, reply: Reply | None) -> Reply | None:
        """Call until success, a final answer, or the retry budgets are spent; each call
        holds a unit of the --max-calls budget until it is known whether it was paid.
        None when no call could start (run stopping, budget spent)."""
        cfg = self.config
        failures = throttled = 0
        resent: dict[ErrorClass, int] = {}
        while True:
            if not await self.budget.reserve():
                self._max_calls_reached(work, record, tried=reply is not None)
                return reply
            billed = False
            corrections = self.shared.spec.clock.corrections  # the clock it is signed by
            try:
                attempt = await self._attempt(work, record)
                if attempt is None:
                    return reply
                reply, billed = attempt
            finally:
                # cut short after going out (a second Ctrl-C): possibly paid, so counted
                await self.budget.release(billed=billed or work.call_out)
            self.settle(work, record, reply, billed=billed)
            if reply.verdict in (Verdict.SUCCESS, Verdict.FINAL):
                if self._body_refused(work, reply):
                    continue  # sent again in the other encoding: a 400 is not billed
                return reply
            if reply.verdict is Verdict.HALT:
                self.shared.halt(reply)
                return reply
            if reply.verdict is Verdict.PENDING:
                return reply  # the run stopped while the task ran: a re-run fetches it
            kind = reply.error_class
            if kind in SIGNATURE_RETRIES and resent.get(kind, 0) < SIGNATURE_RETRIES[kind]:
                resent[kind] = resent.get(kind, 0) + 1
                if self._send_again(reply, corrections):
                    continue  # refused before the service saw it: not billed
                return reply
            if reply.verdict is Verdict.THROTTLE:
                throttled += 1
                self.result.throttled += 1
                self.gate.pause(reply.retry_after or cfg.throttle_pause)
                if throttled > cfg.max_throttled:
                    return reply
                continue
            if billed and not self.may_pay_again(work, record):
                return reply
            failures += 1
            if failures > cfg.retries:
                return reply
            await self.gate.sleep(max(self._backoff(failures), reply.retry_after or 0.0))

    async def _attempt(self, work: Work, record: Record) -> tuple[Reply, bool] | None:
        """One call through the gate (and, for an asynchronous task, its fetches): the
        reply that decides, and whether the attempt was (or may have been) paid."""
        cfg, item = self.config, work.item
        work.via_bucket = item.path is not None and self.shared.spec.files is FileTransport.BUCKET
        link = None
        if work.via_bucket:  # uploaded just in time, outside the gate; a fresh link
            try:
                link = await self.shared.uploads.link(work)
            except UploadFailed as exc:
                verdict = Verdict.FINAL if exc.final else Verdict.RETRY
                return Reply(verdict, ErrorClass.UPLOAD_FAILED, message=str(exc)), False
        spec = self.shared.spec
        # a result of this call must not wait for a download slot until its link dies
        await self.backlog.room_for_a_call(lambda: self._in_call, self.shared.stopping)
        ticket = await self.gate.wait()
        if ticket is None:
            return None
        if self.shared.hooks.on_start is not None:
            self.shared.hooks.on_start(item)
        record.attempts += 1
        work.start()
        self.journal.calling(work.key, record, item)
        started = time.monotonic()

        self._in_call += 1
        try:
            reply = await api.call_once(
                self.client,
                spec,
                item,
                on_sent=ticket.sent,
                on_body_sent=work.went_out,
                image_url=link,
            )
        finally:
            self._in_call -= 1
            ticket.sent()  # never went out (or no trace): it counts from now
        work.call_out = False  # answered (or given up): the reply decides what it cost
        if reply.http_status is None and self.shared.hooks.http_log is not None:
            self.shared.hooks.http_log(f"http: POST {spec.endpoint} -> no reply: {reply.message}")
        self._note_reachability(reply, started)
        billed = reply.billed(cfg.billing)
        if billed:
            self.count_paid(work, record)
        elif reply.lost_after_sending:
            self.count_paid(work, record, certain=False)
        if reply.verdict is Verdict.PENDING and reply.task_id:
            fill(record, reply)
            self.journal.pending(work.key, record, reply.task_id, time.time())
            reply = await self.poll(work, record, reply.task_id, billed=billed)
        return reply, billed or reply.lost_after_sending or reply.billed(cfg.billing)

    async def poll(self, work: Work, record: Record, task_id: str, *, billed: bool) -> Reply:
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
                self.client, self.shared.spec, task_id, ticket.sent if ticket else nothing
            )
            if ticket is not None:
                ticket.sent()
            if reply.error_class is ErrorClass.CLOCK_SKEW and reply.server_time is not None:
                self.shared.spec.clock.correct(reply.server_time)  # fetched again below
            if reply.verdict is Verdict.THROTTLE:
                self.result.throttled += 1
                self.gate.pause(reply.retry_after or cfg.throttle_pause)
            elif reply.verdict is Verdict.HALT and reply.error_class in ENDPOINT_REFUSALS:
                return unfetchable(task_id, reply)
            elif reply.verdict is Verdict.HALT:
                self.shared.halt(reply)
                break
            elif reply.verdict is Verdict.PENDING:
                last = reply  # still running
            elif reply.verdict is not Verdict.RETRY or reply.state is not None:
                # The task ended: with its result, a failing state, or a final answer.
                if not billed and reply.billed(cfg.billing):
                    self.count_paid(work, record)
                return dataclasses.replace(reply, task_id=task_id)
            # else the fetch itself failed (network, 5xx): fetch again
        message = (
            f"task {task_id} had not finished when this run stopped fetching it; "
            "a re-run fetches it without paying again"
        )
        return dataclasses.replace(last, verdict=Verdict.PENDING, message=message, task_id=task_id)

    async def fetch_paid_task(self, work: Work, record: Record, task_id: str) -> Reply:
        """Fetch the task an earlier run created.  Under every-200 billing it was paid at
        creation; a seller billing successes only bills it now, so it takes a unit of the
        --max-calls budget like a call."""
        if self.config.billing is Billing.EVERY_200:
            return await self.poll(work, record, task_id, billed=True)
        if not await self.budget.reserve():
            self._max_calls_reached(work, record, tried=False)
            return Reply(Verdict.PENDING, ErrorClass.MAX_CALLS, message=record.message)
        billed = False
        try:
            reply = await self.poll(work, record, task_id, billed=False)
            billed = reply.billed(self.config.billing)
        finally:
            await self.budget.release(billed=billed)
        return reply

    def count_paid(self, work: Work, record: Record, *, certain: bool = True) -> None:
        record.paid_calls += 1
        if certain:
            self.result.paid_calls += 1
        else:
            self.result.possibly_paid += 1
        self.journal.billed(work.key, certain=certain)

    def settle(self, work: Work, record: Record, reply: Reply, *, billed: bool) -> None:
        """Book a paid attempt that brought no result against the input's allowance."""
        if not billed or reply.verdict in (Verdict.SUCCESS, Verdict.PENDING):
            return
        self.result.paid_failures += 1
        self.journal.paid_without_result(work.key)
        if work.paid_failures_left is not None:
            work.paid_failures_left -= 1

    def may_pay_again(self, work: Work, record: Record) -> bool:
        """After a billed failure: whether --paid-retries allows another paid call."""
        if work.paid_failures_left is None or work.paid_failures_left > 0:
            self.result.paid_retries += 1
            return True
        work.paid_note = (
            f"not called again: {record.paid_calls} paid call(s) of this run brought no "
            f"result (--paid-retries {self.config.paid_retries})"
        )
        return False

    def _max_calls_reached(self, work: Work, record: Record, *, tried: bool) -> None:
        limit = self.config.max_calls
        work.paid_note = reasons.MAX_CALLS_NOTE.format(limit=limit)
        if tried:
            return  # the input keeps its last failure, with the note
        record.outcome = Outcome.NOT_ATTEMPTED
        record.message = reasons.NOT_ATTEMPTED_MAX_CALLS.format(limit=limit)
        record.error_class = ErrorClass.MAX_CALLS

    def _send_again(self, reply: Reply, corrections: int) -> bool:
        """After the gateway refused a signed request's nonce or timestamp: whether to
        send the same call again now (a fresh nonce and timestamp; the clock corrected by
        the gateway's ``Date`` first, unless another call corrected it since this one was
        signed: its ``corrections`` then).  False: the run halts, no call can succeed."""
        if reply.error_class is ErrorClass.NONCE_USED:
            return True
        clock = self.shared.spec.clock
        if clock.corrections != corrections:
            return True  # signed before another call's correction
        if reply.server_time is None:
            why = "and sent no Date header to correct it by"
        elif clock.correct(reply.server_time):
            if clock.corrections == 1 and self.shared.hooks.notice is not None:
                self.shared.hooks.notice(skew_notice(clock.offset))
            return True
        else:
            why = f"even corrected by {clock.offset:+.0f} s"
        message = f"the gateway refused the timestamp ({reply.message}) {why}"
        self.shared.halt(
            dataclasses.replace(
                reply, verdict=Verdict.HALT, message=message, halt_status=ExitStatus.TROUBLE
            )
        )
        return False

    def _body_refused(self, work: Work, reply: Reply) -> bool:
        """React to a reply saying the body encoding cannot work; True: send it again."""
        unsupported = reply.error_class is ErrorClass.UNSUPPORTED_MULTIPART
        if not unsupported and reply.error_class is not ErrorClass.PARAMS_NOT_SEEN:
            return False
        if work.item.path is not None and not work.via_bucket:
            return self._files_refused(reply, unsupported)
        if unsupported:  # a URL, or a bucket's link: their fields as a form
            return self._switch_body(Body.FORM, reply, N_("refuses multipart bodies"))
        return self._switch_body(Body.MULTIPART, reply, N_("did not read the form fields"))

    def _files_refused(self, reply: Reply, unsupported: bool) -> bool:
        """The endpoint did not take a local file in the body: through the bucket from
        now on when one is given (said once, remembered for the output directory: True,
        send it again), else the files cannot be sent this run."""
        said = (
            N_("the gateway refuses multipart bodies (Unsupported Multipart)")
            if unsupported
            else N_("the endpoint did not read the file sent in the body ({message})")
        )
        why = said.format(message=reply.message)  # English: the report's reason
        target = self.config.upload_to
        if target is None or self.config.files_fixed:
            how = (
                uploads.HOW_TO_SEND
                if target is None
                else f"--send-files bucket sends them through {target}"
            )
            self.shared.multipart_refused = f"{why}, so local files cannot be sent: {how}"
            return False
        if self.shared.spec.files is not FileTransport.BUCKET:
            self.shared.spec = dataclasses.replace(self.shared.spec, files=FileTransport.BUCKET)
            self.result.files_switched = True
            self.journal.remember(FILES_SETTING, FileTransport.BUCKET.value)
            if self.shared.hooks.notice is not None:
                self.shared.hooks.notice(
                    _(
                        "{why}: local files go through {target} from now on (remembered for "
                        "this output directory; --send-files sets it)"
                    ).format(why=_(said).format(message=reply.message), target=target)
                )
        return True

    def _switch_body(self, body: Body, reply: Reply, why: str) -> bool:
        if self.shared.spec.body is body:
            return True  # another call switched it meanwhile: send this one again
        if self.config.body_fixed or self.result.body_switched:
            other = "multipart" if body is Body.MULTIPART else "form"
            message = f"the endpoint {why} ({reply.message}); try --body {other}"
            self.shared.halt(
                dataclasses.replace(reply, message=message, halt_status=ExitStatus.USAGE)
            )
            return False
        self.shared.spec = dataclasses.replace(self.shared.spec, body=body)
        self.result.body_switched = True
        self.journal.remember(BODY_SETTING, body.value)
        if self.shared.hooks.notice is not None:
            self.shared.hooks.notice(
                _(
                    "the endpoint {why} ({message}): sending {body} bodies from now on "
                    "(remembered for this output directory; --body sets it)"
                ).format(why=_(why), message=reply.message, body=body.value)
            )
        return True

    async def log_exchange(self, response: httpx.Response) -> None:
        if self.shared.hooks.http_log is not None:
            self.shared.hooks.http_log(api.describe_exchange(response, self.shared.spec.secrets))

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
            self.shared.halt(
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
