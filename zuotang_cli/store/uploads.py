"""The journal's book of the objects a run put in the user's bucket (docs/uploads.md).

An object is booked *before* its upload starts (``putting``: a kill -9 during the upload
leaves a row the next run deletes the object by) and again once stored, with until when
it may be reused: a re-run sends a stored object's fresh link instead of uploading the
file again.  Its key is made from the file's content hash (no file name goes to the
bucket), so one row is one content.  A row goes when its object is deleted.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass

SCHEMA = """
CREATE TABLE IF NOT EXISTS uploads (
    object TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    size INTEGER NOT NULL DEFAULT 0,
    booked REAL NOT NULL,
    alive_until REAL
);
"""
PUTTING = "putting"
STORED = "stored"

REUSE_FOR = 20 * 3600.0
"""Seconds a stored object is reused by later runs: under a day, the shortest expiry a
bucket's lifecycle rule can have (OSS, S3), so the safety net has not removed it yet."""


@dataclass(frozen=True)
class Upload:
    """One booked object: its key in the bucket, and whether it is known to be stored."""

    object: str
    state: str
    size: int
    alive_until: float | None

    def reusable(self, now: float) -> bool:
        return self.state == STORED and (self.alive_until or 0.0) > now


class UploadBook:
    """The ``uploads`` table of an output directory's journal (see the module)."""

    def __init__(self, execute: Callable[..., sqlite3.Cursor]) -> None:
        self._exec = execute

    def get(self, key: str) -> Upload | None:
        row = self._exec(
            "SELECT object, state, size, alive_until FROM uploads WHERE object = ?", (key,)
        ).fetchone()
        return None if row is None else Upload(str(row[0]), str(row[1]), int(row[2]), row[3])

    def objects(self) -> list[str]:
        """Every booked object, oldest first."""
        return [str(row[0]) for row in self._exec("SELECT object FROM uploads ORDER BY booked")]

    def putting(self, key: str) -> None:
        """An upload of ``key`` starts: booked first, so that no crash leaves it unknown."""
        self._exec(
            "INSERT INTO uploads (object, state, booked) VALUES (?, ?, ?)"
            " ON CONFLICT(object) DO UPDATE SET state = excluded.state,"
            " booked = excluded.booked",
            (key, PUTTING, time.time()),
        )

    def stored(self, key: str, size: int, now: float) -> None:
        self._exec(
            "UPDATE uploads SET state = ?, size = ?, alive_until = ? WHERE object = ?",
            (STORED, size, now + REUSE_FOR, key),
        )

    def removed(self, key: str) -> None:
        self._exec("DELETE FROM uploads WHERE object = ?", (key,))
