"""Downloading ``image_url`` the way the service does (10 s, redirects, 15 MB cap)."""

from __future__ import annotations

import asyncio

import httpx

from zuotang_cli.emulator.imaging import ImageRejected, check_size
from zuotang_cli.protocol import rules

# Loopback never goes through an environment proxy: the emulator often fetches from itself.
NO_PROXY_MOUNTS: dict[str, httpx.AsyncBaseTransport | None] = {
    "all://127.0.0.1": None,
    "all://localhost": None,
    "all://[::1]": None,
}


def make_client() -> httpx.AsyncClient:
    return httpx.AsyncClient(
        follow_redirects=True,
        mounts=NO_PROXY_MOUNTS,
        limits=httpx.Limits(max_connections=1000, max_keepalive_connections=100),
        headers={"User-Agent": "zuotang-emulator"},
    )


async def fetch_image(client: httpx.AsyncClient, url: str, *, timeout: float) -> bytes:
    """The image bytes, or :class:`ImageRejected` with state -3 (unreachable) or -5 (big)."""
    try:
        return await asyncio.wait_for(_download(client, url, timeout), timeout)
    except asyncio.TimeoutError:
        raise ImageRejected(
            -3, f"image_url download failed: timed out after {timeout:g} s"
        ) from None
    except ImageRejected:
        raise
    except Exception as exc:  # transport errors, URLs httpx refuses, bad ports: all -3
        reason = str(exc) or type(exc).__name__
        raise ImageRejected(-3, f"image_url download failed: {reason}") from None


async def _download(client: httpx.AsyncClient, url: str, timeout: float) -> bytes:
    async with client.stream("GET", url, timeout=timeout) as response:
        if not response.is_success:
            raise ImageRejected(-3, f"image_url download failed: HTTP {response.status_code}")
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit():
            check_size(int(declared))
        data = bytearray()
        async for chunk in response.aiter_bytes():
            data += chunk
            if len(data) > rules.MAX_FILE_BYTES:
                check_size(len(data))
        return bytes(data)
