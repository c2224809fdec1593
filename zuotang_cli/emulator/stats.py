"""Counters the emulator exposes at ``/__emulator__/stats`` so tests can prove behaviour."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Stats:
    calls: int = 0
    """POSTs to the scale path received."""
    by_status: Counter[int] = field(default_factory=Counter)
    by_state: Counter[int] = field(default_factory=Counter)
    throttled: int = 0
    """Calls refused by flow control (injected ``429`` faults are counted in ``faults``)."""
    faults: Counter[str] = field(default_factory=Counter)
    billing: str = "every-200"
    """The billing rule in force (``EmulatorConfig.billing``)."""
    billed: int = 0
    billed_by_input: Counter[str] = field(default_factory=Counter)
    billed_failures: int = 0
    """Billed calls whose state was not 1 (an async task's: counted when it ends)."""
    polls: int = 0
    """GETs of the task path received (refused ones included)."""
    sync_requested: int = 0
    """POSTs whose body carried ``sync=1``."""
    breaker_refused: int = 0
    """Scale calls and polls answered by the open circuit breaker (the opening one too)."""
    downloads: int = 0
    """Result GETs served in full."""
    download_attempts: int = 0
    download_arrivals: list[float] = field(default_factory=list)
    """Monotonic arrival times of the result GETs (the clock of ``arrivals``)."""
    arrivals: list[float] = field(default_factory=list)
    """Monotonic arrival times of the scale calls (and, when they count for QPS, the
    polls) that passed auth."""
    accepted_arrivals: list[float] = field(default_factory=list)
    """The same, of those that passed flow control."""
    in_flight: int = 0
    max_in_flight: int = 0
    signed: int = 0
    """Requests whose AppKey signature was verified."""
    signature_refused: Counter[str] = field(default_factory=Counter)
    """Signed requests refused, by the gateway's reason (``Invalid Signature``...)."""

    def call_started(self) -> None:
        self.calls += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def call_finished(self) -> None:
        self.in_flight -= 1

    def bill(self, key: str, *, failure: bool = False) -> None:
        self.billed += 1
        self.billed_by_input[key] += 1
        if failure:
            self.billed_failures += 1

    def snapshot(self) -> dict[str, Any]:
        """A JSON-ready copy (counter keys become strings)."""
        return {
            "calls": self.calls,
            "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
            "by_state": {str(k): v for k, v in sorted(self.by_state.items())},
            "throttled": self.throttled,
            "faults": dict(self.faults),
            "billed": self.billed,
            "billed_by_input": dict(self.billed_by_input),
            "billed_failures": self.billed_failures,
            "billing": self.billing,
            "polls": self.polls,
            "sync_requested": self.sync_requested,
            "breaker_refused": self.breaker_refused,
            "downloads": self.downloads,
            "download_attempts": self.download_attempts,
            "download_arrivals": list(self.download_arrivals),
            "arrivals": list(self.arrivals),
            "accepted_arrivals": list(self.accepted_arrivals),
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "signed": self.signed,
            "signature_refused": dict(self.signature_refused),
        }
