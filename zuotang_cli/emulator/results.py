"""Result links: what was made, until when it may be downloaded, and the download route."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import deque
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from zuotang_cli.emulator.imaging import Rendered
from zuotang_cli.emulator.replies import CutShortResponse, storage_error
from zuotang_cli.emulator.stats import Stats


@dataclass
class StoredResult:
    ext: str
    content_type: str
    expires_at: float
    """Monotonic time from which the link answers 403."""
    data: bytes | None
    """Dropped once the link has expired."""
    truncate_next: bool = False
    refused: bool = False
    """Every download is refused (403, not as expired): a proxy in front of the store."""


class ResultStore:
    """Results by token; an expired result keeps only its tombstone (for the 403)."""

    def __init__(self) -> None:
        self._results: dict[str, StoredResult] = {}
        self._expiry_order: deque[tuple[float, str]] = deque()
        self.flowing = asyncio.Event()
        """Cleared: every download waits (a held object store, for tests)."""
        self.flowing.set()

    def add(
        self, result: Rendered, *, ttl: float, truncate: bool = False, refuse: bool = False
    ) -> str:
        """Store ``result`` for ``ttl`` seconds (0: expired at once); return its file name."""
        now = time.monotonic()
        self._purge(now)
        token = uuid.uuid4().hex
        expires_at = now + ttl
        data = result.data if ttl > 0 else None
        self._results[token] = StoredResult(
            result.ext, result.content_type, expires_at, data, truncate, refuse
        )
        self._expiry_order.append((expires_at, token))
        return f"{token}.{result.ext}"

    def get(self, name: str) -> StoredResult | None:
        token, _, ext = name.partition(".")
        stored = self._results.get(token)
        return stored if stored is not None and stored.ext == ext else None

    def expire_all(self) -> int:
        """Expire every result now (as an hour passing would); how many were alive."""
        now = time.monotonic()
        alive = 0
        for stored in self._results.values():
            alive += stored.expires_at > now
            stored.expires_at = min(stored.expires_at, now)
            stored.data = None
        self._expiry_order.clear()
        return alive

    def _purge(self, now: float) -> None:
        while self._expiry_order and self._expiry_order[0][0] <= now:
            _, token = self._expiry_order.popleft()
            self._results[token].data = None


async def download(
    request: Request, store: ResultStore, stats: Stats, latency: float = 0.0
) -> Response:
    """``GET /results/<token>.<ext>``, answered ``latency`` seconds after it arrived."""
    stats.download_attempts += 1
    stats.download_arrivals.append(time.monotonic())
    if latency:
        await asyncio.sleep(latency)
    await store.flowing.wait()
    stored = store.get(request.path_params["name"])
    if stored is None:
        return storage_error(404, "NoSuchKey", "The specified key does not exist.")
    if stored.refused:
        return PlainTextResponse("403 Forbidden", status_code=403)
    if time.monotonic() >= stored.expires_at or stored.data is None:
        return storage_error(403, "AccessDenied", "Request has expired")
    if stored.truncate_next:
        stored.truncate_next = False
        return CutShortResponse(stored.data, media_type=stored.content_type)
    stats.downloads += 1
    return Response(stored.data, media_type=stored.content_type)
