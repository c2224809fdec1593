"""What a run tells its user at the end: counts, money, throttling, failures by reason.

:class:`Tally` is fed every record as it is final; :func:`summarize` joins it with the
batch's money figures into a :class:`RunSummary`, which renders as text lines (stderr) or
as one JSON object (``--json``, ``--summary-json``), so scripts need not parse text.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zuotang_cli.atomic import write_atomic
from zuotang_cli.engine.backlog import Pace
from zuotang_cli.engine.batch import BatchResult
from zuotang_cli.models import Outcome, Row
from zuotang_cli.protocol.api import Reply
from zuotang_cli.protocol.rules import Billing
from zuotang_cli.sanitize import json_text
from zuotang_cli.status import ExitStatus

SCHEMA_VERSION = 1
MAX_REASONS = 10
"""Failure reasons listed one a line in the text summary; the rest are counted."""

HALT_ADVICE = {
    "auth": "the AppCode was refused; check it and that the API is purchased: ",
    "quota-exhausted": "the call quota is used up; buy more calls: ",
    "quota-expired": "the subscription has expired; renew it: ",
    "arrears": "the account is in arrears; top it up: ",
    "forbidden": "the gateway refused the account: ",
    "endpoint-not-found": "the endpoint does not exist; check --endpoint: ",
    "endpoint-refused": "the gateway refused the endpoint (wrong URL, path or method); "
    "check --endpoint: ",
    "unreachable": "cannot reach the endpoint; check --endpoint and the network: ",
    "signature": "the gateway refused the signature; check the AppSecret (zuotang config "
    "set-app-secret), or report the two strings to sign below as a bug: ",
    "app-key": "the AppKey was refused; check it (云市场 → 已购买的服务) and that the API is "
    "purchased: ",
    "clock-skew": "the gateway refuses this computer's clock even corrected; set the system "
    "clock right (NTP): ",
    "disk-error": "cannot save results (disk full or not writable); fix it and re-run: ",
}


def plural(count: int, noun: str, plural_form: str | None = None) -> str:
    """``1 paid call``, ``6 paid calls``."""
    return f"{count} {noun if count == 1 else (plural_form or noun + 's')}"


def halt_line(halt: Reply) -> str:
    """The halt's reason in one line: advice, the message, the HTTP status and request id
    (each only when known)."""
    detail = halt.message or str(halt.error_class or "")
    known = []
    if halt.http_status is not None:
        known.append(f"HTTP {halt.http_status}")
    if halt.request_id:
        known.append(f"request id {halt.request_id}")
    if known:
        detail += f" ({', '.join(known)})"
    return f"halted: {HALT_ADVICE.get(str(halt.error_class or ''), '')}{detail}"


@dataclass
class FailureGroup:
    """The inputs that failed for one reason: how many, and the first as an example."""

    reason: str
    count: int
    example: str
    message: str


@dataclass
class Tally:
    """Every final record, counted: outcomes, failures grouped by reason, and why inputs
    were not attempted."""

    counts: Counter[Outcome] = field(default_factory=Counter)
    groups: dict[str, FailureGroup] = field(default_factory=dict)
    not_attempted: Counter[str] = field(default_factory=Counter)

    def add(self, row: Row) -> None:
        self.counts[row.outcome] += 1
        if row.ok:
            return
        record = row.full()
        if record.outcome is Outcome.NOT_ATTEMPTED:
            self.not_attempted[record.message or "not attempted"] += 1
        elif record.outcome in (Outcome.FAILED, Outcome.INVALID):
            reason = str(record.error_class or record.outcome.value)
            group = self.groups.get(reason)
            if group is None:
                message = record.message or record.state_meaning or ""
                self.groups[reason] = FailureGroup(reason, 1, record.input, message)
            else:
                group.count += 1


@dataclass
class RunSummary:
    counts: dict[str, int]
    calls: int
    elapsed: float
    paid_calls: int
    paid_failures: int
    possibly_paid: int
    paid_retries: int
    polls: int
    throttled: int
    billing: Billing
    failures: list[FailureGroup]
    not_attempted: dict[str, int]
    skipped_files: dict[str, int]
    report: Path
    exit_status: ExitStatus
    halt: Reply | None = None
    interrupted: bool = False
    hidden_lines: int = 0
    """Per-input problem lines the display left out (a screenful was shown)."""
    expired_links: int = 0
    recovered: int = 0
    recovered_unlisted: int = 0
    download_pace: Pace | None = None
    uploads: int = 0
    upload_bytes: int = 0
    uploads_removed: int = 0

    # -- text --------------------------------------------------------------------------

    def counts_line(self) -> str:
        parts = [
            f"{n} {outcome.replace('-', ' ')}"
            for outcome, n in self.counts.items()
            if outcome == Outcome.DONE.value or n
        ]
        rate = self.counts[Outcome.DONE.value] / self.elapsed if self.elapsed > 0 else 0.0
        return (
            f"{', '.join(parts)} in {self.elapsed:.1f} s ({plural(self.calls, 'call')}, "
            f"{rate:.2f} images/s); report: {self.report}"
        )

    def money_line(self) -> str:
        """What the run cost: paid calls, the part of them that brought nothing, retries."""
        line = f"paid calls: {self.paid_calls}"
        details = []
        if self.paid_failures:
            details.append(f"{self.paid_failures} without a result")
        if self.paid_retries:
            details.append(plural(self.paid_retries, "paid retry", "paid retries"))
        if details:
            line += f" ({', '.join(details)})"
        if self.possibly_paid:
            line += (
                f"; possibly paid: {self.possibly_paid} (cut short or timed out after going out)"
            )
        if self.expired_links:
            line += f"; results lost to an expired link: {self.expired_links}"
        if self.polls:
            line += f"; task fetches: {self.polls}"
        rule = "every HTTP-200 reply" if self.billing is Billing.EVERY_200 else "successes only"
        return f"{line} [billing: {rule}]"

    def lines(self) -> list[str]:
        """The text summary, one stderr line each (the halt's reason is not among them:
        the caller prints it last)."""
        lines = [self.counts_line(), self.money_line()]
        if self.recovered or self.recovered_unlisted:
            lines.append(
                f"recovered: {plural(self.recovered, 'paid result')} of earlier runs saved "
                f"before any new call ({self.recovered_unlisted} not in this run's list)"
            )
        if self.uploads or self.uploads_removed:
            lines.append(
                f"bucket: {plural(self.uploads, 'upload')} ({self.upload_bytes / 1e6:.2f} MB), "
                f"{plural(self.uploads_removed, 'object')} removed"
            )
        pace = self.download_pace
        if pace is not None:
            lines.append(
                f"downloads: new calls were held back {pace.held_seconds:.0f} s so that no "
                f"paid result's link expired waiting (downloads at {pace.per_second:.2f}/s, "
                f"{pace.bytes_per_second / 1e6:.2f} MB/s)"
            )
        if self.throttled:
            lines.append(
                f"warning: {plural(self.throttled, 'throttle reply', 'throttle replies')}: the "
                "account allows fewer starts a second than --qps; lower --qps"
            )
        if self.failures:
            total = sum(group.count for group in self.failures)
            lines.append(f"problems by reason ({total}):")
            for group in self.failures[:MAX_REASONS]:
                example = f"{group.example}: {group.message}" if group.message else group.example
                lines.append(f"  {group.reason}: {group.count} (e.g. {example})")
            rest = self.failures[MAX_REASONS:]
            if rest:
                more = sum(group.count for group in rest)
                lines.append(f"  {len(rest)} more reasons ({more} inputs): see the report")
        if self.hidden_lines:
            lines.append(
                f"{self.hidden_lines} more problem lines not shown (-v shows all): see the "
                f"report {self.report}"
            )
        for reason, n in self.not_attempted.items():
            lines.append(f"not attempted: {n} ({reason})")
        if self.skipped_files:
            parts = ", ".join(f"{n} {reason}" for reason, n in self.skipped_files.items())
            total = sum(self.skipped_files.values())
            lines.append(f"folders: {plural(total, 'file')} not taken: {parts} (-v lists them)")
        return lines

    # -- JSON --------------------------------------------------------------------------

    def as_dict(self) -> dict[str, Any]:
        halt = self.halt
        return {
            "schema": SCHEMA_VERSION,
            "summary": True,
            "exit_code": int(self.exit_status),
            "counts": self.counts,
            "calls": self.calls,
            "elapsed": round(self.elapsed, 3),
            "paid_calls": self.paid_calls,
            "paid_failures": self.paid_failures,
            "possibly_paid": self.possibly_paid,
            "paid_retries": self.paid_retries,
            "task_fetches": self.polls,
            "expired_links": self.expired_links,
            "recovered": self.recovered,
            "recovered_unlisted": self.recovered_unlisted,
            "downloads_held_s": None
            if self.download_pace is None
            else round(self.download_pace.held_seconds, 3),
            "throttled": self.throttled,
            "uploads": self.uploads,
            "upload_bytes": self.upload_bytes,
            "uploads_removed": self.uploads_removed,
            "billing": self.billing.value,
            "failures": [
                {"reason": g.reason, "count": g.count, "example": g.example, "message": g.message}
                for g in self.failures
            ],
            "not_attempted": self.not_attempted,
            "skipped_files": self.skipped_files,
            "interrupted": self.interrupted,
            "halt": None
            if halt is None
            else {
                "reason": str(halt.error_class or ""),
                "message": halt_line(halt),
                "http_status": halt.http_status,
                "request_id": halt.request_id,
            },
            "report": str(self.report),
        }

    def json(self) -> str:
        return json_text(self.as_dict())

    def write_json(self, path: Path) -> None:
        """``--summary-json PATH``: the JSON summary in a file (written whole, then renamed)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, self.json() + "\n")


def summarize(
    result: BatchResult,
    tally: Tally,
    *,
    calls: int,
    elapsed: float,
    report: Path,
    billing: Billing,
    skipped_files: dict[str, int] | None = None,
    hidden_lines: int = 0,
) -> RunSummary:
    groups = sorted(tally.groups.values(), key=lambda group: -group.count)
    return RunSummary(
        counts={outcome.value: tally.counts[outcome] for outcome in Outcome},
        calls=calls,
        elapsed=elapsed,
        paid_calls=result.paid_calls,
        paid_failures=result.paid_failures,
        possibly_paid=result.possibly_paid,
        paid_retries=result.paid_retries,
        polls=result.polls,
        throttled=result.throttled,
        billing=billing,
        failures=groups,
        not_attempted=dict(tally.not_attempted.most_common()),
        skipped_files=dict(skipped_files or {}),
        report=report,
        exit_status=result.exit_status,
        halt=result.halt,
        interrupted=result.interrupted,
        hidden_lines=hidden_lines,
        expired_links=result.expired_links,
        recovered=result.recovered,
        recovered_unlisted=result.recovered_unlisted,
        download_pace=result.download_pace,
        uploads=result.uploads,
        upload_bytes=result.upload_bytes,
        uploads_removed=result.uploads_removed,
    )
