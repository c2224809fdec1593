"""Inputs whose result is already there: done by an earlier run (its row from the
journal, a copy under its own name when it is the same content under another name), or
given twice in this run (settled at the end, once the first is done).  A local file is
known by its content (docs/architecture.md, "Identity")."""

from __future__ import annotations

import asyncio
import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from zuotang_cli.engine.rows import from_journal
from zuotang_cli.engine.state import BatchConfig
from zuotang_cli.errors import one_line
from zuotang_cli.models import DoneRow, ErrorClass, InputItem, Outcome, Record, Row
from zuotang_cli.sanitize import Secrets
from zuotang_cli.store import finishing, naming
from zuotang_cli.store.download import copy_result, file_checksum, place_bytes
from zuotang_cli.store.journal import Entry, Journal, Status, entry_key
from zuotang_cli.store.planner import Plan, output_intact


@dataclass(frozen=True)
class Duplicate:
    """An input whose result is another's: same URL, or same bytes, type and scale."""

    item: InputItem
    key: str
    first: str
    """The input it duplicates, as the user gave it (or ``input #N``)."""


class Repeats:
    """What a batch knows of repeated work (see the module); ``tmp_path`` gives a temporary
    file in the output directory for a copy."""

    def __init__(
        self,
        config: BatchConfig,
        journal: Journal,
        secrets: Secrets,
        tmp_path: Callable[[], Path],
    ) -> None:
        self.config, self.journal, self.secrets = config, journal, secrets
        self._tmp_path = tmp_path
        self.predicted: set[str] = set()
        """Dry run: keys this run would call, download or fetch (so their duplicates would
        get copies)."""
        self._waiting: dict[str, list[Duplicate]] = {}
        """In a stream (a watched folder): the duplicates of each file in flight."""

    def wait_for_first(self, duplicate: Duplicate) -> None:
        """In a stream: ``duplicate`` is settled when the file in flight it repeats is."""
        self._waiting.setdefault(duplicate.key, []).append(duplicate)

    def settle_waiting(self, key: str) -> list[Record]:
        """The rows of the duplicates that waited for the input of ``key``, now settled."""
        return [self.settle(duplicate) for duplicate in self._waiting.pop(key, [])]

    def all_waiting(self) -> list[Duplicate]:
        """Every duplicate still waiting (the end of the run), taken away."""
        waiting = [duplicate for group in self._waiting.values() for duplicate in group]
        self._waiting.clear()
        return waiting

    async def file_key(self, item: InputItem) -> str:
        """The journal key of a local file: it is read (once: the journal caches its
        digest by size and mtime) and known by its content.  None: an unreadable file,
        which raises OSError."""
        spec = self.config.spec
        assert item.path is not None
        stat = item.path.stat()
        digest = self.journal.names.known_digest(item.path, stat.st_size, stat.st_mtime_ns)
        if digest is None:
            digest = await asyncio.to_thread(file_checksum, item.path)
            self.journal.names.remember_digest(item.path, stat.st_size, stat.st_mtime_ns, digest)
        self.journal.forget(entry_key(item, spec.type, spec.scale))  # a stopped run's row
        return entry_key(item, spec.type, spec.scale, digest)

    def done_before(self, item: InputItem, key: str, plan: Plan) -> Row:
        """An input done before: its row, and (when it is the same content under another
        name, a copied or moved file) a copy of the result under its own name."""
        entry = plan.entry
        assert entry is not None
        target = self._new_format(item, entry)
        if target is not None:
            return self._convert(item, key, entry, target)
        if (  # a URL done before: its row from the stored cells, nothing decoded
            item.path is None
            and entry.cells is not None
            and entry.output is not None
            and not self.config.dry_run
            and not self.secrets.found_in(item.source)
        ):
            return DoneRow(
                item.source,
                self.journal.where(entry.output),
                plan.reason,
                entry.cells,
                functools.partial(from_journal, item, plan, self.journal),
                self.config.spec.type,
                str(self.config.spec.scale or "auto"),
            )
        earlier = entry.fields.get("input")
        if earlier == item.source:
            return from_journal(item, plan, self.journal)
        return self._deliver(item, key, entry, f"same content as {earlier}, done before")

    def settle(self, duplicate: Duplicate) -> Record:
        """A duplicate gets the result of the input it duplicates, once that is settled."""
        entry = self.journal.get(duplicate.key)
        label = f"duplicate of {duplicate.first}"
        if duplicate.key in self.predicted:  # dry run: the first one would be done
            item = duplicate.item
            copy = item.path is not None and item.error_class != ErrorClass.DUPLICATE
            record = Record(input=duplicate.item.source, outcome=Outcome.SKIPPED)
            record.message = f"{label}: {'a copy of' if copy else 'the same'} result"
            record.extra["copy"] = copy
            return record
        if entry is None or entry.status is not Status.SAVED:
            first = entry.record if entry is not None else None
            record = Record(
                input=duplicate.item.source,
                outcome=Outcome.NOT_ATTEMPTED if first is None else first.outcome,
                message=f"{label}, which was not done"
                + (f": {first.message}" if first is not None and first.message else ""),
                error_class=ErrorClass.DUPLICATE,
            )
            if record.outcome is Outcome.DONE:
                record.outcome = Outcome.FAILED
            return record
        return self._deliver(duplicate.item, duplicate.key, entry, label)

    def _skipped(self, item: InputItem, entry: Entry) -> Record:
        """``entry``'s saved row as ``item``'s ``skipped`` one: nothing paid, no attempt."""
        record = self.journal.located(Record.from_dict(entry.record.as_dict()))
        record.input, record.outcome, record.attempts, record.elapsed = (
            item.source,
            Outcome.SKIPPED,
            0,
            None,
        )
        record.paid_calls, record.error_class = 0, None
        return record

    def _deliver(self, item: InputItem, key: str, entry: Entry, label: str) -> Record:
        """A ``skipped`` row for ``item`` whose result is ``entry``'s: at its own name (a
        copy, made once and reserved) when that differs from the saved one's."""
        source = self.journal.output_path(entry)
        assert source is not None
        record = self._skipped(item, entry)
        wanted = self.config.naming.relpath(item, source.suffix.lstrip(".") or "png")
        relpath = self.journal.names.claim(key, wanted)
        dest = naming.safe_join(self.config.output_dir, relpath)
        if dest == source:
            record.message = f"{label}: the same result"
            record.extra["unlisted"] = True  # the file is listed on stdout once a run
            return record
        record.extra["copy"] = True
        if self.config.dry_run:
            record.message = f"{label}: a copy of {entry.output}"
            return record
        if not output_intact(entry, self.journal.root):  # moved, deleted or edited since
            record.output = None
            record.message = (
                f"{label}: not copied, its result {entry.output} was moved, deleted or "
                "changed since it was saved"
            )
            return record
        if not dest.exists():  # a copy there (made before) is never overwritten
            copy_result(source, dest, self._tmp_path())
        record.output = str(dest)
        record.message = f"{label}: copied from {entry.output}"
        self.journal.duplicate(item, key, record)
        return record

    def _new_format(self, item: InputItem, entry: Entry) -> str | None:
        """The format a saved result is to be converted to (``--format`` asks for another
        than it has), else None."""
        wanted = self.config.finish.format
        if wanted is None or entry.output is None:
            return None
        if wanted == "same":
            wanted = finishing.format_from_name(naming.source_name(item)) or ""
        have = finishing.format_from_name(entry.output)
        return wanted if wanted and have and wanted != have else None

    def _convert(self, item: InputItem, key: str, entry: Entry, target: str) -> Record:
        """A ``skipped`` row for a saved result converted locally to ``target`` (nothing
        is called: converting again never pays); the journal records the new file."""
        record = self._skipped(item, entry)
        if self.config.dry_run:
            record.message = f"done in an earlier run: its result would be converted to {target}"
            return record
        if not output_intact(entry, self.journal.root):
            record.message = (
                f"done in an earlier run; not converted to {target}: its result "
                f"{entry.output} was moved, deleted or changed since it was saved"
            )
            return record
        try:
            return self._converted(item, key, entry, target, record)
        except Exception as exc:  # a file that cannot be converted stays as it is
            record.message = f"done in an earlier run; not converted to {target}: {one_line(exc)}"
            return record

    def _converted(
        self, item: InputItem, key: str, entry: Entry, target: str, record: Record
    ) -> Record:
        """``record`` for the saved result of ``entry`` converted to ``target``."""
        source = self.journal.output_path(entry)
        assert source is not None
        stored = entry.record
        finished = finishing.convert(source.read_bytes(), target, self.config.finish)
        spec = self.config.spec
        fields = naming.Fields(spec.type, str(spec.scale or "auto"), _factor(stored))
        wanted = self.config.naming.relpath(item, target, fields)
        relpath, why = self.journal.names.reserve(
            key, wanted, lambda rel: naming.occupied(self.config.output_dir, rel), keep=True
        )
        dest = naming.safe_join(self.config.output_dir, relpath)
        place_bytes(finished.data, dest, self._tmp_path())
        note = f"converted from {entry.output} to {target}, no call"
        if why:
            note = f"{note}; named {relpath}: {why}"
        saved = Record.from_dict(
            {
                **stored.as_dict(),
                "output": str(dest),
                "result_bytes": len(finished.data),
                "width": finished.width,
                "height": finished.height,
                "message": note,
            }
        )
        self.journal.saved(key, saved, dest, hashlib.sha256(finished.data).hexdigest())
        record.output, record.message = str(dest), f"done in an earlier run; {note}"
        record.result_bytes, record.width, record.height = (
            len(finished.data),
            finished.width,
            finished.height,
        )
        return record


def _factor(record: Record) -> str:
    return f"{record.factor:g}" if record.factor else ""
