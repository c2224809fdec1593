"""The gateway's circuit breaker: once open, it refuses every backend call for a while."""

from __future__ import annotations

import dataclasses
import math

from zuotang_cli.emulator.gateway import GatewayError


class CircuitBreaker:
    """Opened by a ``breaker`` fault; while open, scale calls and polls get its 503.

    Alibaba's breaker stays open ``seconds`` (90 s by default) and then lets calls through
    again. The gateway is not documented to send ``Retry-After``; ``retry_after`` adds it.
    """

    def __init__(self, error: GatewayError, seconds: float, *, retry_after: bool) -> None:
        self.error = error
        self.seconds = seconds
        self.retry_after = retry_after
        self.open_until = -math.inf

    def open(self, now: float) -> GatewayError:
        """Open at monotonic ``now``; return the reply of the call that opened it."""
        self.open_until = now + self.seconds
        return self.refusal(now) or self.error

    def refusal(self, now: float) -> GatewayError | None:
        """The 503 to answer at ``now``, or None when the breaker is closed."""
        left = self.open_until - now
        if left <= 0:
            return None
        if not self.retry_after:
            return self.error
        return dataclasses.replace(self.error, retry_after=max(math.ceil(left), 1))
