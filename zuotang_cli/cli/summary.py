"""What a run tells its user at the end: counts, money, throttling, failures by reason.

:class:`Tally` is fed every record as it is final; :func:`summarize` joins it with the
batch's money figures into a :class:`RunSummary`, which renders as text lines (stderr) or
as one JSON object (``--json``, ``--summary-json``), so scripts need not parse text.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zuotang_cli import reasons
from zuotang_cli.atomic import write_atomic
from zuotang_cli.engine.backlog import Pace
from zuotang_cli.engine.batch import BatchResult
from zuotang_cli.i18n import N_, ngettext
from zuotang_cli.i18n import gettext as _
from zuotang_cli.models import Outcome, Row
from zuotang_cli.outputs.report import counted
from zuotang_cli.protocol.api import Reply
from zuotang_cli.protocol.rules import Billing
from zuotang_cli.sanitize import json_text
from zuotang_cli.status import ExitStatus

SCHEMA_VERSION = 1
MAX_REASONS = 10
"""Failure reasons listed one a line in the text summary; the rest are counted."""

HALT_ADVICE = {
    "auth": N_("the AppCode was refused; check it and that the API is purchased: "),
    "quota-exhausted": N_("the call quota is used up; buy more calls: "),
    "quota-expired": N_("the subscription has expired; renew it: "),
    "arrears": N_("the account is in arrears; top it up: "),
    "forbidden": N_("the gateway refused the account: "),
    "endpoint-not-found": N_("the endpoint does not exist; check --endpoint: "),
    "endpoint-refused": N_(
        "the gateway refused the endpoint (wrong URL, path or method); check --endpoint: "
    ),
    "unreachable": N_("cannot reach the endpoint; check --endpoint and the network: "),
    "signature": N_(
        "the gateway refused the signature; check the AppSecret (zuotang config "
        "set-app-secret), or report the two strings to sign below as a bug: "
    ),
    "app-key": N_(
        "the AppKey was refused; check it (Cloud Marketplace → Purchased Services) and that the "
        "API is purchased: "
    ),
    "clock-skew": N_(
        "the gateway refuses this computer's clock even corrected; set the system clock "
        "right (NTP): "
    ),
    "disk-error": N_("cannot save results (disk full or not writable); fix it and re-run: "),
}


def plural(count: int, noun: str, plural_form: str | None = None) -> str:
    """``1 paid call``, ``6 paid calls`` (English: the JSON summary's words)."""
    return f"{count} {noun if count == 1 else (plural_form or noun + 's')}"


def halt_line(halt: Reply, translate: Callable[[str], str] = _) -> str:
    """The halt's reason in one line: advice, the message, the HTTP status and request id
    (each only when known); in the active language unless ``translate`` says otherwise
    (the JSON summary keeps English: ``translate=str``)."""
    detail = halt.message or str(halt.error_class or "")
    known = []
    if halt.http_status is not None:
        known.append(f"HTTP {halt.http_status}")
    if halt.request_id:
        known.append(translate(N_("request id {id}")).format(id=halt.request_id))
    if known:
        joined = translate(N_(", ")).join(known)
        detail += translate(N_(" ({details})")).format(details=joined)
    advice = HALT_ADVICE.get(str(halt.error_class or ""))
    return translate(N_("halted: {advice}{detail}")).format(
        advice=translate(advice) if advice else "", detail=detail
    )


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
            self.not_attempted[record.message or N_("not attempted")] += 1
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
            counted(Outcome(outcome), n)
            for outcome, n in self.counts.items()
            if outcome == Outcome.DONE.value or n
        ]
        rate = self.counts[Outcome.DONE.value] / self.elapsed if self.elapsed > 0 else 0.0
        return _("{counts} in {seconds} s ({calls}, {rate} images/s); report: {report}").format(
            counts=_(", ").join(parts),
            seconds=f"{self.elapsed:.1f}",
            calls=ngettext("{n} call", "{n} calls", self.calls).format(n=self.calls),
            rate=f"{rate:.2f}",
            report=self.report,
        )

    def money_line(self) -> str:
        """What the run cost: paid calls, the part of them that brought nothing, retries."""
        line = _("paid calls: {n}").format(n=self.paid_calls)
        details = []
        if self.paid_failures:
            details.append(_("{n} without a result").format(n=self.paid_failures))
        if self.paid_retries:
            n = self.paid_retries
            details.append(ngettext("{n} paid retry", "{n} paid retries", n).format(n=n))
        if details:
            line += _(" ({details})").format(details=_(", ").join(details))
        if self.possibly_paid:
            line += _("; possibly paid: {n} (cut short or timed out after going out)").format(
                n=self.possibly_paid
            )
        if self.expired_links:
            line += _("; results lost to an expired link: {n}").format(n=self.expired_links)
        if self.polls:
            line += _("; task fetches: {n}").format(n=self.polls)
        if self.billing is Billing.EVERY_200:
            return line + _(" [billing: every HTTP-200 reply]")
        return line + _(" [billing: successes only]")

    def lines(self) -> list[str]:
        """The text summary, one stderr line each, in the active language (the halt's
        reason is not among them: the caller prints it last)."""
        lines = [self.counts_line(), self.money_line()]
        if self.recovered or self.recovered_unlisted:
            n = self.recovered
            lines.append(
                ngettext(
                    "recovered: {n} paid result of earlier runs saved before any new call "
                    "({unlisted} not in this run's list)",
                    "recovered: {n} paid results of earlier runs saved before any new call "
                    "({unlisted} not in this run's list)",
                    n,
                ).format(n=n, unlisted=self.recovered_unlisted)
            )
        if self.uploads or self.uploads_removed:
            lines.append(
                _("bucket: {uploads} ({size} MB), {removed} removed").format(
                    uploads=ngettext("{n} upload", "{n} uploads", self.uploads).format(
                        n=self.uploads
                    ),
                    size=f"{self.upload_bytes / 1e6:.2f}",
                    removed=ngettext("{n} object", "{n} objects", self.uploads_removed).format(
                        n=self.uploads_removed
                    ),
                )
            )
        pace = self.download_pace
        if pace is not None and pace.held_seconds >= 1:  # less: no line worth a reader
            lines.append(
                _(
                    "downloads: new calls were held back {held} s so that no paid result's "
                    "link expired waiting (downloads at {rate}/s, {speed} MB/s)"
                ).format(
                    held=f"{pace.held_seconds:.0f}",
                    rate=f"{pace.per_second:.2f}",
                    speed=f"{pace.bytes_per_second / 1e6:.2f}",
                )
            )
        if self.throttled:
            n = self.throttled
            lines.append(
                ngettext(
                    "warning: {n} throttle reply: the account allows fewer starts a second "
                    "than --qps; lower --qps",
                    "warning: {n} throttle replies: the account allows fewer starts a second "
                    "than --qps; lower --qps",
                    n,
                ).format(n=n)
            )
        lines.extend(self._failure_lines())
        if self.hidden_lines:
            lines.append(
                _(
                    "{n} more problem lines not shown (-v shows all): see the report {report}"
                ).format(n=self.hidden_lines, report=self.report)
            )
        for reason, n in self.not_attempted.items():
            lines.append(
                _("not attempted: {n} ({reason})").format(n=n, reason=reasons.shown(reason))
            )
        if self.skipped_files:
            parts = _(", ").join(f"{n} {_(reason)}" for reason, n in self.skipped_files.items())
            total = sum(self.skipped_files.values())
            lines.append(
                ngettext(
                    "folders: {n} file not taken: {parts} (-v lists them)",
                    "folders: {n} files not taken: {parts} (-v lists them)",
                    total,
                ).format(n=total, parts=parts)
            )
        return lines

    def _failure_lines(self) -> list[str]:
        if not self.failures:
            return []
        total = sum(group.count for group in self.failures)
        lines = [_("problems by reason ({n}):").format(n=total)]
        for group in self.failures[:MAX_REASONS]:
            example = group.example
            if group.message:
                message = reasons.shown(group.message)
                example = _("{input}: {message}").format(input=example, message=message)
            lines.append(
                "  "
                + _("{reason}: {n} (e.g. {example})").format(
                    reason=group.reason, n=group.count, example=example
                )
            )
        rest = self.failures[MAX_REASONS:]
        if rest:
            more = sum(group.count for group in rest)
            lines.append(
                "  "
                + _("{n} more reasons ({inputs} inputs): see the report").format(
                    n=len(rest), inputs=more
                )
            )
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
                "message": halt_line(halt, translate=str),
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
