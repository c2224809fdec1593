"""Saving the results a batch paid for: each downloaded in a slot of the backlog before
its link dies, checked, renamed into place under a name the journal reserves; a dead or
refused link booked for what it costs (docs/architecture.md, "Money")."""

from __future__ import annotations

import asyncio
import os
from pathlib import PurePosixPath

from zuotang_cli.engine.backlog import Backlog
from zuotang_cli.engine.rows import (
    CALLS_LATER,
    CALLS_LATER_MASKED,
    DOWNLOADS_LATER,
    PAID_NOT_SAVED,
    loop_deadline,
)
from zuotang_cli.engine.shared import Shared
from zuotang_cli.engine.state import CLOCK_SKEW, REFUSED_LINKS_HALT, Work
from zuotang_cli.models import ErrorClass, Outcome, Record
from zuotang_cli.protocol import preflight
from zuotang_cli.protocol.api import Reply, Verdict
from zuotang_cli.status import ExitStatus
from zuotang_cli.store import finishing, naming
from zuotang_cli.store.download import DISK_ERROR, Downloader, DownloadFailed, Shape


class Saver:
    """The results of one batch (see the module); :attr:`downloader` and :attr:`backlog`
    are set when the batch starts running."""

    def __init__(self, shared: Shared) -> None:
        self.shared = shared
        self.journal = shared.journal
        self.result = shared.result
        self.downloader: Downloader
        self.backlog: Backlog
        self._refused_in_a_row = 0
        """Result links refused in a row although they had not expired."""

    async def save(
        self, work: Work, record: Record, image: str, link_dies: float, note: str
    ) -> bool:
        """Download and save the result ``image`` whose link dies at ``link_dies`` (wall
        time); False, with the row's error, when it could not be saved."""
        deadline = loop_deadline(link_dies)
        source = await self._source(work)
        try:
            async with self.backlog.slot(deadline):
                saved = await self.downloader.save(
                    work.item,
                    image,
                    deadline,
                    lambda shape: self._claim(work, record, shape),
                    source,
                )
        except DownloadFailed as exc:
            # the message may quote the server's link: mask the AppCode should it echo it
            message = self.shared.spec.secrets.mask(str(exc))
            record.error_class, record.message = exc.error_class, message
            if exc.error_class in (ErrorClass.LINK_EXPIRED, ErrorClass.LINK_REFUSED):
                alive = asyncio.get_running_loop().time() < deadline - CLOCK_SKEW
                fresh = exc.refused and alive
                self._dead_link(work, record, exc, fresh=fresh)
                return False
            record.message = f"{PAID_NOT_SAVED}: {message}; {self._next_run(work, image, exc)}"
            if exc.error_class == DISK_ERROR:
                self.shared.halt_on_disk_error(message)
            return False
        self._refused_in_a_row = 0
        self.backlog.finished(saved.size)
        record.outcome = Outcome.DONE
        record.error_class = None
        record.message = note or record.message
        for note in (*saved.notes, work.name_note):
            if note:
                record.message = f"{record.message}; {note}" if record.message else note
        record.output = str(saved.path)
        record.result_bytes, record.width, record.height = saved.size, saved.width, saved.height
        record.factor = measured_factor(record, saved.width, saved.height)
        self.journal.saved(work.key, record, saved.path, saved.sha256)
        return True

    def _dead_link(self, work: Work, record: Record, exc: DownloadFailed, *, fresh: bool) -> None:
        """A result link that does not work.  Its host saying it has expired (or our clock)
        means a paid result not yet saved is lost: booked so, and calling again for it is a
        paid retry.  A link refused although it should live (a proxy, a firewall) keeps the
        paid result for a later run; fresh links refused again and again mean no result can
        be fetched from here, so the run halts rather than pay on."""
        if fresh and not work.delivered:  # what would be paid for again
            self._refused_in_a_row += 1
            if self._refused_in_a_row >= REFUSED_LINKS_HALT:
                message = (
                    f"{self._refused_in_a_row} result links in a row were refused by their "
                    f"host although they had not expired (last: {record.message})"
                )
                self.shared.halt(
                    Reply(
                        Verdict.HALT,
                        ErrorClass.LINK_REFUSED,
                        message=message,
                        halt_status=ExitStatus.TROUBLE,
                    )
                )
            if exc.error_class == ErrorClass.LINK_REFUSED:
                record.message = f"{PAID_NOT_SAVED}: {record.message}; {DOWNLOADS_LATER}"
                return
        record.error_class = ErrorClass.LINK_EXPIRED
        self.lose_result(work)

    def lose_result(self, work: Work) -> None:
        """A paid result that cannot be had from its link any more: booked once as a paid
        call without a result, so calling again for it is a paid retry."""
        self.journal.link_dead(work.key)
        if work.delivered:
            return  # a saved result's link: nothing was lost
        self.result.expired_links += 1
        self.result.paid_failures += 1
        if work.paid_failures_left is not None:
            work.paid_failures_left -= 1

    def _next_run(self, work: Work, image: str, exc: DownloadFailed) -> str:
        """What a re-run does about a paid result this run could not save: download it
        while its link lives, unless the link itself can never give it (not an http(s)
        link nor base64, a redirect to file:, too large) or was stored masked (it held
        the AppCode); then the link is given up and a re-run calls again."""
        if exc.error_class == DISK_ERROR or (
            exc.retryable and not self.shared.spec.secrets.found_in(image)
        ):
            return DOWNLOADS_LATER
        self.lose_result(work)
        if self.shared.spec.secrets.found_in(image):
            return CALLS_LATER_MASKED
        return CALLS_LATER

    async def _source(self, work: Work) -> finishing.Metadata | None:
        """The source's metadata, for finishing its result: from the header ``--probe``
        read, else from the file's first bytes, else from one ranged GET of a URL's header
        (never a second full download); None when it cannot be had."""
        head = work.source_head
        item = work.item
        if head is None and item.path is not None:
            head = await asyncio.to_thread(_read_head, item.path)
        elif head is None and item.url is not None and not self.shared.config.dry_run:
            try:
                head = await preflight.fetch_head(self.downloader.client, item.url)
            except Exception:  # its metadata never costs the paid result
                head = None
        return finishing.read_metadata(head) if head else None

    def _claim(self, work: Work, record: Record, shape: Shape) -> PurePosixPath:
        """Reserve the result's name in the journal; another input's name is never taken,
        nor a file zuotang did not write."""
        config = self.shared.config
        factor = measured_factor(record, shape.width, shape.height)
        fields = naming.Fields(
            type=config.spec.type,
            scale=str(config.spec.scale or "auto"),
            factor=f"{factor:g}" if factor else "",
        )
        wanted = config.naming.relpath(work.item, shape.ext, fields)
        relpath, why = self.journal.names.reserve(
            work.key, wanted, lambda rel: naming.occupied(config.output_dir, rel), keep=True
        )
        if why:
            work.name_note = f"named {relpath}: {why}"
        return relpath


def measured_factor(record: Record, width: int, height: int) -> float | None:
    """The factor measured from the result: its long side over the source's (right
    whether or not the service turned the source upright)."""
    if not record.input_width or not record.input_height:
        return None
    return round(max(width, height) / max(record.input_width, record.input_height), 2)


def _read_head(path: os.PathLike[str]) -> bytes | None:
    try:
        with open(path, "rb") as fh:  # noqa: PTH123
            return fh.read(finishing.HEAD_BYTES)
    except OSError:
        return None
