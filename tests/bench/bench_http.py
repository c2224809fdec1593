"""What the HTTP stack alone costs: a call and its download per image, and nothing else.

``python -m tests.bench.bench_http STACK BASE_URL APPCODE N QPS`` starts N calls at QPS
(even spacing), downloads each result into memory, and prints one JSON line with the
process's CPU seconds.  Run once per stack, each in its own process (so one's imports and
garbage do not count in another's), against the same emulator:

* ``httpx-pool``: httpx on its own connection pool, its ``httpx.Limits`` sized to the
  batch as ``zuotang enhance`` sizes them (calls in flight plus downloads);
* ``httpx-aiohttp``: httpx on the ``httpx-aiohttp`` transport (aiohttp's connector), the
  fast transport the OpenAI and Anthropic SDKs offer, with the same limits;
* ``asyncio-sockets``: hand-written HTTP/1.1 on bare asyncio sockets, keep-alive, no
  checks at all: the floor under any HTTP library on this event loop.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import urllib.parse
from collections.abc import Awaitable, Callable

import httpx

from tests.bench.bench_procs import SCALE_PATH
from zuotang_cli.engine.batch import default_concurrency, default_download_concurrency

STACKS = ("httpx-pool", "httpx-aiohttp", "asyncio-sockets")

OneImage = Callable[[int], Awaitable[int]]


def form(base: str, n: int) -> str:
    return urllib.parse.urlencode({"image_url": f"{base}/files/i{n}.png", "type": "clean"})


def httpx_client(client: httpx.AsyncClient, base: str, appcode: str) -> OneImage:
    headers = {
        "Authorization": f"APPCODE {appcode}",
        "Content-Type": "application/x-www-form-urlencoded; charset=UTF-8",
    }

    async def one(n: int) -> int:
        reply = await client.post(base + SCALE_PATH, headers=headers, content=form(base, n))
        async with client.stream("GET", reply.json()["data"]["image"]) as result:
            return len(await result.aread())

    return one


class _Exchange(asyncio.Protocol):
    """One keep-alive connection; replies must carry Content-Length (the emulator's do)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.reply: asyncio.Future[bytes] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        head_end = self.buffer.find(b"\r\n\r\n")
        if head_end < 0 or self.reply is None:
            return
        head = self.buffer[:head_end].lower()
        start = head.index(b"content-length:") + len(b"content-length:")
        length = int(head[start:].split(b"\r\n", 1)[0])
        if len(self.buffer) >= head_end + 4 + length:
            body = self.buffer[head_end + 4 : head_end + 4 + length]
            self.buffer = self.buffer[head_end + 4 + length :]
            self.reply.set_result(body)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.reply is not None and not self.reply.done():
            self.reply.set_exception(ConnectionError("closed"))


def socket_client(base: str, appcode: str) -> OneImage:
    parts = urllib.parse.urlsplit(base)
    host, port = parts.hostname, parts.port
    assert host is not None and port is not None
    idle: list[_Exchange] = []

    async def exchange(request: bytes) -> bytes:
        loop = asyncio.get_running_loop()
        while idle and (idle[-1].transport is None or idle[-1].transport.is_closing()):
            idle.pop()
        conn = idle.pop() if idle else (await loop.create_connection(_Exchange, host, port))[1]
        conn.reply = loop.create_future()
        assert conn.transport is not None
        conn.transport.write(request)
        body = await conn.reply
        idle.append(conn)
        return body

    async def one(n: int) -> int:
        body = form(base, n).encode()
        reply = await exchange(
            b"POST %s HTTP/1.1\r\nHost: %s\r\nAuthorization: APPCODE %s\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%s"
            % (SCALE_PATH.encode(), host.encode(), appcode.encode(), len(body), body)
        )
        path = urllib.parse.urlsplit(json.loads(reply)["data"]["image"]).path
        result = await exchange(
            b"GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (path.encode(), host.encode())
        )
        return len(result)

    return one


def cpu_seconds() -> float:
    """This process's CPU time, user and system (``resource`` where it exists)."""
    try:
        import resource
    except ImportError:
        times = os.times()
        return times.user + times.system
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def stack_client(stack: str, qps: float) -> httpx.AsyncClient | None:
    connections = default_concurrency(qps) + default_download_concurrency(qps)
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    if stack == "httpx-pool":
        return httpx.AsyncClient(limits=limits, timeout=60, trust_env=False)
    if stack == "httpx-aiohttp":
        from httpx_aiohttp import AiohttpTransport

        transport = AiohttpTransport(limits=limits, trust_env=False)
        return httpx.AsyncClient(transport=transport, timeout=60, trust_env=False)
    return None


async def run(stack: str, base: str, appcode: str, n: int, qps: float) -> dict[str, float]:
    client = stack_client(stack, qps)
    one = socket_client(base, appcode) if client is None else httpx_client(client, base, appcode)
    start, tasks = time.monotonic(), []
    for i in range(n):
        await asyncio.sleep(max(0.0, start + i / qps - time.monotonic()))
        tasks.append(asyncio.create_task(one(i)))
    sizes = await asyncio.gather(*tasks)
    if client is not None:
        await client.aclose()
    cpu = cpu_seconds()
    return {"ok": sum(size > 0 for size in sizes), "cpu_s": cpu, "wall_s": time.monotonic() - start}


if __name__ == "__main__":
    stack, base, appcode, n, qps = sys.argv[1:6]
    print(json.dumps(asyncio.run(run(stack, base, appcode, int(n), float(qps)))))
