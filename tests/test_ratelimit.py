"""The run-wide gate: even spacing, no burst, pause, close.

Each scenario runs on an event loop with a fake clock (looptime): a sleep moves the clock
instead of waiting, so the spacing is asserted exactly and a busy machine cannot make a
test slow or flaky."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Coroutine
from typing import Any, TypeVar

import looptime
import pytest

from zuotang_cli.engine.ratelimit import WINDOW, RateGate

T = TypeVar("T")


def run(scenario: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on a loop whose clock starts at 0 and jumps to each next timer."""
    loop = looptime.new_event_loop(start=0.0)
    try:
        return loop.run_until_complete(scenario)
    finally:
        loop.close()


def max_in_window(times: list[float], window: float = 1.0) -> int:
    """Most starts found in any half-open window (t - window, t]."""
    best = 0
    for i, t in enumerate(times):
        best = max(best, sum(1 for u in times[: i + 1] if u > t - window))
    return best


async def starts(gate: RateGate, n: int) -> list[float]:
    loop = asyncio.get_running_loop()
    times: list[float] = []

    async def one() -> None:
        ticket = await gate.wait()
        assert ticket is not None
        ticket.sent()
        times.append(loop.time())

    await asyncio.gather(*(one() for _ in range(n)))
    return sorted(times)


@pytest.mark.parametrize("qps", [2.0, 20.0, 100.0])
def test_starts_never_exceed_qps_in_any_second(qps: float) -> None:
    n = int(qps * 1.5) + 1
    times = run(starts(RateGate(qps), n))
    assert max_in_window(times) <= qps
    gate = RateGate(qps)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # evenly spaced: no burst at the start; a late start is made up by at most `slack`
    assert gaps[0] >= gate.period
    assert min(gaps) >= gate.period - gate.slack
    assert times[-1] - times[0] == pytest.approx((n - 1) * gate.period, abs=1e-3)


def test_pause_holds_every_start() -> None:
    async def go() -> float:
        gate = RateGate(50.0)
        loop = asyncio.get_running_loop()
        first = await gate.wait()
        assert first is not None
        first.sent()
        gate.pause(0.3)
        t0 = loop.time()
        assert await gate.wait() is not None
        return loop.time() - t0

    assert run(go()) == pytest.approx(0.3, abs=1e-3)


def test_close_releases_all_waiters_at_once() -> None:
    async def go() -> tuple[list[object], float]:
        gate = RateGate(1.0)
        loop = asyncio.get_running_loop()
        assert await gate.wait() is not None
        waiters = [asyncio.ensure_future(gate.wait()) for _ in range(5)]
        await asyncio.sleep(0.05)
        t0 = loop.time()
        gate.close()
        results = await asyncio.gather(*waiters)
        return results, loop.time() - t0

    results, took = run(go())
    assert results == [None] * 5
    assert took == 0


def test_sleep_returns_early_when_closed() -> None:
    async def go() -> float:
        gate = RateGate(1.0)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        loop.call_later(0.05, gate.close)
        await gate.sleep(10)
        return loop.time() - t0

    assert run(go()) == pytest.approx(0.05, abs=1e-3)


def test_a_request_held_back_on_the_wire_holds_back_the_window() -> None:
    """The first request leaves 50 ms late (a cold connection): the (qps+1)-th start waits
    until a full window after it actually went out, not after it was granted."""

    async def go() -> tuple[float, float]:
        gate = RateGate(2.0)
        loop = asyncio.get_running_loop()
        first = await gate.wait()
        assert first is not None
        loop.call_later(0.05, first.sent)
        second = await gate.wait()
        assert second is not None
        second.sent()
        third = await gate.wait()
        assert third is not None and first.sent_at is not None
        return first.sent_at, loop.time()

    first_sent, third_start = run(go())
    assert third_start == pytest.approx(first_sent + WINDOW, abs=1e-3)


def test_a_request_that_never_goes_out_does_not_stall_the_gate() -> None:
    async def go() -> float:
        gate = RateGate(1.0)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        assert await gate.wait() is not None  # never marked as sent
        assert await gate.wait() is not None
        return loop.time() - t0

    # taken as out one window after its grant; the next start a window after that
    assert run(go()) == pytest.approx(2 * WINDOW, abs=1e-3)


def test_a_throttle_widens_the_spacing_for_the_rest_of_the_run() -> None:
    async def go() -> tuple[float, float]:
        gate = RateGate(10.0)
        before = gate.period
        gate.pause(0.0)
        return before, gate.period

    before, after = run(go())
    assert after > before


def test_a_fetch_of_a_paid_task_goes_ahead_of_the_new_calls_waiting() -> None:
    async def scenario() -> list[str]:
        gate = RateGate(50.0)
        order: list[str] = []

        async def one(name: str, *, first: bool = False) -> None:
            ticket = await gate.wait(first=first)
            assert ticket is not None
            ticket.sent()
            order.append(name)

        calls = [asyncio.ensure_future(one(f"call-{i}")) for i in range(8)]
        await asyncio.sleep(0)  # call-0 granted, call-1 holds the turn, the rest queue
        fetches = [asyncio.ensure_future(one(f"fetch-{i}", first=True)) for i in range(2)]
        await asyncio.gather(*calls, *fetches)
        return order

    order = run(scenario())
    # the fetches go right after the start being granted; each kind keeps its own order
    assert order == ["call-0", "call-1", "fetch-0", "fetch-1"] + [f"call-{i}" for i in range(2, 8)]


def test_a_waiter_cancelled_in_the_queue_or_as_its_turn_came_does_not_stall_the_gate() -> None:
    async def scenario() -> list[str]:
        gate = RateGate(50.0)
        order: list[str] = []
        tasks: dict[str, asyncio.Future[None]] = {}

        async def one(name: str, cancel: str | None = None) -> None:
            ticket = await gate.wait()
            assert ticket is not None
            ticket.sent()
            order.append(name)
            if cancel:  # its turn was handed over just now; it has not run yet
                tasks[cancel].cancel()

        for name, cancel in [("a", None), ("b", "c"), ("c", None), ("d", None), ("e", None)]:
            tasks[name] = asyncio.ensure_future(one(name, cancel))
        await asyncio.sleep(0)
        tasks["d"].cancel()  # still queued
        done = await asyncio.wait_for(asyncio.gather(*tasks.values(), return_exceptions=True), 5)
        assert [isinstance(r, asyncio.CancelledError) for r in done] == [0, 0, 1, 1, 0]
        return order

    assert run(scenario()) == ["a", "b", "e"]
