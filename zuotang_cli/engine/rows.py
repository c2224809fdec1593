"""The rows a batch writes without processing an input (invalid, not attempted, decided
by the journal), what a row says of a paid result not saved, and the small steps that
fill a row from a reply."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time

from zuotang_cli.models import ErrorClass, InputItem, Outcome, Record
from zuotang_cli.protocol import rules
from zuotang_cli.protocol.api import MULTIPART_OVERHEAD, CallSpec, Reply, Verdict
from zuotang_cli.protocol.rules import FileTransport
from zuotang_cli.sanitize import Secrets
from zuotang_cli.store.journal import Journal
from zuotang_cli.store.planner import Action, Plan

ENDPOINT_REFUSALS = (ErrorClass.ENDPOINT_REFUSED, ErrorClass.ENDPOINT_NOT_FOUND)


UNLISTED = "not in this run's list: "
"""The start of the row of an earlier run's paid work that this run settled unasked."""


PAID_NOT_SAVED = "paid, not saved"
"""The start of the message of an input whose result was paid for and not saved."""


DOWNLOADS_LATER = "a re-run downloads it without a new call while its link lives"


CALLS_LATER = "this link cannot give the result: a re-run calls again (a new paid call)"


CALLS_LATER_MASKED = (
    "its link held the AppCode, which is never stored: a re-run calls again (a new paid call)"
)


def nothing() -> None:
    return None


_MASKED_FIELDS = ("input", "output", "state_meaning", "message", "task_id", "request_id")


def mask_record(record: Record, secrets: Secrets) -> None:
    """The last net before a row reaches the report, stdout or stderr: the AppCode
    masked in every text field, wherever it came from."""
    for name in _MASKED_FIELDS:
        value = getattr(record, name)
        if value and secrets.found_in(value):
            setattr(record, name, secrets.mask(value))


def unfetchable(task_id: str, reply: Reply) -> Reply:
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


def fill(record: Record, reply: Reply) -> None:
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


def restore(record: Record, earlier: Record) -> None:
    """Carry over what the earlier run learnt from the (paid) call."""
    for name in ("http_status", "status", "state", "state_meaning", "task_id", "request_id"):
        setattr(record, name, getattr(earlier, name))
    record.created_at, record.completed_at = earlier.created_at, earlier.completed_at


def loop_deadline(wall_time: float) -> float:
    """A wall-clock instant on the event loop's clock."""
    return asyncio.get_running_loop().time() + (wall_time - time.time())


def planned_action(record: Record) -> str:
    """Dry run: the action of an input decided as a row."""
    if record.outcome is Outcome.SKIPPED:
        return "copy" if bool(record.extra.get("copy")) else Action.SKIP.value
    if record.outcome is Outcome.FAILED:
        return Action.SKIP_FAILED.value
    return str(record.outcome.value)  # invalid, not-attempted


def first_of(item: InputItem) -> str:
    """The input a duplicate repeats, from the words of the input reader."""
    return (item.error or "").removeprefix("duplicate of ") or "an earlier input"


def from_journal(item: InputItem, plan: Plan, journal: Journal | None = None) -> Record:
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


def invalid(item: InputItem) -> Record:
    return Record(
        input=item.source,
        outcome=Outcome.INVALID,
        message=item.error or "",
        error_class=item.error_class or ErrorClass.BAD_INPUT,
    )


def not_attempted(item: InputItem, reason: str) -> Record:
    return Record(
        input=item.source,
        outcome=Outcome.NOT_ATTEMPTED,
        message=reason,
        error_class=ErrorClass.NOT_ATTEMPTED,
    )


def unsendable(
    item: InputItem, multipart_refused: str | None, max_upload: int, spec: CallSpec
) -> Record | None:
    """The row of a local file that cannot be sent this run (the gateway refuses it in
    the body and no bucket is given, or the file makes a body over its limit), or None.
    A file sent through the bucket has no body limit (the service's own 15 MB applies)."""
    if multipart_refused is not None:
        return not_attempted(item, multipart_refused)
    assert item.path is not None
    if spec.files is FileTransport.BUCKET:
        return None
    try:
        size = item.path.stat().st_size
    except OSError:
        return None  # the call reports it unreadable
    if spec.files is FileTransport.BASE64:
        size = 4 * math.ceil(size / 3)  # the form field's base64 text
    if size + MULTIPART_OVERHEAD <= max_upload:
        return None
    limit = max_upload / (1024 * 1024)
    message = (
        f"{size / (1024 * 1024):.1f} MB makes a request body over the gateway's "
        f"{limit:g} MB limit: host the file and pass its URL, send it through your bucket "
        "(--upload-to), or raise --max-upload on a dedicated gateway"
    )
    return Record(
        input=item.source,
        outcome=Outcome.INVALID,
        message=message,
        error_class=ErrorClass.UPLOAD_TOO_LARGE,
    )
