"""A hot folder: the images of one or more folders, taken as they land (docs/watch.md).

- :class:`Settler` decides when a file is complete, without a clock of its own (every
  call says what time it is): a file is taken once its size and mtime have stayed the
  same for ``settle`` seconds, and taken again only when they change (a touch, a new
  copy under the same name).  Pure: its tests need no waiting.
- :class:`Watcher` is the batch's stream of inputs: what the folders hold at start, then
  every file the file-watching library reports (:mod:`watchfiles`: the OS's own events
  on Linux, macOS and Windows; polling with ``poll``, for network shares), each one as it
  settles.  Partial and temporary names (``.part``, ``.crdownload``, ``~$…``, dotfiles)
  are never taken: the file is, once renamed into place.
- :class:`DoneMover` moves the originals whose row is done out of the inbox
  (``--move-done``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import stat
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path, PurePosixPath

from zuotang_cli.errors import one_line
from zuotang_cli.i18n import gettext as _
from zuotang_cli.inputs.reader import IMAGE_SUFFIXES, found_file
from zuotang_cli.inputs.scan import Patterns
from zuotang_cli.models import InputItem, Row

TEMPORARY_SUFFIXES = frozenset(
    {".part", ".partial", ".crdownload", ".download", ".tmp", ".temp", ".swp", ".filepart"}
)
"""Names that browsers, sync clients and copy tools give a file while it is written."""
STEP_MS = 50
"""The watching library hands over what changed once nothing has for this long (ms)..."""
DEBOUNCE_MS = 400
"""...or at the latest after this long (ms), during a stream of changes."""
POLL_MS = 300
"""With ``--poll``: how often the folders are listed (ms)."""
LISTENER_STOP_WAIT = 2.0
"""Seconds the library's watching thread gets to end once told to stop."""

Look = tuple[int, int]
"""A file's (size, mtime in ns): what must stay the same for it to be complete."""


def is_temporary(name: str) -> bool:
    """Whether ``name`` is one a file has while it is written or a program's scratch file
    (a dotfile, an Office ``~$`` lock, a backup ``name~``, ``.part``, ``.crdownload``...)."""
    return (
        name.startswith((".", "~$"))
        or name.endswith("~")
        or PurePosixPath(name.lower()).suffix in TEMPORARY_SUFFIXES
    )


class Settler:
    """When files are complete (see the module): ``seen`` each time a file is looked at,
    ``due`` for those whose look has not changed for ``settle`` seconds, ``confirm`` with a
    fresh look to take one.  Times are any one clock's seconds, given by the caller."""

    def __init__(self, settle: float) -> None:
        self.settle = settle
        self._pending: dict[str, tuple[Look, float]] = {}
        """Files not taken yet: their last look, and since when it has been that."""
        self._taken: dict[str, Look] = {}
        """Files taken, as they were then: the same look again is not a new file."""

    @property
    def waiting(self) -> int:
        """Files seen and not taken yet."""
        return len(self._pending)

    def seen(self, path: str, look: Look, now: float) -> None:
        """``path`` looks like ``look`` at ``now``."""
        if self._taken.get(path) == look:
            return  # as it was taken (an event for a read, a chmod): nothing new
        pending = self._pending.get(path)
        if pending is None or pending[0] != look:
            self._pending[path] = (look, now)

    def gone(self, path: str) -> None:
        """``path`` is no more (deleted, renamed away): nor anything under it, if it was
        a folder."""
        if path in self._pending or path in self._taken:
            self._pending.pop(path, None)
            self._taken.pop(path, None)
            return
        under = path.rstrip(os.sep) + os.sep
        for table in (self._pending, self._taken):
            for known in [p for p in table if p.startswith(under)]:
                del table[known]

    def forget(self, path: str) -> None:
        """``path`` was moved out of the inbox by us (``--move-done``)."""
        self._taken.pop(path, None)

    def due(self, now: float) -> list[str]:
        """The files whose look has not changed for ``settle`` seconds by ``now``, oldest
        first: to be looked at once more and confirmed."""
        ready = [(since, path) for path, (_, since) in self._pending.items()]
        return [path for since, path in sorted(ready) if now - since >= self.settle]

    def confirm(self, path: str, look: Look | None, now: float) -> bool:
        """Take ``path`` if ``look`` (None: it is gone) is still the one it has had for
        ``settle`` seconds by ``now``; else note the change and wait again."""
        pending = self._pending.get(path)
        if pending is None:
            return False
        if look is None:
            self.gone(path)
            return False
        if pending[0] != look:
            self._pending[path] = (look, now)
            return False
        if now - pending[1] < self.settle:
            return False
        del self._pending[path]
        self._taken[path] = look
        return True

    def next_due(self) -> float | None:
        """When the next file may be due (on the caller's clock), or None: none waits."""
        if not self._pending:
            return None
        return min(since for _, since in self._pending.values()) + self.settle


def _look(path: str) -> Look | None:
    """A regular file's (size, mtime), or None when it is gone or not a regular file."""
    try:
        info = os.stat(path)  # noqa: PTH116 - one a file, for every file that changes
    except OSError:
        return None
    if not stat.S_ISREG(info.st_mode):
        return None
    return info.st_size, info.st_mtime_ns


class Watcher(AsyncIterator[list[InputItem]]):
    """The images of ``folders`` as the batch reads its inputs: lists of items, each file
    once it has settled (its size and mtime the same for ``settle`` seconds), for as long
    as the batch reads, until :meth:`stop`.  ``once``: what the folders hold at start,
    then the end (no events).  ``clock``: monotonic seconds (the settle times)."""

    def __init__(
        self,
        folders: Sequence[Path],
        *,
        settle: float,
        recursive: bool = False,
        patterns: Patterns | None = None,
        poll: bool = False,
        once: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.roots = [Path(folder).resolve() for folder in folders]
        several = len(self.roots) > 1
        self._prefixes = {root: (root.name or "root",) if several else () for root in self.roots}
        self._settler = Settler(settle)
        self._recursive = recursive
        self._patterns = patterns or Patterns()
        self._poll = poll
        self._once = once
        self._clock = clock
        self._index = 0
        self._started = False
        self._stopping = False
        self._finished = False
        self._wake = asyncio.Event()
        self._stop_event = asyncio.Event()
        self._listener: asyncio.Task[None] | None = None
        self.failure: str | None = None
        """Why the folders could not be watched to the end (one went away, the OS refused
        a watch): the stream then ends, every file taken with its row."""

    @property
    def waiting(self) -> int:
        """Files seen that have not settled yet."""
        return self._settler.waiting

    def __aiter__(self) -> Watcher:
        return self

    def stop(self, grace: float = 0.0) -> None:
        """The batch stops: end the stream.  Files still settling are left for the next
        start (they may be half written); what has settled was handed over already."""
        self._stopping = True
        self._stop_event.set()
        self._wake.set()

    def forget(self, path: str) -> None:
        """``path`` was moved out of the inbox by us."""
        self._settler.forget(path)

    async def __anext__(self) -> list[InputItem]:
        if self._finished:
            raise StopAsyncIteration
        if not self._started:
            await self._start()
        while True:
            self._wake.clear()  # before looking: a change meanwhile wakes the nap below
            if self.failure is not None:
                await self.aclose()
                raise StopAsyncIteration
            items = await self._settled(self._clock())
            if items:
                return items
            if self._stopping or (self._once and not self._settler.waiting):
                await self.aclose()
                raise StopAsyncIteration
            await self._nap()

    async def aclose(self) -> None:
        """End the stream and the library's watching (idempotent)."""
        self._finished = True
        self._stop_event.set()
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError, Exception):
                await asyncio.wait_for(listener, LISTENER_STOP_WAIT)

    async def _start(self) -> None:
        self._started = True
        if not self._once:
            self._listener = asyncio.create_task(self._listen())
            # Its first step sets the OS watch up: nothing lands unseen between it and
            # the scan of what is there (a file seen by both is seen twice: harmless).
            await asyncio.sleep(0)
        found = await asyncio.to_thread(lambda: list(self._scan()))
        now = self._clock()
        for path, look in found:
            self._settler.seen(path, look, now)

    async def _nap(self) -> None:
        """Until a file may be due, a change is reported, or the stream stops."""
        due = self._settler.next_due()
        timeout = None if due is None else max(0.0, due - self._clock()) + 0.005
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)

    async def _settled(self, now: float) -> list[InputItem]:
        """The files due by ``now`` whose look is still the same: as items."""
        due = self._settler.due(now)
        if not due:
            return []
        looks = await asyncio.to_thread(lambda: [(path, _look(path)) for path in due])
        taken = [path for path, look in looks if self._settler.confirm(path, look, now)]
        if not taken:
            return []
        return await asyncio.to_thread(lambda: [self._item(path) for path in taken])

    def _item(self, path: str) -> InputItem:
        found = Path(path)
        root = self.root_of(found)
        assert root is not None
        item = found_file(found, found.relative_to(root).parts, self._prefixes[root])
        item.index = self._index
        self._index += 1
        return item

    async def _listen(self) -> None:
        """What the library reports, for as long as the stream lasts."""
        from watchfiles import awatch

        try:
            async for changes in awatch(
                *self.roots,
                watch_filter=None,
                stop_event=self._stop_event,
                force_polling=self._poll,
                poll_delay_ms=POLL_MS,
                debounce=DEBOUNCE_MS,
                step=STEP_MS,
                recursive=self._recursive,
                ignore_permission_denied=True,
            ):
                now = self._clock()
                for _, path in sorted(changes, key=lambda change: change[1]):
                    self._changed(Path(path), now)
                self._wake.set()
        except Exception as exc:  # the folder went away, the OS refused a watch
            if not self._stopping:
                self._fail(one_line(exc))

    def _fail(self, why: str) -> None:
        if self.failure is None:
            self.failure = why
        self._wake.set()

    def _changed(self, path: Path, now: float) -> None:
        """``path`` was created, changed, renamed or deleted: look at it."""
        root = self.root_of(path)
        if root is None:
            return
        parts = path.relative_to(root).parts
        try:
            mode = path.stat().st_mode
        except OSError:
            self._settler.gone(str(path))
            if not parts:
                self._fail(_("the folder {root} is gone").format(root=root))
            return
        if stat.S_ISDIR(mode):
            if self._recursive and parts and not _hidden(parts):
                for found, seen in self._walk(path):
                    self._settler.seen(found, seen, now)
            return
        look = _look(str(path))
        if look is not None and self._wanted(parts):
            self._settler.seen(str(path), look, now)

    def root_of(self, path: Path) -> Path | None:
        for root in self.roots:
            if path == root or path.is_relative_to(root):
                return root
        return None

    def _wanted(self, parts: tuple[str, ...]) -> bool:
        """Whether a file at ``parts`` under its folder is an input to take."""
        if not parts or _hidden(parts) or (len(parts) > 1 and not self._recursive):
            return False
        name = parts[-1]
        if is_temporary(name) or PurePosixPath(name).suffix.lower() not in IMAGE_SUFFIXES:
            return False
        return self._patterns.refusal(PurePosixPath(*parts)) is None

    def _scan(self) -> Iterator[tuple[str, Look]]:
        for root in self.roots:
            yield from self._walk(root)

    def _walk(self, folder: Path) -> Iterator[tuple[str, Look]]:
        """The files to take under ``folder`` (its subfolders with ``recursive``), in order
        of their names; hidden folders and symlinked ones are not entered."""
        root = self.root_of(folder)
        assert root is not None
        for here, dirs, files in os.walk(folder):
            dirs[:] = sorted(d for d in dirs if not d.startswith(".")) if self._recursive else []
            for name in sorted(files):
                path = Path(here, name)
                if self._wanted(path.relative_to(root).parts):
                    look = _look(str(path))
                    if look is not None:
                        yield str(path), look


def _hidden(parts: tuple[str, ...]) -> bool:
    return any(part.startswith(".") for part in parts)


class DoneMover:
    """``--move-done``: the original of each input whose row is done (or skipped: done
    before) goes from its watched folder to ``target``, under its path in that folder;
    a name already there gets a number (``photo-1.jpg``).  A move that fails is said
    through ``notice`` and the file stays."""

    def __init__(self, watcher: Watcher, target: Path, notice: Callable[[str], None]) -> None:
        self.watcher = watcher
        self.target = target.resolve()
        self.notice = notice

    def __call__(self, row: Row) -> None:
        if not row.ok:
            return
        source = Path(row.input)
        root = self.watcher.root_of(source) if source.is_absolute() else None
        if root is None or not source.is_file():
            return
        dest = _free_name(self.target.joinpath(*source.relative_to(root).parts))
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(source, dest)
        except OSError as exc:
            self.notice(
                _("--move-done: cannot move {source}: {reason}").format(
                    source=source, reason=exc.strerror or exc
                )
            )
            return
        self.watcher.forget(str(source))


def _free_name(dest: Path) -> Path:
    """``dest``, or ``stem-N.suffix`` for the first N free."""
    number = 0
    candidate = dest
    while candidate.exists():
        number += 1
        candidate = dest.with_name(f"{dest.stem}-{number}{dest.suffix}")
    return candidate
