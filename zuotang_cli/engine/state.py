"""What a batch is told and what it keeps: its settings (:class:`BatchConfig`), its result
(:class:`BatchResult`), the work of one input (:class:`Work`), and the numbers that size
it (docs/architecture.md, "The engine")."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

from zuotang_cli.engine.backlog import Pace
from zuotang_cli.engine.bucket import DEFAULT_UPLOADS_AT_ONCE, Target
from zuotang_cli.engine.budget import SYSTEM_CLOCK, Clock
from zuotang_cli.models import InputItem, Outcome, Record
from zuotang_cli.protocol import rules
from zuotang_cli.protocol.api import CallSpec, Reply
from zuotang_cli.protocol.rules import DEFAULT_TIMEOUT, Billing
from zuotang_cli.status import ExitStatus
from zuotang_cli.store.finishing import Finish
from zuotang_cli.store.naming import Naming
from zuotang_cli.store.planner import Plan

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
FILES_SETTING = "send-files"
"""The journal's memory of how local files reach an output directory's endpoint (``bucket``
once it refused them in the body: docs/uploads.md)."""


def default_concurrency(qps: float) -> int:
    """Calls in flight needed to keep ``qps`` starts a second when a call can take 30 s."""
    return max(4, math.ceil(qps * (rules.SERVICE_TIMEOUT + 2)))


def default_download_concurrency(qps: float) -> int:
    """Downloads at once at most: every input in flight may be downloading its result
    (the open-file limit may cut it: :mod:`zuotang_cli.engine.fdlimit`)."""
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
    files_fixed: bool = False
    """The user chose ``spec.files``: never switch it, nor take the journal's memory."""
    upload_to: Target | None = None
    """The user's bucket for local files (``--upload-to``): docs/uploads.md."""
    upload_endpoint: str | None = None
    """``--upload-endpoint`` (None: the S3 client's own: ``AWS_ENDPOINT_URL_S3``...)."""
    keep_uploads: bool = False
    """Leave uploaded objects in the bucket (by default each goes once its input is done)."""
    upload_concurrency: int = DEFAULT_UPLOADS_AT_ONCE
    """Uploads at once (apart from the calls' rate gate and concurrency)."""
    check_bucket_first: bool = True
    """Check the bucket when the run starts, before any call; False (no local file among
    the arguments and the bucket only a fallback): at its first upload, so that a run of
    URLs with a bucket in its config never needs the bucket's credentials."""
    max_upload: int = rules.MAX_UPLOAD_BYTES
    """Largest request body the gateway takes: bigger local files are refused unsent."""
    polls_use_gate: bool = True
    """Task fetches pass the rate gate: the gateway's flow control counts every request
    to the API, so a poll uses a start of the QPS like a call (assumed: not confirmed)."""
    dry_run: bool = False
    """Decide every input exactly as a run would, on a snapshot of the journal, but call,
    download and copy nothing: each decision goes to the batch's ``planned`` callback."""
    naming: Naming = field(default_factory=Naming)
    """How results are named (the source's name, a ``--name`` template, legacy)."""
    finish: Finish = field(default_factory=Finish)
    """How results are finished: metadata, upright, ``--format`` (docs/results.md)."""
    poll_interval: float = POLL_INTERVAL
    poll_limit: float = rules.SERVICE_TIMEOUT
    """How long one run fetches a task before leaving it to a re-run."""
    stream: bool = False
    """The inputs arrive over a long life (a watched folder) and the same file may come
    again: a local file given while another with its content is in flight is settled as
    soon as that one is (not at the end), and one that comes after it is decided by the
    journal (done before: a copy, nothing paid)."""
    max_calls_per_day: int | None = None
    """At most this many paid calls in one local calendar day (then calls wait)."""
    clock: Clock = SYSTEM_CLOCK
    """The wall clock of the daily cap (injected by tests)."""

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
    started: float | None = None
    """When its first call, fetch or download began (monotonic): the row's elapsed."""
    paid_note: str = ""
    """Why no more is paid for it (--paid-retries, --max-calls), for its row."""
    name_note: str = ""
    """Why its result got another name than the one it asked for, for its row."""
    source_head: bytes | None = None
    """The source's first bytes, when ``--probe`` read them (its metadata, for finishing)."""
    via_bucket: bool = False
    """Its latest call sent a link to the user's bucket (not the file's bytes)."""

    def went_out(self) -> None:
        self.call_out = True

    def start(self) -> None:
        if self.started is None:
            self.started = time.monotonic()


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
    files_switched: bool = False
    """The endpoint refused local files in the body: they went through the bucket."""
    uploads: int = 0
    """Local files uploaded to the user's bucket in this run."""
    upload_bytes: int = 0
    uploads_removed: int = 0
    """Objects deleted from the bucket (this run's and those an earlier run left)."""
    expired_links: int = 0
    """Paid results lost because their link (or task) expired before they were saved."""
    recovered: int = 0
    """Paid results of earlier runs saved before any new call."""
    recovered_unlisted: int = 0
    """Of the paid work settled first, the inputs this run's list does not name."""
    download_pace: Pace | None = None
    """How fast results were saved, when new calls were held back for them."""

    def note_scale(self, requested: int | None, record: Record) -> None:
        """Count an input whose requested --scale the service will not apply, and one
        whose factor the two API documents disagree on."""
        if record.input_width is None or record.input_height is None:
            return
        long_side = max(record.input_width, record.input_height)
        self.factor_uncertain += rules.factor_uncertain(long_side, requested)
        if requested is not None and rules.effective_factor(long_side, requested) != requested:
            self.scale_not_applied += 1

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


def paid_failures_left(config: BatchConfig, plan: Plan) -> int | None:
    """Billed failures the input of ``plan`` may still cost (None: no cap)."""
    allowed = config.paid_failures_allowed
    if allowed is None:
        return None
    earlier = plan.entry.paid_failures + plan.lost if plan.entry is not None else 0
    if config.retry_failed:
        earlier = 0  # asked to pay again: a fresh allowance
    return max(0, allowed - earlier)
