r"""The resume journal: what each input has cost and where its result is
(docs/architecture.md, "The journal").

One SQLite database per output directory (``.zuotang/journal.sqlite``), keyed on
(normalized input, type, scale).  SQLite because it is in the standard library, gives
atomic updates that survive ``kill -9`` at any instant (WAL mode), and looks an entry up by
key without loading a million-line history into memory.  ``synchronous=NORMAL`` keeps a
commit off the disk's fsync path: a killed process loses nothing, a power cut may lose the
last moments of a run.

Each entry moves through::

    calling --> paid --> saved
       |  \        |
       |   pending (an asynchronous task: paid, its result still to be fetched)
       |
       +--> failed (final | retryable)

and holds the input's latest report record, so ``zuotang report`` can rebuild the report
of every input from it at any time, and what the input has cost over all runs: the calls
billed (``paid_calls``), those that may have been (``possibly_paid``: timed out after the
request went out), and how many of either brought no result (``paid_failures``), which
caps the paid retries of an input across runs, and how many of its paid results were lost
because their link (or task) expired before the download (``expired_links``): the one other
reason an input is paid for more than once.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import itertools
import json
import os
import sqlite3
import time
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from zuotang_cli.cells import stored_cells
from zuotang_cli.errors import LocalError, UsageError
from zuotang_cli.i18n import gettext as _
from zuotang_cli.inputs.reader import InvalidURL, looks_like_url, normalize_url
from zuotang_cli.models import ErrorClass, InputItem, InputKind, Outcome, Record
from zuotang_cli.protocol import rules
from zuotang_cli.store.download import file_checksum
from zuotang_cli.store.layout import Layout
from zuotang_cli.store.uploads import SCHEMA as UPLOADS_SCHEMA
from zuotang_cli.store.uploads import UploadBook

LINK_MARGIN = 120.0
"""A link is treated as expired this long before its hour is up (transit, clocks)."""

TASK_TTL = rules.LINK_TTL
"""How long an asynchronous task can still be fetched after it was created (assumed equal
to the result link's hour: the vendor keeps a task's result that long)."""

FINAL_ERRORS = frozenset(
    {
        ErrorClass.STATE_3,
        ErrorClass.STATE_5,
        ErrorClass.STATE_7,
        ErrorClass.TOO_LARGE,
        ErrorClass.UNFINISHED,
        ErrorClass.UNREADABLE,
        ErrorClass.HTTP_400,
        ErrorClass.HTTP_OTHER,
    }
)
"""Failures that another call cannot fix (the input itself is at fault)."""


def is_final_failure(error_class: str | None) -> bool:
    return error_class in FINAL_ERRORS


class Status(str, enum.Enum):
    CALLING = "calling"
    """A call was started and has not answered: it may have been paid (kill -9)."""
    PAID = "paid"
    """A call succeeded: the result link (or data) is stored, not yet saved."""
    PENDING = "pending"
    """A call was answered with an asynchronous task (paid): its result is to be fetched."""
    SAVED = "saved"
    FAILED_FINAL = "failed-final"
    FAILED_RETRYABLE = "failed-retryable"
    DUPLICATE = "duplicate"
    """The row of an input served from another input's result (never planned)."""


@dataclass(eq=False)
class Entry:
    """An input's row of the journal (made for every input of a re-run: a plain class,
    quick to build; treat it as read-only)."""

    key: str
    status: Status
    stored: str
    """The input's latest record as the journal holds it (JSON): see :attr:`record`."""
    image: str | None
    link_expires: float | None
    output: str | None
    checksum: str | None
    size: int | None
    mtime_ns: int | None
    task_id: str | None = None
    paid_calls: int = 0
    possibly_paid: int = 0
    paid_failures: int = 0
    cells: str | None = None
    """A saved result's CSV cells, as its ``skipped`` row copies them (see
    :func:`zuotang_cli.cells.stored_cells`): a re-run writes that row without decoding
    :attr:`stored` (journals written before this column decode it)."""

    @functools.cached_property
    def fields(self) -> dict[str, Any]:
        """The stored record's fields (decoded once, when asked for; do not change)."""
        fields: dict[str, Any] = json.loads(self.stored)
        return fields

    @functools.cached_property
    def record(self) -> Record:
        """The input's latest record."""
        return Record.from_dict(self.fields)

    def record_with(self, **changes: Any) -> Record:
        """A new record: the stored one with ``changes``."""
        return Record.from_dict({**self.fields, **changes})

    def link_alive(self, now: float) -> bool:
        return self.image is not None and (self.link_expires or 0.0) > now


_SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS entries (
    key TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    record TEXT NOT NULL,
    image TEXT,
    link_expires REAL,
    output TEXT,
    checksum TEXT,
    size INTEGER,
    mtime_ns INTEGER,
    updated REAL NOT NULL,
    task_id TEXT,
    paid_calls INTEGER NOT NULL DEFAULT 0,
    possibly_paid INTEGER NOT NULL DEFAULT 0,
    paid_failures INTEGER NOT NULL DEFAULT 0,
    expired_links INTEGER NOT NULL DEFAULT 0,
    origin TEXT,
    cells TEXT
);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS names (
    folded TEXT PRIMARY KEY,
    relpath TEXT NOT NULL,
    key TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS names_by_key ON names (key);
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    sha256 TEXT NOT NULL
);
"""
    + UPLOADS_SCHEMA
)
FORMAT = 4
"""The journal's format: 2 keeps outputs relative to the output directory, reserves
output names, and knows local inputs by their content; 3 keys URLs by their RFC 3986
normal form (escaped unreserved characters decoded, dot segments removed); 4 names
results after their sources (an older directory remembers its own naming: see
:data:`NAMING_SETTING`)."""
NAMING_SETTING = "naming"
"""The meta entry that says how an output directory names its results: ``legacy`` for
one made before format 4 (``<stem>-<hash8>.<ext>``), so that it keeps its names."""
_ADDED_COLUMNS = {
    "task_id": "TEXT",
    "paid_calls": "INTEGER NOT NULL DEFAULT 0",
    "possibly_paid": "INTEGER NOT NULL DEFAULT 0",
    "paid_failures": "INTEGER NOT NULL DEFAULT 0",
    "expired_links": "INTEGER NOT NULL DEFAULT 0",
    "origin": "TEXT",
    "cells": "TEXT",
}
"""Columns a journal written before billing was counted lacks (added on open)."""
_LOOKUP_BATCH = 500
"""Keys an ``IN (...)`` lookup asks for at once (SQLite before 3.32 allows 999 values)."""
_COLUMNS = (
    "key, status, record, image, link_expires, output, checksum, size, mtime_ns,"
    " task_id, paid_calls, possibly_paid, paid_failures, cells"
)


def entry_key(item: InputItem, type_: str, scale: int | None, digest: str | None = None) -> str:
    """(input, type, scale): a URL by its normalized form, a local file by the SHA-256 of
    its bytes (``digest``), so that a touched, copied or moved file is the same input."""
    key = f"sha256:{digest}" if item.path is not None and digest else item.key
    return f"{type_}\0{scale or 'auto'}\0{key}"


def _renormalized(key: str) -> str:
    """A URL key of an older journal, its URL in this version's normal form."""
    type_, scale, url = key.split("\0")
    try:
        return f"{type_}\0{scale}\0{normalize_url(url)}"
    except InvalidURL:
        return key


def folded(relpath: PurePosixPath) -> str:
    """A name as a case-insensitive, normalization-insensitive disk compares it."""
    return unicodedata.normalize("NFC", relpath.as_posix()).casefold()


class Names:
    """The journal's two small tables beside its entries: the output names reserved (each
    for one input, whatever the case or Unicode normalization of the disk), and the
    digests of local inputs by path, size and mtime."""

    def __init__(self, execute: Callable[..., sqlite3.Cursor]) -> None:
        self._exec = execute

    def claim(
        self,
        key: str,
        wanted: PurePosixPath,
        occupied: Callable[[PurePosixPath], bool] | None = None,
    ) -> PurePosixPath:
        """Reserve an output name for ``key`` (see :meth:`reserve`)."""
        return self.reserve(key, wanted, occupied)[0]

    def reserve(
        self,
        key: str,
        wanted: PurePosixPath,
        occupied: Callable[[PurePosixPath], bool] | None = None,
        *,
        keep: bool = False,
    ) -> tuple[PurePosixPath, str]:
        """Reserve an output name for ``key``, and why it is not ``wanted`` ("" when it is).

        With ``keep``, a name ``key`` already holds with ``wanted``'s extension is kept (a
        result keeps the name it was first saved under, in a directory of any version);
        else ``wanted``
        if no other input holds it (case and Unicode normalization aside) and, when it is
        not reserved yet, no file is there (``occupied``: a file zuotang did not write is
        never overwritten); else ``stem-<hash of key>.ext`` (then ``-2``, ``-3``...)."""
        held = self._held(key, wanted.suffix) if keep else None
        if held is not None:
            return held, ""
        why = ""
        for relpath in _candidates(wanted, key):
            row = self._exec(
                "SELECT key FROM names WHERE folded = ?", (folded(relpath),)
            ).fetchone()
            if row is not None and row[0] != key:
                why = why or _taken_by(relpath, key, str(row[0]))
                continue
            if row is None and occupied is not None and occupied(relpath):
                why = why or f"{relpath.as_posix()} is a file zuotang did not write"
                continue
            if row is None:
                self._exec(
                    "INSERT INTO names (folded, relpath, key) VALUES (?, ?, ?)",
                    (folded(relpath), relpath.as_posix(), key),
                )
            return relpath, why
        raise AssertionError("unreachable: the candidates never run out")

    def _held(self, key: str, suffix: str) -> PurePosixPath | None:
        """The name ``key`` holds with ``suffix`` (the first reserved), if any."""
        rows = self._exec("SELECT relpath FROM names WHERE key = ? ORDER BY rowid", (key,))
        for (relpath,) in rows:
            if PurePosixPath(relpath).suffix.casefold() == suffix.casefold():
                return PurePosixPath(relpath)
        return None

    def known_digest(self, path: Path, size: int, mtime_ns: int) -> str | None:
        """The SHA-256 of ``path`` as last read, if its size and mtime are unchanged (the
        cache that spares re-reading unchanged files on every run, like git's index)."""
        row = self._exec(
            "SELECT sha256 FROM files WHERE path = ? AND size = ? AND mtime_ns = ?",
            (str(path), size, mtime_ns),
        ).fetchone()
        return None if row is None else str(row[0])

    def remember_digest(self, path: Path, size: int, mtime_ns: int, digest: str) -> None:
        self._exec(
            "INSERT INTO files (path, size, mtime_ns, sha256) VALUES (?, ?, ?, ?)"
            " ON CONFLICT(path) DO UPDATE SET size = excluded.size,"
            " mtime_ns = excluded.mtime_ns, sha256 = excluded.sha256",
            (str(path), size, mtime_ns, digest),
        )

    def digest(self, path: Path) -> str:
        """The SHA-256 of a local input, from the cache when the file is unchanged."""
        stat = path.stat()
        known = self.known_digest(path, stat.st_size, stat.st_mtime_ns)
        if known is not None:
            return known
        digest = file_checksum(path)
        self.remember_digest(path, stat.st_size, stat.st_mtime_ns, digest)
        return digest


class Journal:
    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self._db = connection
        self.path = path
        self.root = path.parent.parent.resolve()
        """The output directory: every output path is stored relative to it."""
        self._root = str(self.root)
        self.names = Names(self._exec)
        """Output names reserved, digests of local inputs."""
        self.uploads = UploadBook(self._exec)
        """Objects put in the user's bucket (``--upload-to``), until deleted."""
        self._prefix = os.path.join(self._root, "")  # noqa: PTH118 - the root, a separator

    @classmethod
    def open(cls, output_dir: Path, *, create: bool = True) -> Journal:
        path = Layout(output_dir).journal
        if not create and not path.exists():
            raise UsageError(
                _("no journal in {output_dir}: run 'zuotang enhance -o {output_dir}'").format(
                    output_dir=output_dir
                )
            )
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(path, isolation_level=None, timeout=30.0)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
            _add_missing_columns(db)
        except sqlite3.Error as exc:
            raise LocalError(
                _("cannot open the journal {path}: {reason}").format(path=path, reason=exc)
            ) from exc
        journal = cls(db, path)
        if create and journal.setting("format") != str(FORMAT):
            journal._migrate()
        if create:  # under the run's lock: a call still "calling" belongs to a dead run
            journal._book_interrupted_calls()
        return journal

    @classmethod
    def snapshot(cls, output_dir: Path) -> Journal:
        """An in-memory copy of the journal in ``output_dir`` (an empty one if there is
        none), brought to this format: a dry run plans on it exactly as the real run would
        (claiming names, caching digests, migrating) without writing anything to disk."""
        path = Layout(output_dir).journal
        db = sqlite3.connect(":memory:", isolation_level=None)
        try:
            if path.exists():
                source = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
                try:
                    source.backup(db)
                finally:
                    source.close()
            db.executescript(_SCHEMA)
            _add_missing_columns(db)
        except sqlite3.Error as exc:
            raise LocalError(
                _("cannot read the journal {path}: {reason}").format(path=path, reason=exc)
            ) from exc
        journal = cls(db, path)
        if journal.setting("format") != str(FORMAT):
            journal._migrate()
        journal._book_interrupted_calls()
        return journal

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _exec(self, sql: str, params: tuple[object, ...] = ()) -> sqlite3.Cursor:
        try:
            return self._db.execute(sql, params)
        except sqlite3.Error as exc:
            raise LocalError(f"the journal {self.path} failed: {exc}") from exc

    # -- reading ---------------------------------------------------------------------------

    def get(self, key: str) -> Entry | None:
        row = self._exec(f"SELECT {_COLUMNS} FROM entries WHERE key = ?", (key,)).fetchone()
        return None if row is None else _entry(row)

    def entries(self, keys: Sequence[str]) -> dict[str, Entry | None]:
        """The entry of each of ``keys`` (None: not in the journal), in a few queries."""
        found: dict[str, Entry | None] = dict.fromkeys(keys)
        unique = list(found)
        for start in range(0, len(unique), _LOOKUP_BATCH):
            batch = unique[start : start + _LOOKUP_BATCH]
            marks = ",".join("?" * len(batch))
            sql = f"SELECT {_COLUMNS} FROM entries WHERE key IN ({marks})"
            for row in self._exec(sql, tuple(batch)):
                found[str(row[0])] = _entry(row)
        return found

    def setting(self, name: str) -> str | None:
        """A value this output directory remembers between runs (e.g. the body encoding)."""
        row = self._exec("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def remember(self, name: str, value: str) -> None:
        self._exec(
            "INSERT INTO meta (name, value) VALUES (?, ?)"
            " ON CONFLICT(name) DO UPDATE SET value = excluded.value",
            (name, value),
        )

    def records(self, *, run_alive: bool = False) -> Iterator[Record]:
        """Every input's latest record, oldest first, outputs under the output directory
        where it is now.  A call left in flight shows as interrupted and possibly paid,
        unless ``run_alive`` (a run holds the directory: it is still in flight)."""
        sql = "SELECT status, record FROM entries ORDER BY rowid"
        for status, stored in self._exec(sql):
            record = Record.from_dict(json.loads(stored))
            if status == Status.CALLING.value and not run_alive:
                record = interrupted_record(record)
            yield self.located(record)

    def output_path(self, entry: Entry) -> Path | None:
        """Where the entry's saved result is now (the journal stores it relative)."""
        return None if entry.output is None else self.root / entry.output

    def located(self, record: Record) -> Record:
        """``record`` with its output under the output directory where it is now."""
        if record.output is not None:
            record.output = self.where(record.output)
        return record

    def where(self, output: str) -> str:
        """A stored output path as a path of this system, under the output directory where
        it is now (string work, not pathlib: it runs for every input of a re-run)."""
        if os.path.isabs(output):  # noqa: PTH117
            return output
        native = output if os.sep == "/" else output.replace("/", os.sep)
        return self._prefix + native

    def _relative(self, output: Path) -> str:
        try:
            return output.resolve().relative_to(self.root).as_posix()
        except ValueError:  # outside the output directory (never written so today)
            return str(output)

    def _relocated(self, output: str) -> str:
        """An output path of an older journal, made relative to the output directory; if
        the directory moved before this format, the longest tail of the path found here."""
        path = Path(output)
        if not path.is_absolute():
            return output
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            pass
        for start in range(1, len(path.parts)):
            tail = PurePosixPath(*path.parts[start:])
            if (self.root / tail).exists():
                return tail.as_posix()
        return output

    def _migrate(self) -> None:
        """Bring a journal of an earlier format up to this one, in one transaction: outputs
        made relative, their names reserved, local inputs keyed by their content."""
        rows = self._exec(f"SELECT {_COLUMNS} FROM entries").fetchall()
        earlier = self.setting("format") is not None or bool(rows)
        self._exec("BEGIN IMMEDIATE")
        try:
            for row in rows:
                self._migrate_entry(_entry(row))
            if earlier and self.setting(NAMING_SETTING) is None:
                self.remember(NAMING_SETTING, "legacy")  # made before format 4
            self.remember("format", str(FORMAT))
            self._exec("COMMIT")
        except BaseException:
            self._exec("ROLLBACK")
            raise

    def _migrate_entry(self, entry: Entry) -> None:
        key = entry.key
        if entry.output is not None:
            relative = self._relocated(entry.output)
            record = entry.record.as_dict()
            if record.get("output"):
                record["output"] = relative
            self._exec(
                "UPDATE entries SET output = ?, record = ? WHERE key = ?",
                (relative, json.dumps(record, ensure_ascii=False), key),
            )
            if entry.status is Status.SAVED and not Path(relative).is_absolute():
                self._exec(
                    "INSERT OR IGNORE INTO names (folded, relpath, key) VALUES (?, ?, ?)",
                    (folded(PurePosixPath(relative)), relative, key),
                )
        parts = key.split("\0")
        if len(parts) == 3 and looks_like_url(parts[2]):
            self._rekey(key, _renormalized(key))
            return
        if len(parts) != 5:  # (type, scale, path, size, mtime): a file known by its path
            return
        type_, scale, path, size, mtime_ns = parts
        try:
            stat = Path(path).stat()
            if (str(stat.st_size), str(stat.st_mtime_ns)) != (size, mtime_ns):
                return  # changed since: its old entry stays as it was
            digest = self.names.digest(Path(path))
        except OSError:
            return
        self._rekey(key, f"{type_}\0{scale}\0sha256:{digest}")

    def _rekey(self, key: str, new_key: str) -> None:
        if new_key == key:
            return
        try:
            self._db.execute("UPDATE entries SET key = ? WHERE key = ?", (new_key, key))
            self._db.execute("UPDATE names SET key = ? WHERE key = ?", (new_key, key))
        except sqlite3.IntegrityError:
            pass  # the same input is already known under its new key

    def _book_interrupted_calls(self) -> None:
        """Calls a killed run left in flight (``calling``): each possibly paid, without a
        result, so it counts against the input's paid retries; their rows say so."""
        rows = self._exec(
            "SELECT key, record FROM entries WHERE status = ?", (Status.CALLING.value,)
        ).fetchall()
        for key, stored in rows:
            record = interrupted_record(Record.from_dict(json.loads(stored)))
            self._exec(
                "UPDATE entries SET status = ?, record = ?, possibly_paid = possibly_paid + 1,"
                " paid_failures = paid_failures + 1 WHERE key = ?",
                (Status.FAILED_RETRYABLE.value, _dump(record), key),
            )

    def live_paid_work(self, now: float) -> Iterator[tuple[Entry, InputItem]]:
        """Results paid for and not saved whose links still live, and tasks paid for that
        can still be fetched, with their inputs, soonest to expire first: a run settles
        them before any new call, whether or not its list names them."""
        sql = (
            f"SELECT {_COLUMNS}, origin FROM entries WHERE status IN (?, ?)"
            " AND link_expires > ? AND origin IS NOT NULL ORDER BY link_expires"
        )
        params = (Status.PAID.value, Status.PENDING.value, now)
        for row in self._exec(sql, params).fetchall():
            entry = _entry(row[:-1])
            item = item_from_origin(row[-1], entry.record)
            if item is not None:
                yield entry, item

    # -- writing ---------------------------------------------------------------------------

    def calling(self, key: str, record: Record, item: InputItem | None = None) -> None:
        """Before a call: if the process dies now, the next run knows it may be paid.
        ``item`` is kept with it, so that a later run can finish the paid work of this
        input before any new call, whether or not its list names it."""
        self._upsert(key, Status.CALLING, record)
        if item is not None:
            self._exec("UPDATE entries SET origin = ? WHERE key = ?", (origin_of(item), key))

    def billed(self, key: str, *, certain: bool = True) -> None:
        """One more call of this input was billed (``certain``) or may have been (a timeout
        after the request went out)."""
        column = "paid_calls" if certain else "possibly_paid"
        self._exec(f"UPDATE entries SET {column} = {column} + 1 WHERE key = ?", (key,))

    def paid_without_result(self, key: str) -> None:
        """A billed (or possibly billed) call of this input ended without its result."""
        self._exec("UPDATE entries SET paid_failures = paid_failures + 1 WHERE key = ?", (key,))

    def pending(self, key: str, record: Record, task_id: str, now: float) -> None:
        """A call was answered with an asynchronous task: paid; fetch it, do not pay again."""
        self._upsert(key, Status.PENDING, record, link_expires=now + TASK_TTL - LINK_MARGIN)
        self._exec("UPDATE entries SET task_id = ? WHERE key = ?", (task_id, key))

    def paid(
        self, key: str, record: Record, image: str, now: float, expires: float | None = None
    ) -> None:
        """After a successful call, before the download; ``expires``: when the link says it
        stops working (else an hour from ``now``)."""
        expires = (expires if expires is not None else now + rules.LINK_TTL) - LINK_MARGIN
        self._upsert(key, Status.PAID, record, image=image, link_expires=expires)

    def link_dead(self, key: str) -> None:
        """The link (or task) of the entry's result no longer works.  A paid result not yet
        saved is money lost: booked once per link as a paid call without a result (and in
        ``expired_links``), so calling again for it is under the input's paid retries; a
        saved one was delivered, so only its link is forgotten."""
        self._exec(
            "UPDATE entries SET"
            " expired_links = expired_links + (status != ? AND COALESCE(link_expires, 1) != 0),"
            " paid_failures = paid_failures + (status != ? AND COALESCE(link_expires, 1) != 0),"
            " link_expires = 0 WHERE key = ?",
            (Status.SAVED.value, Status.SAVED.value, key),
        )

    def saved(self, key: str, record: Record, output: Path, checksum: str) -> None:
        stat = output.stat()
        relative = self._relative(output)
        stored = Record.from_dict({**record.as_dict(), "output": relative})
        self._exec(
            "UPDATE entries SET status = ?, record = ?, output = ?, checksum = ?, size = ?,"
            " mtime_ns = ?, updated = ?, cells = ? WHERE key = ?",
            (
                Status.SAVED.value,
                _dump(stored),
                relative,
                checksum,
                stat.st_size,
                stat.st_mtime_ns,
                time.time(),
                stored_cells(stored),
                key,
            ),
        )

    def placeholder(self, key: str, record: Record) -> None:
        """The record of an input the run stopped before, unless the input has an entry."""
        self._exec(
            "INSERT OR IGNORE INTO entries (key, status, record, updated) VALUES (?, ?, ?, ?)",
            (key, Status.FAILED_RETRYABLE.value, _dump(record), time.time()),
        )

    def forget(self, key: str) -> None:
        """Drop the placeholder row a stopped run left for a local file, now that it is
        known by its content."""
        self._exec(
            "DELETE FROM entries WHERE key = ? AND status = ?",
            (key, Status.FAILED_RETRYABLE.value),
        )

    def duplicate(self, item: InputItem, key: str, record: Record) -> None:
        """The row of an input served from another's result, so the report lists it too
        (kept under a key of its own: what is paid for stays with ``key``)."""
        stored = Record.from_dict(
            {**record.as_dict(), "output": self._relative(Path(record.output or ""))}
        )
        self._exec(
            "INSERT INTO entries (key, status, record, updated) VALUES (?, ?, ?, ?)"
            " ON CONFLICT(key) DO UPDATE SET record = excluded.record, updated = excluded.updated",
            (
                f"duplicate\0{item.source}\0{key}",
                Status.DUPLICATE.value,
                _dump(stored),
                time.time(),
            ),
        )

    def failed(self, key: str, record: Record) -> None:
        """The run is done with this input without saving it."""
        entry = self.get(key)
        if entry is not None and entry.status in (Status.PAID, Status.PENDING):
            # Keep the paid link or task: a later run fetches it instead of paying again.
            self._exec(
                "UPDATE entries SET record = ?, updated = ? WHERE key = ?",
                (_dump(record), time.time(), key),
            )
            return
        status = (
            Status.FAILED_FINAL
            if is_final_failure(record.error_class)
            else (Status.FAILED_RETRYABLE)
        )
        self._upsert(key, status, record)

    def _upsert(
        self,
        key: str,
        status: Status,
        record: Record,
        *,
        image: str | None = None,
        link_expires: float | None = None,
    ) -> None:
        self._exec(
            "INSERT INTO entries (key, status, record, image, link_expires, updated)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET status = excluded.status,"
            " record = excluded.record, image = excluded.image,"
            " link_expires = excluded.link_expires, updated = excluded.updated",
            (key, status.value, _dump(record), image, link_expires, time.time()),
        )


INTERRUPTED_CALL = (
    "interrupted during a call (the run was killed): possibly paid; the next run calls it "
    "again under --paid-retries"
)


def interrupted_record(record: Record) -> Record:
    """The row of an input whose call a killed run left in flight: possibly paid."""
    return Record.from_dict(
        {
            **record.as_dict(),
            "outcome": Outcome.FAILED.value,
            "error_class": ErrorClass.INTERRUPTED.value,
            "message": INTERRUPTED_CALL,
            "paid_calls": record.paid_calls + 1,
        }
    )


def origin_of(item: InputItem) -> str:
    """What a later run needs to name the result of ``item`` without its list (JSON)."""
    origin: dict[str, str] = {"kind": item.kind.value}
    if item.url is not None:
        origin["url"] = item.url
    if item.path is not None:
        origin["path"] = str(item.path)
    if item.relpath is not None:
        origin["relpath"] = item.relpath.as_posix()
    return json.dumps(origin, ensure_ascii=False)


def item_from_origin(text: str, record: Record) -> InputItem | None:
    """The input :func:`origin_of` describes (None: not readable, or not this version's)."""
    try:
        origin = json.loads(text)
        kind = InputKind(origin["kind"])
    except (ValueError, KeyError, TypeError):
        return None
    relpath = origin.get("relpath")
    path = origin.get("path")
    return InputItem(
        index=-1,
        source=record.input,
        kind=kind,
        url=origin.get("url"),
        path=Path(path) if path else None,
        relpath=PurePosixPath(relpath) if relpath else None,
        width=record.input_width,
        height=record.input_height,
    )


def _taken_by(relpath: PurePosixPath, key: str, other: str) -> str:
    """Why ``relpath`` is not for ``key``: whose result it is."""
    mine, theirs = key.split("\0"), other.split("\0")
    if len(mine) == 3 and len(theirs) == 3 and mine[2] == theirs[2]:
        return (
            f"{relpath.as_posix()} is this source's result with --type {theirs[0]} "
            f"--scale {theirs[1]}"
        )
    return f"{relpath.as_posix()} is another input's result"


def _candidates(wanted: PurePosixPath, key: str) -> Iterator[PurePosixPath]:
    """``wanted``, then ``stem-<hash of key>.ext``, then that with -2, -3, ..."""
    yield wanted
    stem, suffix = wanted.stem, wanted.suffix
    tag = hashlib.blake2b(key.encode("utf-8", "surrogateescape"), digest_size=4).hexdigest()
    yield wanted.with_name(f"{stem}-{tag}{suffix}")
    for n in itertools.count(2):
        yield wanted.with_name(f"{stem}-{tag}-{n}{suffix}")


def _add_missing_columns(db: sqlite3.Connection) -> None:
    have = {row[1] for row in db.execute("PRAGMA table_info(entries)")}
    for name, declaration in _ADDED_COLUMNS.items():
        if name not in have:
            db.execute(f"ALTER TABLE entries ADD COLUMN {name} {declaration}")


def _dump(record: Record) -> str:
    """A record as the journal stores it: JSON without its empty fields (a short text is
    read back fast, a million times on the re-run of a long list)."""
    row = {name: value for name, value in record.as_dict().items() if value not in _EMPTY}
    return json.dumps(row, ensure_ascii=False)


_EMPTY = (None, "")
"""Field values a stored record leaves out (:meth:`Record.from_dict` restores them)."""


def _entry(row: tuple[Any, ...]) -> Entry:
    """An entry from its ``_COLUMNS`` (SQLite gives them their declared types)."""
    return Entry(row[0], _STATUSES[row[1]], *row[2:])


_STATUSES = {status.value: status for status in Status}
