"""HTTP clients for the batch: httpx's API on aiohttp's connection pool, public APIs only.

httpx's own pool (httpcore) walks every connection it holds on every request and every
response close, so its cost per request grows with the connections open; at 100 QPS with
calls of 1-3 s over 200 are.  ``make bench`` part 6 runs a call and its download per image
on each stack alone: at QPS 100 httpx's pool (its ``httpx.Limits`` sized to the batch)
took 25 ms of CPU an image and fell behind its schedule, httpx on the ``httpx-aiohttp``
transport 3.9 ms (README, Performance).  So the batch's clients are ``httpx.AsyncClient``
on :class:`AiohttpStack`; proxies from the environment are still routed by httpx's own
transport (on its pool, sized the same), and tests pass an ``httpx.MockTransport``.

Certificates: the OS trust store (``truststore``, as pip does), plus ``SSL_CERT_FILE`` /
``SSL_CERT_DIR`` when set.
"""

from __future__ import annotations

import contextvars
import functools
import os
import ssl
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from types import SimpleNamespace
from typing import Any

import aiohttp
import httpx
import truststore
from httpx_aiohttp import AiohttpTransport

KEEPALIVE_EXPIRY = 5.0
"""Seconds an idle connection is kept (as httpx's default)."""
DEFAULT_CONNECTIONS = 100
"""Connections a client opens at most when the caller does not size it."""

Trace = Callable[[str, dict[str, Any]], Awaitable[None]]
_trace: contextvars.ContextVar[Trace | None] = contextvars.ContextVar("zuotang_trace")

# aiohttp's errors as httpx's, most specific first (httpx-aiohttp maps every connection
# error to ConnectTimeout, which would say a dropped reply never reached the server).
_ERRORS: tuple[tuple[type[BaseException], type[httpx.TransportError]], ...] = (
    (aiohttp.ConnectionTimeoutError, httpx.ConnectTimeout),
    (aiohttp.SocketTimeoutError, httpx.ReadTimeout),
    (aiohttp.ServerTimeoutError, httpx.ReadTimeout),
    (aiohttp.ClientConnectorError, httpx.ConnectError),
    (aiohttp.ServerDisconnectedError, httpx.RemoteProtocolError),
    (aiohttp.ClientPayloadError, httpx.ReadError),
    (aiohttp.ClientOSError, httpx.ReadError),
    (aiohttp.InvalidURL, httpx.UnsupportedProtocol),  # file:, javascript: (a redirect)
    (aiohttp.ClientResponseError, httpx.RemoteProtocolError),  # a reply that does not parse
    (aiohttp.ClientError, httpx.ReadError),
)
MAX_HEADER_LINE = 65536
"""Longest status or header line read (h11's limit, as httpx's own transport; aiohttp's
default is 8,190 bytes)."""


class AiohttpStack(httpx.AsyncBaseTransport):
    """``httpx_aiohttp.AiohttpTransport`` on one aiohttp session of ``connections``
    connections at most, keeping two things httpx's own transport gives: the ``trace``
    request extension's "request headers sent" event (the rate gate times call starts by
    it) and "body sent" event (a reply lost after it may have been billed), and precise
    error classes."""

    def __init__(self, ssl_context: ssl.SSLContext, connections: int) -> None:
        self.connections = connections
        tracing = aiohttp.TraceConfig()
        tracing.on_request_headers_sent.append(_headers_sent)
        tracing.on_request_chunk_sent.append(_body_sent)

        def session() -> aiohttp.ClientSession:  # made on first use, inside the loop
            connector = aiohttp.TCPConnector(
                limit=connections, keepalive_timeout=KEEPALIVE_EXPIRY, ssl=ssl_context
            )
            return aiohttp.ClientSession(
                connector=connector,
                trace_configs=[tracing],
                max_line_size=MAX_HEADER_LINE,
                max_field_size=MAX_HEADER_LINE,
            )

        self._inner = AiohttpTransport(verify=ssl_context, trust_env=False, client=session)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        token = _trace.set(request.extensions.get("trace"))
        try:
            response = await self._inner.handle_async_request(request)
        except (httpx.TransportError, aiohttp.ClientError) as exc:
            raise _precise(exc, request) from exc
        finally:
            _trace.reset(token)
        assert isinstance(response.stream, httpx.AsyncByteStream)
        return httpx.Response(
            status_code=response.status_code,
            headers=response.headers,
            stream=_Body(response.stream, request),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._inner.aclose()


async def _headers_sent(
    session: aiohttp.ClientSession, context: SimpleNamespace, params: Any
) -> None:
    trace = _trace.get(None)
    if trace is not None:
        await trace("http11.send_request_headers.complete", {})


async def _body_sent(session: aiohttp.ClientSession, context: SimpleNamespace, params: Any) -> None:
    """Body bytes went out (the whole body, for anything but a large upload): from now
    on a lost reply may have been billed."""
    trace = _trace.get(None)
    if trace is not None:
        await trace("http11.send_request_body.complete", {})


class _Body(httpx.AsyncByteStream):
    """A reply body whose read errors are httpx's, as precise as at the request."""

    def __init__(self, stream: httpx.AsyncByteStream, request: httpx.Request) -> None:
        self._stream, self._request = stream, request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._stream:
                yield chunk
        except (httpx.TransportError, aiohttp.ClientError) as exc:
            raise _precise(exc, self._request) from exc

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        except (httpx.TransportError, aiohttp.ClientError) as exc:
            raise _precise(exc, self._request) from exc


def _precise(exc: Exception, request: httpx.Request) -> httpx.TransportError:
    """The httpx error for an aiohttp one, whether httpx-aiohttp mapped it or not."""
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.ProxyError):
        return exc  # httpx-aiohttp's own mapping is right for these
    cause = exc.__cause__ if isinstance(exc, httpx.TransportError) else exc
    for aiohttp_type, httpx_type in _ERRORS:
        if isinstance(cause, aiohttp_type):
            text = cause.message if isinstance(cause, aiohttp.ClientResponseError) else str(exc)
            return httpx_type(text or type(cause).__name__, request=request)
    if isinstance(exc, httpx.TransportError):
        return exc
    return httpx.ReadError(str(exc) or type(exc).__name__, request=request)


def new_client(
    transport: httpx.AsyncBaseTransport | None = None,
    *,
    connections: int | None = None,
    **options: Any,
) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` on :class:`AiohttpStack` of ``connections`` connections,
    unless a transport is given (tests).  When the environment sets a proxy, httpx's own
    transport (which alone honours it), with the same certificates and size."""
    context = ssl_context()
    connections = connections or DEFAULT_CONNECTIONS
    if transport is None and options.get("trust_env", True) and proxies_configured():
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        return httpx.AsyncClient(verify=context, limits=limits, **options)
    if transport is None:
        transport = AiohttpStack(context, connections)
    return httpx.AsyncClient(transport=transport, verify=context, **options)


def proxies_configured() -> bool:
    """HTTP(S)_PROXY or ALL_PROXY is set: httpx's own transport must route the requests
    (httpx honours the environment's proxies only on its own transport)."""
    proxies = urllib.request.getproxies()
    return any(proxies.get(scheme) for scheme in ("http", "https", "all"))


@functools.cache
def ssl_context() -> ssl.SSLContext:
    """The OS trust store, and ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` if set; one for every
    client (loading certificates takes tens of milliseconds)."""
    context = truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    cafile, capath = os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR")
    if cafile or capath:
        context.load_verify_locations(cafile=cafile or None, capath=capath or None)
    return context
