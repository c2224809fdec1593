"""Plain data shared by the core modules: what goes in (an input) and what comes out (a record)."""

from __future__ import annotations

import enum
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import Any, ClassVar


class ErrorClass(str, enum.Enum):
    """Why an input did not end done: one name per cause, so that what a re-run does (and
    pays for) never hangs on a string typed twice.  Written to reports as its value."""

    # the reply of a call
    THROTTLED = "throttled"
    CIRCUIT_OPEN = "circuit-open"
    SERVER_ERROR = "server-error"
    NETWORK = "network"
    TIMEOUT = "timeout"
    BAD_REPLY = "bad-reply"
    TOO_LARGE = "too-large"
    UNFINISHED = "unfinished"
    HTTP_400 = "http-400"
    HTTP_OTHER = "http-error"
    PARAMS_NOT_SEEN = "params-not-seen"
    UNSUPPORTED_MULTIPART = "unsupported-multipart"
    STATE_1 = "state-1"
    STATE_2 = "state-2"
    STATE_3 = "state-3"
    STATE_5 = "state-5"
    STATE_7 = "state-7"
    STATE_8 = "state-8"
    # the account or the endpoint (the run halts)
    AUTH = "auth"
    QUOTA_EXHAUSTED = "quota-exhausted"
    QUOTA_EXPIRED = "quota-expired"
    ARREARS = "arrears"
    FORBIDDEN = "forbidden"
    ENDPOINT_NOT_FOUND = "endpoint-not-found"
    ENDPOINT_REFUSED = "endpoint-refused"
    UNREACHABLE = "unreachable"
    SIGNATURE = "signature"
    """The gateway refused the signature (AppKey / AppSecret): docs/credentials.md."""
    APP_KEY = "app-key"
    """The gateway does not know the AppKey."""
    CLOCK_SKEW = "clock-skew"
    """The gateway refused the timestamp of a signed request: the local clock is off."""
    NONCE_USED = "nonce-used"
    """The gateway has seen the signed request's nonce before."""
    TOO_MANY_OPEN_FILES = "too-many-open-files"
    OS_ERROR = "os-error"
    # before or after the call
    BAD_INPUT = "bad-input"
    PREFLIGHT = "preflight"
    """Refused before any call: the service would refuse the image (format, size)."""
    UNREADABLE = "unreadable"
    UPLOAD_TOO_LARGE = "upload-too-large"
    UPLOAD_FAILED = "upload-failed"
    LINK_EXPIRED = "link-expired"
    LINK_REFUSED = "link-refused"
    BAD_RESULT_URL = "bad-result-url"
    DOWNLOAD_NETWORK = "download-network"
    DOWNLOAD_TIMEOUT = "download-timeout"
    """A pause of ``--timeout`` between two reads of a result (retried)."""
    DOWNLOAD_TOO_SLOW = "download-too-slow"
    DOWNLOAD_TOO_LONG = "download-too-long"
    DOWNLOAD_HTTP = "download-http"
    """The result host answered an HTTP error other than a refusal (its status in the
    message; retried)."""
    RESULT_TOO_LARGE = "result-too-large"
    NOT_AN_IMAGE = "not-an-image"
    UNSAFE_PATH = "unsafe-path"
    DISK_ERROR = "disk-error"
    MAX_CALLS = "max-calls"
    NOT_ATTEMPTED = "not-attempted"
    INTERRUPTED = "interrupted"
    DUPLICATE = "duplicate"
    INTERNAL = "internal-error"

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)

    @classmethod
    def for_state(cls, state: int) -> ErrorClass:
        """The class of a failing ``data.state`` (-1 -> ``state-1``)."""
        return cls(f"state{state}")


class InputKind(str, enum.Enum):
    URL = "url"
    FILE = "file"


@dataclass(slots=True)
class InputItem:
    """One entry of the batch, in the order it was read (the reader numbers it: ``index``).

    ``error`` is set when the entry is refused before any call (never sent); the batch
    turns such an item straight into an ``invalid`` record.
    """

    index: int
    source: str
    """The input as the user gave it (URL, or the path as given / as found in a folder)."""
    kind: InputKind
    url: str | None = None
    """Normalized, correctly encoded http(s) URL (kind URL)."""
    path: Path | None = None
    """Absolute path of the local image (kind FILE)."""
    relpath: PurePosixPath | None = None
    """For files found inside a directory input: the path relative to that directory."""
    error: str | None = None
    error_class: ErrorClass | None = None
    width: int | None = None
    """Input width in pixels, when known (local files; URLs with --probe)."""
    height: int | None = None

    @property
    def key(self) -> str:
        """What identifies the input across runs: the normalized URL or the absolute path."""
        if self.url is not None:
            return self.url
        if self.path is not None:
            return str(self.path)
        return self.source


class Outcome(str, enum.Enum):
    DONE = "done"
    """Called, paid, downloaded and saved."""
    SKIPPED = "skipped"
    """Already done by an earlier run (counts as done)."""
    FAILED = "failed"
    """Called (or tried) and failed; see error_class and message."""
    INVALID = "invalid"
    """Refused before any call: not a valid input."""
    NOT_ATTEMPTED = "not-attempted"
    """Never tried: the run halted, was interrupted, or hit --max-calls."""


REPORT_FIELDS = (
    "input",
    "outcome",
    "output",
    "http_status",
    "status",
    "state",
    "state_meaning",
    "message",
    "task_id",
    "request_id",
    "attempts",
    "elapsed",
    "created_at",
    "completed_at",
    "result_bytes",
    "width",
    "height",
    "input_width",
    "input_height",
    "factor",
    "paid_calls",
    "error_class",
    "type",
    "scale",
)
"""The report's columns (fields are only ever added, at the end)."""

_FIELD_NAMES = frozenset(REPORT_FIELDS)
_OUTCOME, _ELAPSED, _ERROR_CLASS = (
    REPORT_FIELDS.index(name) for name in ("outcome", "elapsed", "error_class")
)
_report_values = operator.attrgetter(*REPORT_FIELDS)
_OUTCOMES: dict[Any, Outcome] = {outcome.value: outcome for outcome in Outcome}


def _known(row: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in row.items() if name in _FIELD_NAMES}


@dataclass
class Record:
    """One row of the report: everything known about one input at the end of the run."""

    input: str
    outcome: Outcome
    output: str | None = None
    http_status: int | None = None
    status: int | None = None
    """The JSON ``status`` field of the reply."""
    state: int | None = None
    state_meaning: str = ""
    message: str = ""
    task_id: str | None = None
    request_id: str | None = None
    attempts: int = 0
    elapsed: float | None = None
    created_at: int | None = None
    completed_at: int | None = None
    result_bytes: int | None = None
    width: int | None = None
    height: int | None = None
    input_width: int | None = None
    input_height: int | None = None
    factor: float | None = None
    """Result width / input width, measured from the files."""
    paid_calls: int = 0
    """Calls of this run for this input that were (or may have been) billed."""
    error_class: str | None = None
    type: str | None = None
    """The ``--type`` the input was processed with."""
    scale: str | None = None
    """The ``--scale`` asked for (``auto``, ``1``, ``2``, ``4``); ``factor`` is measured."""
    extra: dict[str, Any] = field(default_factory=dict, repr=False)
    """Room for later columns without changing the writers (not written today)."""

    @property
    def ok(self) -> bool:
        return self.outcome in (Outcome.DONE, Outcome.SKIPPED)

    def full(self) -> Record:
        """The record itself (see :class:`DoneRow`)."""
        return self

    def as_dict(self) -> dict[str, Any]:
        """The report fields in REPORT_FIELDS order, enum values as plain strings."""
        return dict(zip(REPORT_FIELDS, self.as_row()))  # noqa: B905 - same length

    def as_row(self) -> list[Any]:
        """The values of :meth:`as_dict`, in REPORT_FIELDS order."""
        row = list(_report_values(self))
        row[_OUTCOME] = self.outcome.value
        if self.error_class is not None:
            row[_ERROR_CLASS] = str(self.error_class)
        if self.elapsed is not None:
            row[_ELAPSED] = round(self.elapsed, 3)
        return row

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> Record:
        """The inverse of :meth:`as_dict` (unknown keys are ignored, missing ones are
        their defaults)."""
        fields = row.copy() if row.keys() <= _FIELD_NAMES else _known(row)
        fields["outcome"] = _OUTCOMES.get(fields.get("outcome"), Outcome.FAILED)
        if not fields.get("state_meaning", ""):
            fields["state_meaning"] = ""
        if not fields.get("message", ""):
            fields["message"] = ""
        if type(fields.get("attempts", 0)) is not int:
            fields["attempts"] = int(fields["attempts"] or 0)
        if type(fields.get("paid_calls", 0)) is not int:
            fields["paid_calls"] = int(fields["paid_calls"] or 0)
        return cls(**fields)


@dataclass(slots=True)
class DoneRow:
    """The ``skipped`` row of an input an earlier run saved, made from its journal entry
    without decoding the stored record: a re-run over a long done list is mostly these.
    ``cells`` are the stored record's CSV cells that the row copies as they are (rendered
    once, when the result was saved: :func:`zuotang_cli.cells.stored_cells`); ``full``
    decodes the whole record for what needs every field (JSON reports, ``--json``)."""

    input: str
    output: str
    """Where the result is, under the output directory where it is now."""
    message: str
    cells: str
    make_record: Callable[[], Record]
    type: str = ""
    scale: str = ""
    outcome: ClassVar[Outcome] = Outcome.SKIPPED
    ok: ClassVar[bool] = True
    extra: ClassVar[Mapping[str, Any]] = MappingProxyType({})

    def full(self) -> Record:
        record = self.make_record()
        record.type = record.type or self.type or None
        record.scale = record.scale or self.scale or None
        return record


Row = Record | DoneRow
"""What the batch hands its sink for each input."""
