"""HTTP clients for the calls: a few pools used in turn, not one big one.

httpcore's connection pool does work proportional to its connections on every request
and every response (it walks them all to assign requests and to expire idle ones).  At
100 QPS with calls of 1-3 s, over 200 connections are open, and that walk alone held the
client under 60 calls a second (measured with py-spy: half of the client's CPU).  Several
smaller pools keep each walk short; they share one SSL context, so the certificate store
is loaded once.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from types import TracebackType
from typing import Any

import httpx

CONNECTIONS_PER_SHARD = 128
MAX_SHARDS = 16


class ClientPool:
    def __init__(self, connections: int, **client_options: Any) -> None:
        shards = max(1, min(MAX_SHARDS, math.ceil(connections / CONNECTIONS_PER_SHARD)))
        per_shard = math.ceil(connections / shards)
        limits = httpx.Limits(max_connections=per_shard, max_keepalive_connections=per_shard)
        ssl_context = httpx.create_ssl_context()
        self.clients = [
            httpx.AsyncClient(limits=limits, verify=ssl_context, **client_options)
            for _ in range(shards)
        ]
        self._turns: Iterator[httpx.AsyncClient] = itertools.cycle(self.clients)

    def next(self) -> httpx.AsyncClient:
        """The client for the next call (each in turn)."""
        return next(self._turns)

    async def aclose(self) -> None:
        for client in self.clients:
            await client.aclose()

    async def __aenter__(self) -> ClientPool:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
