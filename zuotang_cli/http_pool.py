"""HTTP clients whose keep-alive pool costs the same at 2 and at 3,000 connections.

httpcore's ``AsyncConnectionPool`` walks every connection it holds on every request and on
every response close, and one of its checks inside that walk is itself a walk, so the cost
per request grows with the square of the idle connections.  At 100 QPS with calls of 1-3 s,
over 200 connections are open.  ``make bench`` (part 6) runs a bare httpx client doing
2,000 calls and their downloads at QPS 100 against the emulator: on httpx's own pool it
used 40 ms of CPU an image and fell far behind (85 s for a 20 s schedule); on
:class:`KeepAlivePool`, 2.6 ms.

:class:`KeepAlivePool` keeps httpcore's connections (TLS, timeouts, HTTP/1.1) and replaces
only the bookkeeping: idle connections wait on a stack per origin, a request takes the
most recently used one that is still good, and a closed response puts its connection back.
The batch's own semaphores bound the requests in flight, so the pool needs no limit and
no queue of its own.
"""

from __future__ import annotations

import functools
import ssl
import time
import urllib.request
from collections.abc import AsyncIterable, AsyncIterator
from types import TracebackType
from typing import Any

import httpcore
import httpx

KEEPALIVE_EXPIRY = 5.0
"""Seconds an idle connection is kept (as httpx's default)."""
SWEEP_INTERVAL = 1.0
"""Seconds between looks for expired idle connections."""
MAX_IDLE_PER_ORIGIN = 1024
"""Idle connections kept per origin; more are closed when they come back."""

_Key = tuple[bytes, bytes, int]


class KeepAlivePool:
    """What ``httpx.AsyncHTTPTransport`` needs of its pool, in O(1) per request."""

    def __init__(self, ssl_context: ssl.SSLContext, keepalive_expiry: float | None = None) -> None:
        self._ssl_context = ssl_context
        self._keepalive_expiry = KEEPALIVE_EXPIRY if keepalive_expiry is None else keepalive_expiry
        self._idle: dict[_Key, list[httpcore.AsyncHTTPConnection]] = {}
        self._closed = False
        self._next_sweep = 0.0

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        scheme = request.url.scheme
        if scheme not in (b"http", b"https"):
            raise httpcore.UnsupportedProtocol(
                f"Request URL has an unsupported protocol '{scheme.decode()}://'."
            )
        origin = request.url.origin
        key = (origin.scheme, origin.host, origin.port)
        while True:
            connection = await self._take(key, origin)
            try:
                response = await connection.handle_async_request(request)
            except httpcore.ConnectionNotAvailable:
                continue  # it went bad between the check and the send: take another
            # On any other error httpcore has already closed the connection if it cannot
            # be reused; it is simply not put back.
            return httpcore.Response(
                status=response.status,
                headers=response.headers,
                content=_Released(response, connection, self, key),
                extensions=response.extensions,
            )

    async def _take(self, key: _Key, origin: httpcore.Origin) -> httpcore.AsyncHTTPConnection:
        idle = self._idle.get(key)
        while idle:
            connection = idle.pop()
            if connection.is_idle() and not connection.has_expired():
                return connection
            await connection.aclose()
        return httpcore.AsyncHTTPConnection(
            origin=origin,
            ssl_context=self._ssl_context,
            keepalive_expiry=self._keepalive_expiry,
        )

    async def _put_back(self, key: _Key, connection: httpcore.AsyncHTTPConnection) -> None:
        idle = self._idle.setdefault(key, [])
        if self._closed or not connection.is_idle() or len(idle) >= MAX_IDLE_PER_ORIGIN:
            await connection.aclose()
            return
        idle.append(connection)
        now = time.monotonic()
        if now >= self._next_sweep:
            self._next_sweep = now + SWEEP_INTERVAL
            await self._sweep(idle)

    @staticmethod
    async def _sweep(idle: list[httpcore.AsyncHTTPConnection]) -> None:
        """Close the idle connections that have expired: the oldest are at the bottom, so
        a quiet spell does not leave sockets open that the server has long closed."""
        while len(idle) > 1 and idle[0].has_expired():
            await idle.pop(0).aclose()

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, {}
        for connections in idle.values():
            for connection in connections:
                await connection.aclose()

    async def __aenter__(self) -> KeepAlivePool:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc: BaseException | None = None,
        tb: TracebackType | None = None,
    ) -> None:
        await self.aclose()


class _Released:
    """A response body that puts its connection back in the pool once closed."""

    def __init__(
        self,
        response: httpcore.Response,
        connection: httpcore.AsyncHTTPConnection,
        pool: KeepAlivePool,
        key: _Key,
    ) -> None:
        self._response, self._connection, self._pool, self._key = response, connection, pool, key

    async def __aiter__(self) -> AsyncIterator[bytes]:
        assert isinstance(self._response.stream, AsyncIterable)
        async for part in self._response.stream:
            yield part

    async def aclose(self) -> None:
        try:
            await self._response.aclose()
        finally:
            await self._pool._put_back(self._key, self._connection)


def proxies_configured() -> bool:
    """HTTP(S)_PROXY or ALL_PROXY is set: httpx's own transport must route the requests."""
    proxies = urllib.request.getproxies()
    return any(proxies.get(scheme) for scheme in ("http", "https", "all"))


def new_client(
    transport: httpx.AsyncBaseTransport | None = None, **options: Any
) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` on a :class:`KeepAlivePool`, unless a transport is given
    (tests) or a proxy is configured (httpx's own transport then honours it)."""
    if transport is None and not proxies_configured():
        context = _ssl_context()
        transport = httpx.AsyncHTTPTransport(verify=context)
        # httpx's transport maps requests, responses and errors; only its pool is swapped.
        transport._pool = KeepAlivePool(context)  # type: ignore[assignment]
    return httpx.AsyncClient(transport=transport, **options)


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """One for every client: loading the certificate store takes tens of milliseconds."""
    return httpx.create_ssl_context()
