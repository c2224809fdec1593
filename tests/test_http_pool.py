"""The batch's HTTP stack (httpx on aiohttp's pool), against a small HTTP/1.1 server that
counts its connections (so reuse, and the lack of it, is seen from the server's side)."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import truststore

from zuotang_cli.engine import http_pool
from zuotang_cli.engine.http_pool import new_client

# The server must see closes, and keep-alive expiry, within fixed waits.
pytestmark = pytest.mark.timing


@dataclass
class CountingServer:
    """Answers every request with its path as the body; ``close_after`` requests on one
    connection, it closes that connection without a word (as an idle timeout does)."""

    close_after: int | None = None
    connections: int = 0
    open_now: int = 0
    requests: int = 0
    url: str = ""
    tls: ssl.SSLContext | None = None
    _server: asyncio.AbstractServer | None = field(default=None, repr=False)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open_now += 1
        served = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.requests += 1
                served += 1
                path = head.split(b" ", 2)[1]
                if path.startswith(b"/drop"):
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
                    await writer.drain()
                    break  # the reply cut short: the call reached the server
                body = path * 250_000 if path.startswith(b"/big") else path  # 1 MB
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
                await writer.drain()
                if self.close_after is not None and served >= self.close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.open_now -= 1
            writer.close()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[CountingServer]:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.tls)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"https://localhost:{port}" if self.tls else f"http://127.0.0.1:{port}"
        async with self._server:
            yield self


def run(
    scenario: Callable[[CountingServer, httpx.AsyncClient], Awaitable[None]], **server: Any
) -> CountingServer:
    async def main() -> CountingServer:
        async with CountingServer(**server).running() as srv:
            async with new_client(timeout=5, trust_env=False) as client:
                await scenario(srv, client)
            await asyncio.sleep(0.05)  # let the server see the closes
            return srv

    return asyncio.run(main())


def test_sequential_requests_share_one_connection() -> None:
    async def scenario(srv: CountingServer, client: httpx.AsyncClient) -> None:
        for n in range(20):
            response = await client.get(f"{srv.url}/r{n}")
            assert (response.status_code, response.text) == (200, f"/r{n}")

    srv = run(scenario)
    assert (srv.requests, srv.connections) == (20, 1)


def test_concurrent_requests_open_one_connection_each_and_reuse_them() -> None:
    async def scenario(srv: CountingServer, client: httpx.AsyncClient) -> None:
        for _ in range(3):
            replies = await asyncio.gather(*(client.get(f"{srv.url}/c{n}") for n in range(10)))
            assert [r.text for r in replies] == [f"/c{n}" for n in range(10)]

    srv = run(scenario)
    assert (srv.requests, srv.connections) == (30, 10)


def test_a_connection_the_server_closed_is_not_reused() -> None:
    async def scenario(srv: CountingServer, client: httpx.AsyncClient) -> None:
        for n in range(4):
            response = await client.get(f"{srv.url}/s{n}")
            assert response.text == f"/s{n}"
            await asyncio.sleep(0.05)  # the server's close arrives while it is idle

    srv = run(scenario, close_after=1)
    assert (srv.requests, srv.connections) == (4, 4)


def test_a_body_left_unread_closes_its_connection_instead_of_returning_it() -> None:
    async def scenario(srv: CountingServer, client: httpx.AsyncClient) -> None:
        async with client.stream("GET", f"{srv.url}/big") as response:
            async for _ in response.aiter_raw(16):
                break  # abandon the rest of the body
        response = await client.get(f"{srv.url}/after")
        assert response.text == "/after"

    srv = run(scenario)
    assert (srv.requests, srv.connections) == (2, 2)


def test_closing_the_client_closes_its_idle_connections() -> None:
    async def scenario(srv: CountingServer, client: httpx.AsyncClient) -> None:
        await asyncio.gather(*(client.get(f"{srv.url}/x{n}") for n in range(3)))
        assert srv.open_now == 3

    srv = run(scenario)
    assert (srv.connections, srv.open_now) == (3, 0)


def test_idle_connections_are_closed_after_the_keepalive_expiry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(http_pool, "KEEPALIVE_EXPIRY", 0.1)

    async def scenario(srv: CountingServer, client: httpx.AsyncClient) -> None:
        await asyncio.gather(*(client.get(f"{srv.url}/e{n}") for n in range(4)))
        assert srv.open_now == 4
        await asyncio.sleep(0.5)  # a quiet spell: no socket is left open for nothing
        assert srv.open_now == 0
        await client.get(f"{srv.url}/later")

    srv = run(scenario)
    assert (srv.requests, srv.connections) == (5, 5)


def test_the_trace_extension_says_when_the_request_went_out() -> None:
    """The rate gate times each call start by the first event (httpx's ``trace``
    extension); the second says the body went out (a lost reply may have been billed)."""
    events: list[str] = []

    async def trace(event: str, info: dict[str, Any]) -> None:
        events.append(event)

    async def scenario(srv: CountingServer, client: httpx.AsyncClient) -> None:
        request = client.build_request("POST", f"{srv.url}/p", content=b"x=1")
        request.extensions["trace"] = trace
        response = await client.send(request)
        assert response.text == "/p"
        await client.get(f"{srv.url}/untraced")

    run(scenario)
    assert events == [
        "http11.send_request_headers.complete",
        "http11.send_request_body.complete",
    ]


def test_errors_are_classed_for_what_they_are() -> None:
    async def scenario(srv: CountingServer, client: httpx.AsyncClient) -> None:
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            await client.get(f"{srv.url}/drop")  # not a ConnectTimeout: the call went out
        with socket.socket() as unused:
            unused.bind(("127.0.0.1", 0))
            port = unused.getsockname()[1]
        with pytest.raises(httpx.ConnectError):
            await client.get(f"http://127.0.0.1:{port}/refused")

    run(scenario)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_https_connections_are_verified_and_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real endpoint is https: certificate and host name checked, connections reused."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost"),
            *("-addext", "subjectAltName=DNS:localhost"),
        ],
        check=True,
        capture_output=True,
    )
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # trusted besides the OS store
    http_pool.ssl_context.cache_clear()

    async def scenario(srv: CountingServer, client: httpx.AsyncClient) -> None:
        for n in range(5):
            assert (await client.get(f"{srv.url}/t{n}")).text == f"/t{n}"
        wrong_name = srv.url.replace("localhost", "127.0.0.1")
        with pytest.raises(httpx.ConnectError, match=r"CERTIFICATE_VERIFY_FAILED|IP address"):
            await client.get(f"{wrong_name}/t")

    srv = run(scenario, tls=server_tls)
    # the refused one never got past the handshake, so the server never served it
    assert (srv.requests, srv.connections) == (5, 1)


def test_the_os_trust_store_is_used() -> None:
    http_pool.ssl_context.cache_clear()
    context = http_pool.ssl_context()
    assert isinstance(context, truststore.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


def test_a_proxy_from_the_environment_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    """HTTP_PROXY routes the request through the proxy (here the counting server, which
    echoes the absolute URL a proxy is sent)."""

    async def main() -> tuple[CountingServer, str]:
        async with CountingServer().running() as srv:
            monkeypatch.setenv("HTTP_PROXY", srv.url)
            monkeypatch.setenv("NO_PROXY", "")
            async with new_client(timeout=5) as client:
                text = (await client.get("http://example.invalid/via-proxy")).text
            return srv, text

    srv, text = asyncio.run(main())
    assert text == "http://example.invalid/via-proxy"
    assert srv.requests == 1


def test_a_given_transport_is_used_as_it_is() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(204))
    client = new_client(transport)
    assert asyncio.run(client.get("https://example.test/")).status_code == 204
