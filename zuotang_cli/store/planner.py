"""What a run does for each input, from its journal entry: the rules of money
(docs/architecture.md, "Money"; README, "Safe to re-run")."""

from __future__ import annotations

import enum
import os
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from zuotang_cli.store.download import file_checksum
from zuotang_cli.store.journal import Entry, Status


class Action(str, enum.Enum):
    CALL = "call"
    DOWNLOAD = "download"
    POLL = "poll"
    """An earlier run paid for an asynchronous task: fetch its result, do not call."""
    SKIP = "skip"
    """Done before (saved, output intact): counts as done."""
    SKIP_FAILED = "skip-failed"
    """Failed for good before; only --retry-failed tries again."""


@dataclass(eq=False)
class Plan:
    action: Action
    entry: Entry | None
    reason: str = ""
    lost: bool = False
    """The paid result of an earlier run was lost (its link or task expired before it was
    saved) and is not booked as such yet: the batch books it before calling again."""


DONE_BEFORE = "done in an earlier run"
DONE_LONG_AGO = (
    "done in an earlier run (a result moved or deleted since is not paid for again; "
    "--force pays for a new one)"
)
"""A done input whose link has expired: its file is not looked at (done is done)."""
RESULT_MISSING = "its result was moved or deleted: downloading it again while its link lives"
RESULT_GONE = (
    "done in an earlier run; its result was moved or deleted and its link has expired: not "
    "paid for again (--force pays for a new one)"
)
RESULT_EDITED = (
    "done in an earlier run; its result was changed since it was saved: it is yours, never "
    "overwritten (move it away for --force to make a new one)"
)


def plan(
    entry: Entry | None,
    *,
    force: bool,
    retry_failed: bool,
    now: float,
    paid_failures_allowed: int | None = None,
    present: Callable[[str], bool],
    root: str,
) -> Plan:
    """What this run must do for the input of ``entry`` (README, "Safe to re-run").

    Done is done: a saved result is never paid for again without ``force``; a missing
    one is downloaded again while its link lives (free), and once the link has expired
    its file is not even looked at.  ``force`` redoes saved results only, never a file
    that is no longer what was saved (it belongs to the user).  A paid result whose
    link (or task) died is lost money: calling again for it is a paid decision, under
    ``paid_failures_allowed`` (billed calls without a result an input may cost over
    all runs; None: no limit, failures are not billed).  ``present`` says whether a
    stored output path is in the output directory (one listing a folder: an
    :class:`OutputListing`), ``root`` is that directory.
    """
    if entry is None:
        return Plan(Action.CALL, None)
    status = entry.status
    if status is Status.SAVED:
        return _plan_saved(entry, force=force, now=now, present=present, root=root)
    if status is Status.PENDING and entry.task_id and (entry.link_expires or 0.0) > now:
        return Plan(Action.POLL, entry, "paid earlier as a task: fetching its result")
    if status is Status.PAID and entry.link_alive(now):
        return Plan(Action.DOWNLOAD, entry, "paid earlier: downloading only")
    if status in (Status.PAID, Status.PENDING):
        lost = entry.link_expires != 0  # not booked yet as a paid call without result
        failures = entry.paid_failures + lost
        if retry_failed or paid_failures_allowed is None or failures < paid_failures_allowed:
            what = "its task" if status is Status.PENDING else "its link"
            reason = f"paid earlier, but {what} has expired: calling again (paid)"
            return Plan(Action.CALL, entry, reason, lost=lost)
        reason = (
            f"paid {failures} times without a result (its link expired before it was "
            "saved); --retry-failed pays again"
        )
        return Plan(Action.SKIP_FAILED, entry, reason, lost=lost)
    if retry_failed:
        return Plan(Action.CALL, entry)
    if status is Status.FAILED_FINAL:
        return Plan(Action.SKIP_FAILED, entry, "failed in an earlier run (--retry-failed)")
    if paid_failures_allowed is not None and entry.paid_failures >= paid_failures_allowed:
        reason = (
            f"paid {entry.paid_failures} times without a result in earlier runs "
            "(--paid-retries; --retry-failed pays again)"
        )
        return Plan(Action.SKIP_FAILED, entry, reason)
    return Plan(Action.CALL, entry)


def _plan_saved(
    entry: Entry, *, force: bool, now: float, present: Callable[[str], bool], root: str
) -> Plan:
    alive = entry.link_alive(now)
    if not force and not alive:
        return Plan(Action.SKIP, entry, DONE_LONG_AGO)  # no stat: done is done
    output = entry.output or ""
    there = present(output)
    if not there:
        if force:
            return Plan(Action.CALL, entry, "--force: processing again")
        return Plan(Action.DOWNLOAD, entry, RESULT_MISSING)
    if not force:
        return Plan(Action.SKIP, entry, DONE_BEFORE)
    if output_intact(entry, root):
        return Plan(Action.CALL, entry, "--force: processing again")
    return Plan(Action.SKIP, entry, RESULT_EDITED)


MAX_LISTED = 100_000
"""Names of one output folder held to answer :class:`OutputListing`; a bigger folder is
looked at file by file instead (its names would cost more memory than its stats time)."""


class OutputListing:
    """Whether stored output paths are in the output directory: one listing of each folder
    (the first time it is asked about), not one stat each.  Names compare NFC-normalized
    (macOS lists them decomposed)."""

    def __init__(self, root: Path | str) -> None:
        self._root = str(root)
        self._folders: dict[str, frozenset[str] | None] = {}

    def __call__(self, output: str) -> bool:
        folder, _, name = output.rpartition("/")
        if folder not in self._folders:
            self._folders[folder] = self._list(folder)
        names = self._folders[folder]
        if names is None:
            return os.path.lexists(os.path.join(self._root, output))  # noqa: PTH118
        return unicodedata.normalize("NFC", name) in names

    def _list(self, folder: str) -> frozenset[str] | None:
        names: set[str] = set()
        try:
            with os.scandir(os.path.join(self._root, folder)) as entries:  # noqa: PTH118
                for entry in entries:
                    if len(names) >= MAX_LISTED:
                        return None
                    names.add(unicodedata.normalize("NFC", entry.name))
        except OSError:
            return frozenset()  # gone, or not a folder: nothing of it is there
        return frozenset(names)


def output_intact(entry: Entry, root: Path | str) -> bool:
    """The saved file is still there and unchanged (size and mtime, else its checksum)."""
    if entry.output is None:
        return False
    # os.path, not pathlib: this runs for every input of a re-run
    path = os.path.join(root, entry.output)  # noqa: PTH118
    try:
        stat = os.stat(path)  # noqa: PTH116
    except OSError:
        return False
    if stat.st_size != entry.size:
        return False
    if stat.st_mtime_ns == entry.mtime_ns:
        return True
    try:
        return file_checksum(Path(path)) == entry.checksum
    except OSError:
        return False
