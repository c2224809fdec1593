"""Every path zuotang keeps under an output directory, in one place.

An output directory is self-contained and relocatable: the results, the default report
and the gallery at its top, and zuotang's own state in ``.zuotang/`` (the journal, the
lock and its holder's pid, the temporary files of downloads in progress).  Moving or
copying the directory with its ``.zuotang/`` moves everything a re-run needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

STATE_DIR = ".zuotang"
"""zuotang's own folder in an output directory (hidden: a folder scan skips it)."""
REPORT_NAME = "report.csv"
"""The report every run writes in its output directory (``--report`` adds another)."""
GALLERY_NAME = "index.html"


@dataclass(frozen=True)
class Layout:
    """The paths of the output directory ``root``."""

    root: Path

    @property
    def state(self) -> Path:
        return self.root / STATE_DIR

    @property
    def journal(self) -> Path:
        return self.state / "journal.sqlite"

    @property
    def lock(self) -> Path:
        return self.state / "lock"

    @property
    def lock_holder(self) -> Path:
        """The pid of the run holding the lock (beside it: the lock file itself may be
        truncated by a waiter opening it, and cannot be read while locked on Windows)."""
        return self.state / "lock.pid"

    @property
    def downloads(self) -> Path:
        """Downloads in progress (``*.part``), renamed into place only when whole."""
        return self.state / "tmp"

    @property
    def report(self) -> Path:
        return self.root / REPORT_NAME

    @property
    def gallery(self) -> Path:
        return self.root / GALLERY_NAME

    @property
    def write_probe(self) -> Path:
        """A file made and removed at once to prove the directory can be written."""
        return self.root / f"{STATE_DIR}-write-test"
