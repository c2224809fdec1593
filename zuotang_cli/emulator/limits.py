"""The gateway's flow control (sliding one-second window per AppCode) and call quota."""

from __future__ import annotations

from collections import deque

WINDOW = 1.0


class FlowControl:
    """At most ``qps`` accepted arrivals per key in any window (t - 1 s, t]."""

    def __init__(self, qps: float) -> None:
        self.qps = qps
        self._windows: dict[str, deque[float]] = {}

    def admit(self, key: str, arrival: float) -> bool:
        """Accept the call arriving at ``arrival`` (monotonic seconds) unless over QPS.

        Rejected arrivals are not remembered, so they do not count against later calls.
        """
        window = self._windows.setdefault(key, deque())
        while window and window[0] <= arrival - WINDOW:
            window.popleft()
        if len(window) < self.qps:
            window.append(arrival)
            return True
        return False


class Quota:
    """Billed calls allowed; calls in flight hold a slot so the total never overshoots.

    A call is refused once ``billed + in flight >= limit``. A slot held by a call that
    ends unbilled is given back, so later calls may still be accepted.
    """

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.billed = 0
        self.held = 0

    def hold(self) -> bool:
        if self.limit is not None and self.billed + self.held >= self.limit:
            return False
        self.held += 1
        return True

    def release(self, *, billed: bool) -> None:
        self.held -= 1
        if billed:
            self.billed += 1
