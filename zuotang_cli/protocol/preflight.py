"""Checks before any paid call: format, size and resolution, read from the image header.

The service refuses (state -5 / -7) what is over 15 MB, not jpg/png/bmp/webp/tiff, animated,
or has a long side outside [10, 4096]; checking first costs nothing and saves a call.
Pillow's ``Image.open`` reads only the header, so even a huge file is cheap to check.
"""

from __future__ import annotations

import dataclasses
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from zuotang_cli.i18n import ngettext
from zuotang_cli.protocol import rules

if TYPE_CHECKING:
    import httpx

HEAD_BYTES = 64 * 1024
"""How much of a remote image ``--probe`` reads to find its header."""
HEAD_TIMEOUT = 10.0
"""Seconds :func:`fetch_head` waits for a source's header after the call: the service
fetches ``image_url`` with a 10 s timeout, so a host slower than that has nothing to
give (its result is saved without the source's metadata)."""


@dataclass(frozen=True)
class ImageInfo:
    format: str
    width: int
    height: int
    size: int | None
    """File size in bytes, when known."""
    animated: bool = False
    head: bytes = dataclasses.field(default=b"", repr=False, compare=False)
    """The first bytes read (a remote image's header: its metadata too)."""

    @property
    def long_side(self) -> int:
        return max(self.width, self.height)


def problem(info: ImageInfo) -> str | None:
    """Why the service would refuse this image, or None."""
    if info.format not in rules.SUPPORTED_FORMATS:
        return f"{info.format} is not supported (jpg, png, bmp, webp, tiff only)"
    if info.animated:
        return "animated images are not supported"
    if info.size is not None and info.size > rules.MAX_FILE_BYTES:
        return f"file is {info.size / 1024 / 1024:.1f} MB, over the 15 MB limit"
    if info.long_side > rules.MAX_LONG_SIDE:
        return f"long side is {info.long_side} px, over the {rules.MAX_LONG_SIDE} px limit"
    if info.long_side < rules.MIN_LONG_SIDE:
        return f"long side is {info.long_side} px, under the {rules.MIN_LONG_SIDE} px minimum"
    return None


def inspect_file(path: Path) -> ImageInfo:
    """The header of a local image; ValueError (with the reason) if Pillow cannot read it."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            return _info(img, path.stat().st_size)
    except (UnidentifiedImageError, Image.DecompressionBombError, SyntaxError) as exc:
        raise ValueError(f"not a readable image: {exc}") from exc
    except OSError as exc:
        raise ValueError(f"cannot read: {exc.strerror or exc}") from exc


def inspect_head(head: bytes, size: int | None) -> ImageInfo | None:
    """The header of an image from its first bytes, or None if they do not tell."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(head)) as img:
            return _info(img, size)
    except (UnidentifiedImageError, Image.DecompressionBombError, SyntaxError, OSError):
        return None


def _info(img: object, size: int | None) -> ImageInfo:
    from PIL import Image

    assert isinstance(img, Image.Image)
    width, height = img.size
    animated = bool(getattr(img, "is_animated", False))
    return ImageInfo(str(img.format), width, height, size, animated)


_CONTENT_RANGE_TOTAL = re.compile(r"/(\d+)\s*$")


@dataclass(frozen=True)
class Refusal:
    """What ``--probe`` proved the service would refuse: no call is made for it."""

    reason: str


_HOST_TRANSIENT = (408, 425, 429)
"""4xx answers of an image host that may change on their own: not proof of anything."""


async def probe_url(client: httpx.AsyncClient, url: str) -> ImageInfo | Refusal | None:
    """``--probe``: the header of a remote image from a ranged GET of its first 64 KiB;
    a :class:`Refusal` when that proves the service would refuse it (the host answers
    4xx, or the whole body was read and is not an image); None when the host does not
    tell (the call is then made as usual), within the client's read timeout in all (a
    host trickling its bytes tells nothing)."""
    import asyncio

    probe = asyncio.ensure_future(_probe(client, url))
    try:
        await asyncio.wait({probe}, timeout=client.timeout.read)
    except asyncio.CancelledError:
        probe.cancel()
        raise
    if not probe.cancel():  # it ended in time
        return probe.result()
    await asyncio.wait({probe}, timeout=1.0)  # let it close the connection
    return None


async def fetch_head(client: httpx.AsyncClient, url: str) -> bytes | None:
    """The first :data:`HEAD_BYTES` of a remote image, by the same ranged GET as
    ``--probe`` (its metadata, when ``--probe`` did not read it), within
    :data:`HEAD_TIMEOUT`; None when the host does not give them."""
    import asyncio

    probe = asyncio.ensure_future(_probe(client, url))
    try:
        await asyncio.wait({probe}, timeout=min(HEAD_TIMEOUT, client.timeout.read or HEAD_TIMEOUT))
    except asyncio.CancelledError:
        probe.cancel()
        raise
    if probe.cancel():
        await asyncio.wait({probe}, timeout=1.0)
        return None
    info = probe.result()
    return (info.head or None) if isinstance(info, ImageInfo) else None


async def _probe(client: httpx.AsyncClient, url: str) -> ImageInfo | Refusal | None:
    import httpx

    headers = {"Range": f"bytes=0-{HEAD_BYTES - 1}"}
    try:
        async with client.stream("GET", url, headers=headers) as response:
            status = response.status_code
            if 400 <= status < 500 and status not in _HOST_TRANSIENT:
                return Refusal(f"the image host answered HTTP {status} (checked by --probe)")
            if status not in (200, 206):
                return None
            head, whole = b"", True
            async for chunk in response.aiter_bytes():
                head += chunk
                if len(head) >= HEAD_BYTES:
                    whole = False
                    break
            size = _total_size(response)
    except (httpx.HTTPError, ValueError):  # ValueError: httpx refuses the URL (credentials)
        return None
    info = inspect_head(head, size)
    if info is not None:
        return dataclasses.replace(info, head=head)
    if whole and (size is None or size == len(head)):
        kind = response.headers.get("Content-Type", "unknown type")
        return Refusal(f"not an image: {len(head)} bytes of {kind} (read whole by --probe)")
    return info


def _total_size(response: httpx.Response) -> int | None:
    if response.status_code == 206:
        match = _CONTENT_RANGE_TOTAL.search(response.headers.get("Content-Range", ""))
        return int(match.group(1)) if match else None
    length = response.headers.get("Content-Length", "")
    return int(length) if length.isdigit() else None


def scale_note(requested: int | None, skipped: int) -> str:
    """The once-per-batch warning when a requested --scale did not apply to some images."""
    lo, hi = rules.REQUESTED_SCALE_RANGES[requested or 1]
    return ngettext(
        "--scale {factor} does not apply to {n} image: the service applies x{factor} only "
        "to a long side of {low}-{high} px (they stay x1)",
        "--scale {factor} does not apply to {n} images: the service applies x{factor} only "
        "to a long side of {low}-{high} px (they stay x1)",
        skipped,
    ).format(factor=requested, n=skipped, low=lo, high=hi)


def uncertain_note(count: int) -> str:
    """The once-per-batch note for images whose factor the documents disagree on."""
    return ngettext(
        "{n} image has a long side of 501-512 or 1001-1024 px, where the marketplace's "
        "document and the vendor's disagree on the factor (x4 or x2, x2 or x1): the "
        "report's factor column is measured from the result",
        "{n} images have a long side of 501-512 or 1001-1024 px, where the marketplace's "
        "document and the vendor's disagree on the factor (x4 or x2, x2 or x1): the "
        "report's factor column is measured from the result",
        count,
    ).format(n=count)
