"""What a folder scan left out, and why: every file of a scanned folder is either an input
or counted here by reason (the summary counts them, ``-v`` lists them)."""

from __future__ import annotations

import fnmatch
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from zuotang_cli.i18n import N_, ngettext

HIDDEN = N_("hidden")
UNSUPPORTED = N_("unsupported extension")
NOT_REGULAR = N_("not a regular file")
SYMLINKED_FOLDER = N_("symlinked folder (not followed)")
SUBFOLDER = N_("subfolder (no --recursive)")
EXCLUDED = N_("excluded by --exclude")
NOT_INCLUDED = N_("not matched by --include")
"""Why a file was not taken: English in the summary JSON, translated where shown."""

MAX_LISTED = 1000
"""Skipped paths kept for ``-v``; beyond that they are only counted."""


@dataclass(frozen=True)
class Patterns:
    """``--include`` / ``--exclude`` globs, matched against a file's path relative to the
    scanned folder and against its name (so ``*.png`` and ``raw/*`` both work)."""

    include: Sequence[str] = ()
    exclude: Sequence[str] = ()

    def refusal(self, relpath: PurePosixPath) -> str | None:
        """Why the patterns leave this file out, or None."""
        if self.include and not any(_matches(relpath, p) for p in self.include):
            return NOT_INCLUDED
        if any(_matches(relpath, p) for p in self.exclude):
            return EXCLUDED
        return None


def _matches(relpath: PurePosixPath, pattern: str) -> bool:
    return fnmatch.fnmatch(str(relpath), pattern) or fnmatch.fnmatch(relpath.name, pattern)


@dataclass
class ScanTally:
    """The files and folders scans did not take, by reason; written by the input reader
    (which may run in its own thread), read once the batch is over."""

    skipped: list[tuple[str, str]] = field(default_factory=list)
    """(reason, path), the first :data:`MAX_LISTED` of them."""
    _counts: Counter[str] = field(default_factory=Counter)
    _unscanned: dict[str, int] = field(default_factory=dict)

    def skip(self, reason: str, path: str) -> None:
        self._counts[reason] += 1
        if len(self.skipped) < MAX_LISTED:
            self.skipped.append((reason, path))

    def unscanned(self, folder: str, subfolders: int) -> None:
        """A folder argument (no --recursive) gave no image but has subfolders."""
        self._unscanned[folder] = subfolders

    def counts(self) -> dict[str, int]:
        return dict(self._counts.most_common())

    def hints(self) -> list[str]:
        """Human lines, in the active language."""
        return [
            ngettext(
                "{folder}: {n} subfolder not scanned: add --recursive",
                "{folder}: {n} subfolders not scanned: add --recursive",
                n,
            ).format(folder=folder, n=n)
            for folder, n in self._unscanned.items()
        ]
