"""The run-wide gate every request start passes through (docs/architecture.md, "The engine").

Two rules together keep every one-second window at or under ``qps`` starts, first tries
and retries alike, while running at the cap:

1. Even spacing.  Starts are granted one ``period = 1.015 / qps`` apart on a virtual
   schedule (GCRA): a grant the event loop runs a little late does not push every later
   one back.  A leaky bucket of capacity 1 (``aiolimiter.AsyncLimiter(1, 1/qps)``) loses
   that lateness at every start (epoll rounds timer waits up to whole milliseconds),
   measured 3.5 % under the cap at 100 QPS here.  The catch-up is bounded by ``slack``.
2. A window on the wire.  A grant is not the moment the server sees the request: a new
   connection (TCP, TLS) or a busy loop can hold one back while a later one on a warm
   connection goes straight out, packing ``qps + 1`` arrivals into one server second.
   So each grant is a :class:`Ticket` that the caller marks when the request headers have
   been written; a new grant waits until the ``qps``-th previous request went out at
   least ``WINDOW`` ago.

Starts are granted in turn, first come first served, except that a fetch of a task already
paid for goes ahead of every new call waiting (``wait(first=True)``): at the default
concurrency a turn behind the queue is half a minute away, the task's whole fetching time.

A throttle reply pauses the whole gate (honouring ``Retry-After``), not one request; a halt
or Ctrl-C closes it, and every waiter returns at once.

Why not aiolimiter: it neither spaces starts evenly nor pauses every waiter on a throttle;
measured against the emulator at the cap, an aiolimiter client draws 11-33 throttle
replies where this gate draws 0 (each one a wasted start and a pause).
"""

from __future__ import annotations

import asyncio
import collections

SAFETY_MARGIN = 0.015
"""Fraction added to the spacing: any ``qps + 1`` starts span at least 1.015 s, so up to
15 ms of jitter between the client and the server's window is absorbed (measured on
loopback here: 3 ms typical, over 10 ms on a loaded machine).  Costs 1.5 % of the cap."""
MAX_MARGIN = 0.1
"""Each throttle reply widens the margin by SAFETY_MARGIN, up to this."""
MAX_SLACK = 0.005
"""At most this much (seconds) of a late grant is made up by the next one."""
TICK = 1e-6
"""A start due within this of now is due now: the loop's clock may count in steps this
fine (as asyncio fires a timer within its clock's resolution), and a shorter sleep would
not move it."""
WINDOW = 1.0 + SAFETY_MARGIN / 2
"""The one-second window as enforced on send times (half the margin: at steady state the
spacing, not this check, sets the pace)."""


class Ticket:
    """One granted start; ``sent()`` records when its request went out (idempotent)."""

    __slots__ = ("granted_at", "sent_at", "went_out")

    def __init__(self, granted_at: float) -> None:
        self.granted_at = granted_at
        self.sent_at: float | None = None
        self.went_out = asyncio.Event()

    def sent(self) -> None:
        if self.sent_at is None:
            self.sent_at = asyncio.get_running_loop().time()
            self.went_out.set()

    def out_by(self, limit: float) -> float:
        """When it went out; one not out ``limit`` s after its grant (a connection that
        takes that long to open) is taken as out at that point."""
        return self.sent_at if self.sent_at is not None else self.granted_at + limit


class RateGate:
    def __init__(self, qps: float) -> None:
        if qps <= 0:
            raise ValueError("qps must be positive")
        self.qps = qps
        self.margin = SAFETY_MARGIN
        self.period = (1.0 + self.margin) / qps
        self.slack = min(MAX_SLACK, self.period / 2)
        self.starts = 0
        self._due = float("-inf")
        """When the next grant is due on the virtual schedule (loop clock)."""
        self._recent: collections.deque[Ticket] = collections.deque(maxlen=max(1, int(qps)))
        self._paused_until = 0.0
        self._turn_taken = False
        self._queues: tuple[collections.deque[asyncio.Future[None]], ...] = (
            collections.deque(),  # first: fetches of paid tasks
            collections.deque(),  # new calls
        )
        self._closed = asyncio.Event()

    async def wait(self, *, first: bool = False) -> Ticket | None:
        """Wait until the next request may start: its ticket, or None once closed.
        ``first``: go ahead of the waiters that did not ask to."""
        loop = asyncio.get_running_loop()
        await self._take_turn(loop, first)
        try:
            while not self._closed.is_set():
                now = loop.time()
                oldest = self._recent[0] if len(self._recent) == self._recent.maxlen else None
                if (
                    oldest is not None
                    and oldest.sent_at is None
                    and oldest.out_by(WINDOW) > now + TICK
                ):
                    await self._wait_for(oldest.went_out, oldest.out_by(WINDOW) - now)
                    continue
                opens = oldest.out_by(WINDOW) + WINDOW if oldest is not None else now
                target = max(self._due, self._paused_until, opens)
                if target > now + TICK:
                    await self.sleep(target - now)
                    continue
                late = now - self._due
                self._due = (self._due if late <= self.slack else now) + self.period
                return self._grant(now)
            return None
        finally:
            self._pass_turn()

    async def _take_turn(self, loop: asyncio.AbstractEventLoop, first: bool) -> None:
        """Wait for the turn to grant the next start (one waiter holds it at a time)."""
        if not self._turn_taken:
            self._turn_taken = True
            return
        turn = loop.create_future()
        self._queues[0 if first else 1].append(turn)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():  # handed over, then cancelled
                self._pass_turn()
            raise

    def _pass_turn(self) -> None:
        """Hand the turn to the next waiter still waiting, the first queue first."""
        for queue in self._queues:
            while queue:
                turn = queue.popleft()
                if not turn.done():
                    turn.set_result(None)
                    return
        self._turn_taken = False

    def _grant(self, now: float) -> Ticket:
        ticket = Ticket(now)
        self._recent.append(ticket)
        self.starts += 1
        return ticket

    def pause(self, seconds: float) -> None:
        """A throttle reply: hold every start for ``seconds`` from now, and space starts a
        little wider for the rest of the run (the account or the network is tighter than
        the margin allowed for)."""
        until = asyncio.get_running_loop().time() + seconds
        self._paused_until = max(self._paused_until, until)
        self.margin = min(MAX_MARGIN, self.margin + SAFETY_MARGIN)
        self.period = (1.0 + self.margin) / self.qps

    def close(self) -> None:
        """Let no further request start; every waiter returns None at once."""
        self._closed.set()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    async def sleep(self, delay: float) -> None:
        """Sleep ``delay`` seconds, or less if the gate closes meanwhile."""
        await self._wait_for(self._closed, delay)

    async def _wait_for(self, event: asyncio.Event, timeout: float) -> None:
        """Wait for ``event`` at most ``timeout`` seconds; a close ends the wait too."""
        waiters = {asyncio.ensure_future(e.wait()) for e in {event, self._closed}}
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
