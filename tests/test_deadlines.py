"""Deadlines against a server that trickles: a call ends within --timeout from its first
byte sent to its last byte received; a download must keep a minimum rate over a window
and end within a total cap, so a slow but moving result survives and a trickle does not.

The server is a raw socket server of the tests (tests/reliability/support.py), not the
emulator: it sends one byte at a time on purpose, which no real gateway does.
"""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path, PurePosixPath

import httpx
import pytest
from PIL import Image

from tests.reliability.support import Conn, Received, hostile_server
from zuotang_cli.engine.http_pool import new_client
from zuotang_cli.models import ErrorClass, InputItem, InputKind
from zuotang_cli.protocol import api, preflight
from zuotang_cli.protocol.api import CallSpec, Verdict
from zuotang_cli.store.download import Downloader, DownloadFailed

# Every test here bounds how long a trickle or a stall may last.
pytestmark = pytest.mark.timing

BODY = json.dumps({"status": 200, "data": {"state": 1, "image": "http://x/r.png"}}).encode()


def noise_png(size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.effect_noise(size, 80).convert("RGB").save(buffer, "PNG", compress_level=0)
    return buffer.getvalue()


def trickle(
    data: bytes, every: float, piece: int = 1
) -> Callable[[Received, Conn], Awaitable[None]]:
    """A 200 with an honest Content-Length whose body comes ``piece`` bytes at a time."""

    async def handle(request: Received, conn: Conn) -> None:
        await conn.head(200, {"Content-Type": "image/png"}, content_length=len(data))
        for start in range(0, len(data), piece):
            await conn.send(data[start : start + piece])
            await asyncio.sleep(every)

    return handle


def url_item() -> InputItem:
    return InputItem(0, "http://img.test/a.png", InputKind.URL, url="http://img.test/a.png")


@pytest.mark.parametrize("stack", ["aiohttp", "httpx"])
def test_a_call_whose_reply_trickles_ends_at_its_total_deadline(stack: str) -> None:
    """A byte every 0.2 s never trips the 1 s read timeout; the 1 s total deadline does,
    and the call counts as possibly paid (it had gone out whole)."""
    with hostile_server(trickle(BODY, every=0.2)) as server:
        spec = CallSpec(f"{server.url}/tasks/visual/scale", "code", "clean", None)

        async def main() -> tuple[api.Reply, float]:
            timeout = httpx.Timeout(1.0)
            client = (
                new_client(timeout=timeout)
                if stack == "aiohttp"
                else httpx.AsyncClient(timeout=timeout)
            )
            async with client:
                started = time.monotonic()
                reply = await api.call_once(client, spec, url_item())
                return reply, time.monotonic() - started

        reply, elapsed = asyncio.run(main())
    assert (reply.verdict, reply.error_class) == (Verdict.RETRY, ErrorClass.TIMEOUT)
    assert "within --timeout 1 s" in reply.message
    assert reply.lost_after_sending  # possibly billed
    assert elapsed < 5  # the whole body would take len(BODY) * 0.2 = 13 s


def test_an_explicit_deadline_wins_over_the_read_timeout() -> None:
    with hostile_server(trickle(BODY, every=0.1)) as server:
        spec = CallSpec(f"{server.url}/tasks/visual/scale", "code", "clean", None)

        async def main() -> api.Reply:
            async with new_client(timeout=httpx.Timeout(30.0)) as client:
                return await api.call_once(client, spec, url_item(), deadline=0.5)

        reply = asyncio.run(main())
    assert reply.error_class is ErrorClass.TIMEOUT and "0.5 s" in reply.message


def save(url: str, tmp_path: Path, **limits: float) -> tuple[Path | DownloadFailed, float]:
    async def main() -> Path:
        async with new_client(timeout=httpx.Timeout(10.0)) as client:
            downloader = Downloader(client, tmp_path, attempts=1, **limits)
            saved = await downloader.save(
                url_item(),
                url,
                asyncio.get_running_loop().time() + 600,
                lambda shape: PurePosixPath(f"r.{shape.ext}"),
            )
            return saved.path

    started = time.monotonic()
    try:
        outcome: Path | DownloadFailed = asyncio.run(main())
    except DownloadFailed as exc:
        outcome = exc
    return outcome, time.monotonic() - started


def test_a_trickling_download_is_dropped_after_one_window(tmp_path: Path) -> None:
    data = noise_png((64, 64))
    with hostile_server(trickle(data, every=0.05)) as server:  # 20 bytes a second
        outcome, elapsed = save(f"{server.url}/r.png", tmp_path, rate_window=1.0, min_rate=1024)
    assert isinstance(outcome, DownloadFailed), outcome
    assert outcome.error_class == "download-too-slow" and outcome.retryable
    assert "in the last 1 s" in str(outcome)
    assert elapsed < 5  # the whole file would take minutes
    assert not list((tmp_path / ".zuotang" / "tmp").glob("*.part"))


def test_a_slow_but_moving_download_of_a_large_result_survives(tmp_path: Path) -> None:
    """16 KiB every 0.1 s (160 KiB/s) for about 2 s: over every 0.5 s window well above
    the 8 KiB/s floor, though the whole takes four windows."""
    data = noise_png((200, 200))  # about 120 KB, stored uncompressed
    assert len(data) > 100_000
    with hostile_server(trickle(data, every=0.1, piece=16 * 1024)) as server:
        outcome, _ = save(f"{server.url}/r.png", tmp_path, rate_window=0.5, min_rate=8 * 1024)
    assert isinstance(outcome, Path), outcome
    assert outcome.read_bytes() == data


def test_a_download_that_moves_for_too_long_hits_the_total_cap(tmp_path: Path) -> None:
    data = noise_png((200, 200))
    with hostile_server(trickle(data, every=0.1, piece=4 * 1024)) as server:  # ~3 s in all
        outcome, elapsed = save(
            f"{server.url}/r.png", tmp_path, rate_window=0.5, min_rate=1024, max_seconds=1.0
        )
    assert isinstance(outcome, DownloadFailed), outcome
    assert outcome.error_class == "download-too-long" and not outcome.retryable
    assert elapsed < 2.9


def test_a_probe_of_a_trickling_host_tells_nothing_within_the_timeout() -> None:
    with hostile_server(trickle(noise_png((300, 300)), every=0.1)) as server:

        async def main() -> object:
            async with new_client(timeout=httpx.Timeout(1.0)) as client:
                return await preflight.probe_url(client, f"{server.url}/a.png")

        started = time.monotonic()
        assert asyncio.run(main()) is None  # the call is then made as usual
        assert time.monotonic() - started < 4


def test_a_meter_tells_a_stall_from_a_pause() -> None:
    from zuotang_cli.store.download import TransferMeter

    meter = TransferMeter(min_rate=100, window=10, max_seconds=1000, now=0)
    meter.add(2000, 1)
    assert meter.failure(9) is None  # within the first window
    assert meter.failure(10.5) is None  # 2000 bytes in the last 10 s: enough
    meter.add(10, 12)
    failure = meter.failure(11.5 + 10)
    assert failure is not None and failure.error_class == "download-too-slow"
    assert TransferMeter(1, 10, 5, now=0).failure(5) is not None  # the cap
