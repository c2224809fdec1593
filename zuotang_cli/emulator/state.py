"""Everything one running emulator remembers between calls."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from typing import Any

import httpx
from starlette.requests import Request

from zuotang_cli.emulator.breaker import CircuitBreaker
from zuotang_cli.emulator.config import EmulatorConfig
from zuotang_cli.emulator.faults import draw_fault
from zuotang_cli.emulator.gateway import GatewayError, gateway_error
from zuotang_cli.emulator.limits import FlowControl, Quota
from zuotang_cli.emulator.results import ResultStore
from zuotang_cli.emulator.signatures import NonceMemory
from zuotang_cli.emulator.stats import Stats
from zuotang_cli.emulator.tasks import TaskStore


class EmulatorState:
    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.flow = FlowControl(config.qps)
        self.quota = Quota(config.quota)
        self.stats = Stats(billing=config.billing)
        self.results = ResultStore()
        self.tasks = TaskStore(config.link_ttl)
        self.nonces = NonceMemory()
        """The nonces of signed requests seen (the gateway refuses one seen before)."""
        self.breaker = CircuitBreaker(
            self.error("breaker"), config.breaker_seconds, retry_after=config.breaker_retry_after
        )
        self.drawn: Counter[str] = Counter()
        """Faults drawn so far, by kind (for ``fault_caps``)."""
        self.inputs_seen: set[str] = set()
        """Billing keys of the inputs called so far (for ``fail_first``)."""
        self.stopping = asyncio.Event()
        """Set when the server shuts down: pending waits end at once."""
        self._client: httpx.AsyncClient | None = None

    def error(self, name: str) -> GatewayError:
        """The gateway's error ``name`` in the configured gateway and throttle styles."""
        config = self.config
        return gateway_error(config.gateway_style, name, throttle_style=config.throttle_style)

    def draw_fault(self) -> str | None:
        """This call's fault (at most one), or None; a kind past its cap is no fault."""
        kind = draw_fault(self.config.faults, self.rng)
        if kind is None:
            return None
        cap = self.config.fault_caps.get(kind)
        if cap is not None and self.drawn[kind] >= cap:
            return None
        self.drawn[kind] += 1
        return kind

    @property
    def client(self) -> httpx.AsyncClient:
        """The client that fetches ``image_url`` (open while the app runs)."""
        if self._client is None:
            raise RuntimeError("the emulator app is not running")
        return self._client

    @client.setter
    def client(self, client: httpx.AsyncClient | None) -> None:
        self._client = client

    async def pause_until(self, deadline: float, request: Request | None = None) -> None:
        """Sleep until monotonic ``deadline``; end early on shutdown, or when the
        client of ``request`` hangs up (only pass it when nothing is to be billed)."""
        delay = deadline - time.monotonic()
        if delay <= 0:
            return
        waiters: list[asyncio.Future[Any]] = [asyncio.ensure_future(self.stopping.wait())]
        if request is not None:
            waiters.append(asyncio.ensure_future(_hang_up(request)))
        try:
            await asyncio.wait(waiters, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await waiter


async def _hang_up(request: Request) -> None:
    """Return when the client disconnects (the body has been read already)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass
