"""Plain data shared by the core modules: what goes in (an input) and what comes out (a record)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any


class InputKind(str, enum.Enum):
    URL = "url"
    FILE = "file"


@dataclass(frozen=True)
class InputItem:
    """One entry of the batch, in the order it was read.

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
    error_class: str | None = None
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
    "error_class",
)


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
    error_class: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False)
    """Room for later columns without changing the writers (not written today)."""

    @property
    def ok(self) -> bool:
        return self.outcome in (Outcome.DONE, Outcome.SKIPPED)

    def as_dict(self) -> dict[str, Any]:
        """The report fields in REPORT_FIELDS order, enum values as plain strings."""
        row = {name: getattr(self, name) for name in REPORT_FIELDS}
        row["outcome"] = self.outcome.value
        if row["elapsed"] is not None:
            row["elapsed"] = round(row["elapsed"], 3)
        return row

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> Record:
        """The inverse of :meth:`as_dict` (unknown keys are ignored)."""
        fields: dict[str, Any] = {name: row[name] for name in REPORT_FIELDS if name in row}
        fields["outcome"] = Outcome(fields.get("outcome") or Outcome.FAILED.value)
        fields["state_meaning"] = fields.get("state_meaning") or ""
        fields["message"] = fields.get("message") or ""
        fields["attempts"] = int(fields.get("attempts") or 0)
        return cls(**fields)
