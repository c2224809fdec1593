"""Local files sent through the user's own bucket (``--upload-to``): part of the batch, not
a step before it (docs/uploads.md).

A file is uploaded just in time, by the job of its input, right before its first call
and outside the rate gate, at most ``upload_concurrency`` at once; every attempt sends a
freshly signed link (signing is local, so a retry an hour later still sends a live one).
The journal books each object before its upload starts and once it is stored, so a re-run
sends the link of what is there instead of uploading it again, and a kill -9 leaves no
object the next run does not know of.  An object is deleted once its input is saved or
has failed for good; at the end of the run every booked object no input of this run still
needs is deleted too (what a killed run left), unless ``--keep-uploads``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable

from zuotang_cli import reasons
from zuotang_cli.engine.bucket import Bucket, Target, object_name, open_bucket
from zuotang_cli.engine.state import BatchConfig, BatchResult, Work
from zuotang_cli.errors import ZuotangError, one_line
from zuotang_cli.i18n import ngettext
from zuotang_cli.models import Outcome, Record
from zuotang_cli.store.journal import Journal, Status, is_final_failure

HOW_TO_SEND = reasons.HOW_TO_SEND_FILES
NO_BUCKET = reasons.NO_BUCKET.format(how=HOW_TO_SEND)


class UploadFailed(Exception):
    """An upload that did not happen: retried within the input's retries, unless
    ``final`` (the bucket itself is wrong: no retry can help); a re-run tries again."""

    def __init__(self, message: str, *, final: bool = False) -> None:
        super().__init__(message)
        self.final = final


class Uploads:
    """The uploads of one batch (see the module); does nothing without a bucket."""

    def __init__(
        self,
        config: BatchConfig,
        journal: Journal,
        result: BatchResult,
        notice: Callable[[str], None] | None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config
        self.book = journal.uploads
        self.journal = journal
        self.result = result
        self.notice = notice
        self.log = log
        """``-v``: one line an upload and a delete, naming the object ``s3://bucket/key``
        (never its link)."""
        self.bucket: Bucket | None = None
        self._slots = asyncio.Semaphore(config.upload_concurrency)
        self._locks: dict[str, asyncio.Lock] = {}
        self._needed: set[str] = set()
        """Objects an input of this run left to a re-run (kept by the sweep)."""
        self._seen: set[str] = set()
        """Objects uploaded, or found in the bucket, by this run."""
        self._failed_deletes = 0
        self._checked: str | None = None
        """The bucket's check: None not yet, "" passed, else its one line of trouble."""
        self._checking = asyncio.Lock()

    @property
    def target(self) -> Target | None:
        return self.config.upload_to

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """The bucket for the run: checked before any call, swept at the end."""
        if self.target is None:
            yield
            return
        async with open_bucket(self.target, self.config.upload_endpoint) as bucket:
            if self.config.check_bucket_first:
                await bucket.check()
                self._checked = ""
            self.bucket = bucket
            try:
                yield
            finally:
                with contextlib.suppress(Exception):  # nothing of it may cost a row
                    await self.sweep()
                self.bucket = None

    async def link(self, work: Work) -> str:
        """A fresh presigned link to the input's file, uploaded first unless the bucket
        holds it (booked in the journal as alive).  Raises :class:`UploadFailed`."""
        bucket, item = self.bucket, work.item
        if bucket is None or item.path is None:
            raise UploadFailed(NO_BUCKET, final=True)
        await self._check(bucket)
        key = bucket.target.key(object_name(_digest(work.key), item.path.suffix))
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            if key not in self._seen and not await self._reusable(bucket, key):
                await self._put(bucket, key, work)
            self._seen.add(key)
        try:
            return await bucket.link(key)
        except Exception as exc:
            where = bucket.target.shown(key)
            raise UploadFailed(f"cannot sign a link to {where}: {one_line(exc)}") from None

    async def _check(self, bucket: Bucket) -> None:
        """The bucket checked once, before its first upload when not at the start."""
        async with self._checking:
            if self._checked is None:
                try:
                    await bucket.check()
                    self._checked = ""
                except ZuotangError as exc:
                    self._checked = str(exc)
        if self._checked:
            raise UploadFailed(self._checked, final=True)

    async def _reusable(self, bucket: Bucket, key: str) -> bool:
        """Whether an earlier run's object can be sent as it is: booked as stored, not too
        old, and still in the bucket (a call on a link to nothing would be paid: -3)."""
        booked = self.book.get(key)
        if booked is None or not booked.reusable(time.time()):
            return False
        try:
            return await bucket.holds(key)
        except Exception:
            return False  # uploaded again: the surest way

    async def _put(self, bucket: Bucket, key: str, work: Work) -> None:
        assert work.item.path is not None
        async with self._slots:
            self.book.putting(key)  # before the first byte: a kill leaves it known
            try:
                size = await bucket.put(key, work.item.path)
            except OSError as exc:
                raise UploadFailed(f"cannot read: {exc.strerror or exc}") from None
            except Exception as exc:
                problem = bucket.explain(exc)
                raise UploadFailed(
                    reasons.UPLOAD_FAILED.format(object=bucket.target.shown(key), problem=problem)
                ) from None
        self.book.stored(key, size, time.time())
        self.result.uploads += 1
        self.result.upload_bytes += size
        if self.log is not None:
            self.log(f"s3: PUT {bucket.target.shown(key)} ({size} bytes)")

    async def finished(self, work: Work, record: Record) -> None:
        """The input's row is final: delete its object unless a re-run needs it (a
        failure another call may fix, with no paid result waiting for a download)."""
        bucket, item = self.bucket, work.item
        if bucket is None or item.path is None:
            return
        key = bucket.target.key(object_name(_digest(work.key), item.path.suffix))
        if self.book.get(key) is None:
            return
        if self._still_needed(work, record):
            self._needed.add(key)
            return
        if not self.config.keep_uploads:
            await self._delete(bucket, key)

    def _still_needed(self, work: Work, record: Record) -> bool:
        if record.outcome in (Outcome.DONE, Outcome.SKIPPED, Outcome.INVALID):
            return False
        if is_final_failure(record.error_class):
            return False
        entry = self.journal.get(work.key)
        return entry is None or entry.status not in (Status.PAID, Status.PENDING, Status.SAVED)

    async def sweep(self) -> None:
        """Delete every booked object no input of this run left to a re-run (one that
        failed for a reason another call may fix, or was interrupted): what an earlier,
        killed run put there, and what no longer has an input that needs it."""
        bucket = self.bucket
        if bucket is None or self.config.keep_uploads:
            return
        for key in self.book.objects():
            if key not in self._needed:
                await self._delete(bucket, key)
        if self._failed_deletes and self.notice is not None:
            self.notice(
                ngettext(
                    "{n} object could not be deleted from {where}: the next run tries again "
                    "(a lifecycle rule on the prefix is the safety net)",
                    "{n} objects could not be deleted from {where}: the next run tries again "
                    "(a lifecycle rule on the prefix is the safety net)",
                    self._failed_deletes,
                ).format(n=self._failed_deletes, where=bucket.target)
            )

    async def _delete(self, bucket: Bucket, key: str) -> None:
        try:
            await bucket.delete(key)
        except Exception:
            self._failed_deletes += 1
            return
        self.book.removed(key)
        self._seen.discard(key)  # the same photo again (a hot folder): uploaded again
        self.result.uploads_removed += 1
        if self.log is not None:
            self.log(f"s3: DELETE {bucket.target.shown(key)}")


def _digest(key: str) -> str:
    """The SHA-256 of a local input, from its journal key (``type\\0scale\\0sha256:...``)."""
    last = key.rsplit("\0", 1)[-1]
    return last.removeprefix("sha256:")
