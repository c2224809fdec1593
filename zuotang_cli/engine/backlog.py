"""Paid results on their way to the disk: no link expires in our own queue.

Every result a call brings is a paid result until it is saved, and its link dies an hour
after it was made.  :class:`Backlog` gives each download a slot at once, up to ``cap``
downloads at a time (the open-file limit sizes it): a download waits only when that many
are going, so the downloads in flight grow with the backlog (bandwidth, not CPU, is what
a download spends).  Those that do wait are served soonest-to-expire first, and new calls
are held back while the results already waiting could not all be fetched before their
links die at the download rate measured so far; a result waits for a slot, never for a
call.  A download that is slow but still receiving bytes keeps its slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

SAFETY = 60.0
"""Seconds before a link dies by which its download must have started (at most a tenth
of the link's life)."""
RATE_WINDOW = 32
"""Downloads finished whose pace makes the measured rate."""
RECHECK = 1.0
"""Seconds between two looks at the backlog while new calls are held back."""
LIVES = 16
"""Fresh links whose life left, when their result came in, stands for the next one's."""


@dataclass(frozen=True)
class Pace:
    """How fast results were saved while new calls were held back."""

    held_seconds: float
    per_second: float
    bytes_per_second: float


class Backlog:
    """Download slots for paid results; see the module."""

    def __init__(self, cap: int, clock: Callable[[], float] | None = None) -> None:
        self.cap = max(1, cap)
        self._clock = clock or asyncio.get_running_loop().time
        self.active = 0
        self.peak = 0
        """The most downloads that were going at once."""
        self._waiting: list[tuple[float, int, asyncio.Future[None]]] = []
        self.waiting = 0
        """Results waiting for a slot."""
        self._order = itertools.count()
        self._finished: deque[tuple[float, int]] = deque(maxlen=RATE_WINDOW)
        """(when, bytes) of the latest downloads finished."""
        self._lives: deque[float] = deque(maxlen=LIVES)
        """The life the latest links had left when their results came in."""
        self._changed = asyncio.Event()
        self.held = 0.0
        """Seconds new calls were held back."""

    @contextlib.asynccontextmanager
    async def slot(self, deadline: float) -> AsyncIterator[None]:
        """Hold a download slot for a result whose link dies at ``deadline`` (the loop's
        clock): at once while fewer than ``cap`` are going, else in deadline order."""
        self._lives.append(deadline - self._clock())
        if self.active < self.cap and not self.waiting:
            self._take()
        else:
            future = asyncio.get_running_loop().create_future()
            heapq.heappush(self._waiting, (deadline, next(self._order), future))
            self.waiting += 1
            try:
                await future
            except asyncio.CancelledError:
                if future.done() and not future.cancelled():
                    self._give_back()  # granted as it was cancelled: pass the slot on
                else:
                    self.waiting -= 1  # its entry stays in the heap, skipped when reached
                raise
        try:
            yield
        finally:
            self._give_back()

    def finished(self, size: int) -> None:
        """A download of ``size`` bytes ended well (it makes the measured rate)."""
        self._finished.append((self._clock(), size))

    def rate(self) -> float | None:
        """Downloads a second over the latest ones finished (None: too few yet)."""
        if len(self._finished) < 2:
            return None
        span = self._finished[-1][0] - self._finished[0][0]
        return (len(self._finished) - 1) / span if span > 0 else None

    def must_hold(self, calls_in_flight: int) -> bool:
        """Whether a new call now would bring a result that could not be fetched before
        its link dies: the results waiting and the calls in flight go first (deadline
        order puts a new result last), at the measured rate."""
        if not self.waiting:
            return False
        rate = self.rate()
        if rate is None:  # nothing finished yet while all slots are taken: wait and see
            return True
        life = min(self._lives)
        return (self.waiting + calls_in_flight + 1) / rate >= life - min(SAFETY, life / 10)

    async def room_for_a_call(
        self, calls_in_flight: Callable[[], int], stop: asyncio.Event
    ) -> None:
        """Return when a new call may start (see :meth:`must_hold`), or when ``stop`` is
        set; the time held back is added to :attr:`held`."""
        started = self._clock()
        while self.must_hold(calls_in_flight()) and not stop.is_set():
            self._changed.clear()
            waiters = {
                asyncio.ensure_future(self._changed.wait()),
                asyncio.ensure_future(stop.wait()),
            }
            try:
                await asyncio.wait(waiters, timeout=RECHECK, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()
        self.held += self._clock() - started

    def pace(self) -> Pace | None:
        """The download rate, when new calls were held back for it (for the summary)."""
        if self.held <= 0:
            return None
        rate = self.rate() or 0.0
        sizes = sum(size for _, size in self._finished)
        span = self._finished[-1][0] - self._finished[0][0] if len(self._finished) > 1 else 0.0
        return Pace(self.held, rate, sizes / span if span > 0 else 0.0)

    def _take(self) -> None:
        self.active += 1
        self.peak = max(self.peak, self.active)

    def _give_back(self) -> None:
        self.active -= 1
        while self._waiting and self.active < self.cap:
            *_, future = heapq.heappop(self._waiting)
            if not future.done():
                self.waiting -= 1
                self._take()
                future.set_result(None)
        self._changed.set()
