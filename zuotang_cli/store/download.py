"""Fetching a paid result and saving it safely (docs/architecture.md, "Money").

A result is streamed to a temporary ``.part`` file inside the output directory, checked to
be a real image with Pillow, flushed to disk, and only then renamed to its final name, so a
final name never holds half a file.  The link is valid for an hour: transient failures are
retried with backoff while it lives; 403 means it has expired.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import contextlib
import errno
import hashlib
import os
import random
import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO

import httpx

from zuotang_cli.errors import one_line
from zuotang_cli.models import ErrorClass, InputItem
from zuotang_cli.store import finishing, naming
from zuotang_cli.store.layout import Layout

MAX_RESULT_BYTES = 100 * 1024 * 1024
"""A result larger than this is refused (4096 x 4096 PNG is well under it)."""
DISK_ERROR = ErrorClass.DISK_ERROR
"""The disk cannot take the result: full, over quota, read-only, not permitted, or a file
where a folder must be.  The run halts on it (retrying cannot help, paying more is waste)."""
TOO_MANY_OPEN_FILES = ErrorClass.TOO_MANY_OPEN_FILES
OS_ERROR = ErrorClass.OS_ERROR
DISK_ERRNOS = frozenset(
    getattr(errno, name)
    for name in (
        "ENOSPC", "EDQUOT", "EFBIG",  # out of space, over quota, over the file size limit
        "EROFS",  # read-only
        "EACCES", "EPERM",  # not permitted
        "ENOTDIR", "EISDIR", "EEXIST",  # a file where a folder must be, or the reverse
    )
    if hasattr(errno, name)
)  # fmt: skip
_FD_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE})


def os_error_class(exc: OSError) -> ErrorClass:
    """What a local OSError is: DISK_ERROR only for the disk's own refusals (above);
    EMFILE/ENFILE are TOO_MANY_OPEN_FILES; anything else (EPIPE, EIO, ...) OS_ERROR."""
    if exc.errno in DISK_ERRNOS:
        return DISK_ERROR
    if exc.errno in _FD_ERRNOS:
        return TOO_MANY_OPEN_FILES
    return OS_ERROR


@dataclass(frozen=True)
class Shape:
    """What a finished result is: its extension (its real format), width and height."""

    ext: str
    width: int
    height: int


Namer = Callable[[Shape], PurePosixPath]
"""Given what the result is, the name it may have (reserved in the journal)."""
_DATA_URL = re.compile(r"^data:[\w/+.-]*;base64,", re.IGNORECASE)


@dataclass(frozen=True)
class Saved:
    path: Path
    relpath: PurePosixPath
    size: int
    width: int
    height: int
    format: str
    sha256: str
    notes: tuple[str, ...] = ()
    """What finishing did (metadata carried over, converted, turned upright)."""


class DownloadFailed(Exception):
    """Internal: why a result could not be saved (becomes the record's error)."""

    def __init__(
        self, error_class: ErrorClass, message: str, *, retryable: bool, refused: bool = False
    ) -> None:
        super().__init__(message)
        self.error_class = error_class
        self.retryable = retryable
        self.refused = refused
        """The link's host refused it (not our clock, not a transfer that failed)."""


DOWNLOAD_MIN_RATE = 8 * 1024
"""Bytes a second a download must move, on average over :data:`DOWNLOAD_RATE_WINDOW`:
slower than a 64 kbit/s line is not a slow network but a host trickling on purpose or
stuck.  A result of 20 MB moving at 100 KB/s (a poor mobile link) passes with room."""
DOWNLOAD_RATE_WINDOW = 30.0
"""Seconds over which the rate is measured (or ``--timeout``, when shorter): long enough
for a TCP stall and its recovery, short enough that a trickle is dropped within a
minute, its link still fresh for another try."""
DOWNLOAD_MAX_SECONDS = 30 * 60.0
"""The longest one download attempt may take, moving or not: the largest result allowed
(:data:`MAX_RESULT_BYTES`) at 60 KB/s.  A result link lives an hour; one attempt must
leave time for another."""


class TransferMeter:
    """Bytes received over time, to tell a slow but moving download from a trickle."""

    def __init__(self, min_rate: float, window: float, max_seconds: float, now: float) -> None:
        self.min_rate, self.window, self.max_seconds = min_rate, window, max_seconds
        self.started = now
        self.total = 0
        self._samples: collections.deque[tuple[float, int]] = collections.deque([(now, 0)])
        self._resolution = window / 64

    def add(self, size: int, now: float) -> None:
        self.total += size
        if now - self._samples[-1][0] >= self._resolution:
            self._samples.append((now, self.total))
        else:  # the same moment: no new sample
            self._samples[-1] = (self._samples[-1][0], self.total)

    @property
    def period(self) -> float:
        """How often to look."""
        return self.window / 4

    def failure(self, now: float) -> DownloadFailed | None:
        """Why the download must stop now, if it must."""
        elapsed = now - self.started
        if elapsed >= self.max_seconds:
            return DownloadFailed(
                ErrorClass.DOWNLOAD_TOO_LONG,
                f"download not finished after {elapsed:.0f} s (at most {self.max_seconds:g} s;"
                f" {self.total} bytes received)",
                retryable=False,
            )
        if elapsed < self.window:
            return None
        since = now - self.window
        while len(self._samples) > 1 and self._samples[1][0] <= since:
            self._samples.popleft()
        moved = self.total - self._samples[0][1]
        if moved >= self.min_rate * self.window:
            return None
        return DownloadFailed(
            ErrorClass.DOWNLOAD_TOO_SLOW,
            f"download moved {moved} bytes in the last {self.window:g} s (at least "
            f"{self.min_rate * self.window:.0f} needed: {self.min_rate / 1024:g} KiB/s)",
            retryable=True,
        )


@dataclass
class Downloader:
    client: httpx.AsyncClient
    output_dir: Path
    attempts: int = 5
    backoff: float = 0.5
    min_rate: float = DOWNLOAD_MIN_RATE
    rate_window: float = DOWNLOAD_RATE_WINDOW
    max_seconds: float = DOWNLOAD_MAX_SECONDS
    finish: finishing.Finish = field(default_factory=finishing.Finish)
    """How a result is finished before it is placed (docs/results.md)."""

    def tmp_path(self) -> Path:
        tmp_dir = Layout(self.output_dir).downloads
        with _disk_errors(tmp_dir):
            tmp_dir.mkdir(parents=True, exist_ok=True)
        return tmp_dir / f"{uuid.uuid4().hex}.part"

    async def save(
        self,
        item: InputItem,
        image: str,
        deadline: float,
        name: Namer,
        source: finishing.Metadata | None = None,
    ) -> Saved:
        """Save the result ``image`` (URL or base64) of ``item``; raise DownloadFailed.

        ``name`` gives the name the result may have (the journal reserves it), once its
        real format is known; ``source``: the source's metadata, for finishing.
        """
        if image.startswith(("http://", "https://")):
            return await self._save_url(item, image, deadline, name, source)
        return await self._save_base64(item, image, name, source)

    async def _finish(
        self, tmp: Path, checksum: str, name: Namer, source: finishing.Metadata | None
    ) -> Saved:
        """Check the downloaded ``tmp``, finish it, reserve its name, rename it into place."""
        checked = await asyncio.to_thread(_check, tmp)
        checked, checksum, notes = await asyncio.to_thread(
            _finish_file, tmp, checked, checksum, source, self.finish
        )
        shape = Shape(naming.extension_for_format(checked.format), checked.width, checked.height)
        relpath = name(shape)
        try:
            dest = naming.safe_join(self.output_dir, relpath)
        except naming.UnsafePathError as exc:
            raise DownloadFailed(ErrorClass.UNSAFE_PATH, str(exc), retryable=False) from exc
        await asyncio.to_thread(_place, tmp, dest)
        return Saved(
            dest,
            relpath,
            checked.size,
            checked.width,
            checked.height,
            checked.format,
            checksum,
            notes,
        )

    async def _save_url(
        self,
        item: InputItem,
        url: str,
        deadline: float,
        name: Namer,
        source: finishing.Metadata | None,
    ) -> Saved:
        loop = asyncio.get_running_loop()
        for attempt in range(1, self.attempts + 1):
            tmp = self.tmp_path()
            try:
                checksum = await self._fetch(url, tmp)
                return await self._finish(tmp, checksum, name, source)
            except DownloadFailed as exc:
                _unlink(tmp)
                delay = random.uniform(0, self.backoff * 2**attempt)
                if not exc.retryable or attempt == self.attempts:
                    raise
                if loop.time() + delay >= deadline:
                    raise DownloadFailed(
                        ErrorClass.LINK_EXPIRED,
                        f"result link expired while retrying: {exc}",
                        retryable=False,
                    ) from exc
                await asyncio.sleep(delay)
            except BaseException:
                _unlink(tmp)
                raise
        raise AssertionError("unreachable")

    async def _fetch(self, url: str, tmp: Path) -> str:
        """Stream ``url`` into ``tmp``; the SHA-256 of what was written.  It must move
        ``min_rate`` bytes a second over every ``rate_window`` and end within
        ``max_seconds``: httpx's timeout bounds each read alone, so a host sending a byte
        every few seconds would otherwise hold the download (and its input) for ever."""
        loop = asyncio.get_running_loop()
        meter = TransferMeter(self.min_rate, self.rate_window, self.max_seconds, loop.time())
        fetch = asyncio.ensure_future(self._stream(url, tmp, meter))
        try:
            while not fetch.done():
                await asyncio.wait({fetch}, timeout=meter.period)
                failure = None if fetch.done() else meter.failure(loop.time())
                if failure is not None:
                    fetch.cancel()
                    await asyncio.wait({fetch}, timeout=1.0)  # let it close the connection
                    if fetch.done() and not fetch.cancelled():
                        fetch.exception()  # ended on its own meanwhile: its error is moot
                    raise failure
        except asyncio.CancelledError:
            fetch.cancel()
            raise
        return fetch.result()

    async def _stream(self, url: str, tmp: Path, meter: TransferMeter) -> str:
        loop = asyncio.get_running_loop()
        digest = hashlib.sha256()
        try:
            async with self.client.stream("GET", url) as response:
                if response.status_code != 200:
                    raise _http_failure(response.status_code, await _reason_of(response))
                declared = int(response.headers.get("Content-Length") or 0)
                if declared > MAX_RESULT_BYTES:
                    raise _too_large()
                size = 0
                with _disk_errors(tmp), tmp.open("wb") as fh:
                    async for chunk in response.aiter_bytes():
                        size += len(chunk)
                        if size > MAX_RESULT_BYTES:
                            raise _too_large()
                        fh.write(chunk)
                        digest.update(chunk)
                        meter.add(len(chunk), loop.time())
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            raise DownloadFailed(
                ErrorClass.BAD_RESULT_URL, f"result URL refused: {exc}", retryable=False
            ) from exc
        except httpx.HTTPError as exc:
            kind = (
                ErrorClass.DOWNLOAD_TIMEOUT
                if isinstance(exc, httpx.TimeoutException)
                else ErrorClass.DOWNLOAD_NETWORK
            )
            raise DownloadFailed(kind, f"download failed: {one_line(exc)}", retryable=True) from exc
        return digest.hexdigest()

    async def _save_base64(
        self, item: InputItem, image: str, name: Namer, source: finishing.Metadata | None
    ) -> Saved:
        data = _DATA_URL.sub("", image.strip(), count=1)
        try:
            raw = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise DownloadFailed(
                ErrorClass.BAD_REPLY,
                "image is neither an http(s) URL nor base64 data",
                retryable=False,
            ) from exc
        if len(raw) > MAX_RESULT_BYTES:
            raise _too_large()
        tmp = self.tmp_path()
        try:
            with _disk_errors(tmp):
                await asyncio.to_thread(tmp.write_bytes, raw)
            checksum = hashlib.sha256(raw).hexdigest()
            return await self._finish(tmp, checksum, name, source)
        finally:
            _unlink(tmp)


REASON_BYTES = 4096
"""How much of a refusal's body is read for its reason."""
_XML_MESSAGE = re.compile(rb"<Message>([^<]{0,200})</Message>")


async def _reason_of(response: httpx.Response) -> str:
    """The host's own words for a refusal: an object store's ``<Message>``, else the start
    of the body, on one line."""
    body = b""
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) >= REASON_BYTES:
            break
    found = _XML_MESSAGE.search(body)
    text = (found.group(1) if found else body[:120]).decode("utf-8", "replace")
    return " ".join(text.split())


def _http_failure(status: int, reason: str = "") -> DownloadFailed:
    """A result link answered ``status``.  Gone (404, 410) or refused as expired by its
    host (the object store says "Request has expired"): the result is lost.  Refused for
    another reason (401, 403: a proxy, a firewall, a wrong clock) it may still be fetched
    from elsewhere or later, while its link lives."""
    said = f"HTTP {status}" + (f": {reason}" if reason else "")
    if status in (404, 410) or (status in (401, 403) and "expired" in reason.lower()):
        message = f"result link expired or gone ({said})"
        return DownloadFailed(ErrorClass.LINK_EXPIRED, message, retryable=False, refused=True)
    if status in (401, 403):
        message = f"result link refused ({said})"
        return DownloadFailed(ErrorClass.LINK_REFUSED, message, retryable=False, refused=True)
    return DownloadFailed(ErrorClass.DOWNLOAD_HTTP, f"download got {said}", retryable=True)


def _too_large() -> DownloadFailed:
    limit = MAX_RESULT_BYTES // (1024 * 1024)
    return DownloadFailed(
        ErrorClass.RESULT_TOO_LARGE, f"result larger than {limit} MiB", retryable=False
    )


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


_WHOLE_ENDS = {"PNG": b"IEND\xaeB`\x82", "JPEG": b"\xff\xd9"}
"""How a whole file of the format ends: PNG's IEND chunk, JPEG's end-of-image marker."""


def inspect_image(fh: BinaryIO) -> tuple[str, int, int]:
    """Format, width and height of the image in ``fh`` (a file open for reading); raises
    (Pillow's errors) when it is not one, or is cut short.

    Decoding every pixel proves the most, at a price: 240 ms of CPU for a 4096 x 4096 PNG
    result, 130 ms for the same as JPEG, more than two cores at 20 QPS.  So a PNG that ends
    with its IEND chunk has every chunk's checksum checked instead (a twentieth of the
    cost), a JPEG that ends with its end-of-image marker is taken on its header, and
    everything else, those two included when they end otherwise, is decoded.
    """
    from PIL import Image

    with Image.open(fh) as img:
        fmt, (width, height) = str(img.format), img.size
        end = _WHOLE_ENDS.get(fmt)
        if end is not None and _ends_with(fh, end):
            if fmt == "PNG":
                img.verify()
            return fmt, width, height
    fh.seek(0)
    with Image.open(fh) as img:
        img.load()
    return fmt, width, height


def _ends_with(fh: BinaryIO, end: bytes) -> bool:
    size = fh.seek(0, os.SEEK_END)
    fh.seek(max(0, size - len(end)))
    return fh.read() == end


@dataclass(frozen=True)
class _Checked:
    format: str
    width: int
    height: int
    size: int


def _check(tmp: Path) -> _Checked:
    """Check ``tmp`` is a whole image and fsync it; the file is opened once for the check,
    the fsync and its size."""
    from PIL import Image, UnidentifiedImageError

    try:
        fh = tmp.open("r+b")  # writable: Windows refuses to fsync a read-only handle
    except OSError as exc:
        raise _not_an_image(exc, tmp) from exc
    with fh:
        try:
            fmt, width, height = inspect_image(fh)
        except (
            UnidentifiedImageError,
            OSError,
            SyntaxError,
            ValueError,
            Image.DecompressionBombError,
        ) as exc:
            raise _not_an_image(exc, tmp, fh) from exc
        with _disk_errors(tmp):
            os.fsync(fh.fileno())
            size = os.fstat(fh.fileno()).st_size
    return _Checked(fmt, width, height, size)


def _finish_file(
    tmp: Path,
    checked: _Checked,
    checksum: str,
    source: finishing.Metadata | None,
    how: finishing.Finish,
) -> tuple[_Checked, str, tuple[str, ...]]:
    """``tmp`` (a checked result) finished in place (docs/results.md): what it is now, its
    SHA-256 and what was done.  A result finishing cannot handle stays as it came (a note
    says so): a paid result is never lost to its metadata."""
    data = tmp.read_bytes()
    try:
        finished = finishing.finish(data, source, how)
    except Exception as exc:
        return checked, checksum, (f"kept as it came (finishing failed: {one_line(exc)})",)
    if finished.data is data:
        return checked, checksum, finished.notes
    with _disk_errors(tmp), tmp.open("wb") as fh:
        fh.write(finished.data)
        fh.flush()
        os.fsync(fh.fileno())
    fmt = finishing.pillow_format(finished.ext)
    checked = _Checked(fmt, finished.width, finished.height, len(finished.data))
    return checked, hashlib.sha256(finished.data).hexdigest(), finished.notes


def _place(tmp: Path, dest: Path) -> None:
    with _disk_errors(dest):
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp.replace(dest)


def _not_an_image(exc: Exception, tmp: Path, fh: BinaryIO | None = None) -> DownloadFailed:
    """The failure, in Pillow's words without the temporary file's name."""
    reason = str(exc)
    for name in (repr(fh) if fh is not None else "", repr(str(tmp)), str(tmp)):
        reason = reason.replace(name, "") if name else reason
    message = f"result is not a complete image ({reason.strip()})"
    return DownloadFailed(ErrorClass.NOT_AN_IMAGE, message, retryable=True)


@contextlib.contextmanager
def _disk_errors(path: Path) -> Iterator[None]:
    """A local write that fails: a disk error (full, read-only, a file where a folder
    should be) is final; out of file descriptors and other OS errors may pass."""
    try:
        yield
    except OSError as exc:
        error_class = os_error_class(exc)
        raise DownloadFailed(
            error_class,
            f"cannot write {path}: {exc.strerror or exc}",
            retryable=error_class != DISK_ERROR,
        ) from exc


def place_bytes(data: bytes, dest: Path, tmp: Path) -> None:
    """Write ``data`` under ``dest`` whole: to a temporary file, synced, then renamed."""
    try:
        with tmp.open("wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        _place(tmp, dest)
    finally:
        _unlink(tmp)


def copy_result(source: Path, dest: Path, tmp: Path) -> None:
    """Copy a saved result to another name, through a temporary file and a rename."""
    try:
        shutil.copyfile(source, tmp)
        _place(tmp, dest)
    finally:
        _unlink(tmp)


def file_checksum(path: Path) -> str:
    """SHA-256 of a file, read in 1 MiB pieces."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
