"""The download backlog: slots that grow with it, deadline order, and calls held back only
when a new result could not be fetched before its link dies (an injected clock)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from zuotang_cli.cli.summary import Tally, summarize
from zuotang_cli.engine.backlog import Backlog, Pace
from zuotang_cli.engine.batch import BatchResult
from zuotang_cli.protocol.rules import Billing


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_every_result_gets_a_slot_at_once_up_to_the_cap_then_soonest_to_expire_first() -> None:
    async def go() -> list[str]:
        clock = Clock()
        backlog = Backlog(cap=2, clock=clock)
        order: list[str] = []
        release = asyncio.Event()

        async def download(name: str, deadline: float) -> None:
            async with backlog.slot(deadline):
                order.append(name)
                await release.wait()

        tasks = [
            asyncio.create_task(download(name, clock.now + life))
            for name, life in (("a", 900), ("b", 900), ("late", 3000), ("soon", 100))
        ]
        await asyncio.sleep(0)
        assert order == ["a", "b"] and backlog.waiting == 2 and backlog.active == 2
        release.set()
        await asyncio.gather(*tasks)
        assert backlog.active == 0 and backlog.waiting == 0 and backlog.peak == 2
        return order

    assert asyncio.run(go()) == ["a", "b", "soon", "late"]


def test_a_waiter_cancelled_never_keeps_a_slot() -> None:
    async def go() -> None:
        backlog = Backlog(cap=1, clock=Clock())
        gate = asyncio.Event()

        async def hold() -> None:
            async with backlog.slot(2000.0):
                await gate.wait()

        first = asyncio.create_task(hold())
        second = asyncio.create_task(hold())
        await asyncio.sleep(0)
        second.cancel()
        await asyncio.sleep(0)
        assert backlog.waiting == 0
        gate.set()
        await first
        assert backlog.active == 0
        async with backlog.slot(2000.0):  # the slot is free again
            assert backlog.active == 1

    asyncio.run(go())


def test_new_calls_wait_only_when_their_result_could_not_be_fetched_in_time() -> None:
    async def go() -> None:
        clock = Clock()
        backlog = Backlog(cap=1, clock=clock)
        assert not backlog.must_hold(calls_in_flight=50)  # nothing waits: no reason to
        gate = asyncio.Event()

        async def download(life: float) -> None:
            async with backlog.slot(clock.now + life):
                await gate.wait()

        tasks = [asyncio.create_task(download(100.0)) for _ in range(3)]
        await asyncio.sleep(0)
        assert backlog.waiting == 2
        assert backlog.must_hold(calls_in_flight=0)  # all slots taken, no pace known yet
        for _ in range(5):  # one download finished a second
            clock.now += 1.0
            backlog.finished(1_000_000)
        assert backlog.rate() == 1.0
        # 2 waiting + 1 new at 1 a second: 3 s, well within the links' 100 s (less 10 s)
        assert not backlog.must_hold(calls_in_flight=0)
        # 2 waiting + 87 in flight + 1 new: 90 s, not within 90 s
        assert backlog.must_hold(calls_in_flight=87)
        assert not backlog.must_hold(calls_in_flight=86)
        stop = asyncio.Event()
        stop.set()
        await backlog.room_for_a_call(lambda: 87, stop)  # a stop ends the wait
        gate.set()
        await asyncio.gather(*tasks)
        assert not backlog.must_hold(calls_in_flight=1000)  # nothing waits any more

    asyncio.run(go())


def test_the_summary_shows_the_download_rate_when_it_held_calls_back(tmp_path: Path) -> None:
    result = BatchResult(download_pace=Pace(12.4, 0.75, 2_500_000))
    shown = summarize(
        result, Tally(), calls=3, elapsed=20.0, report=tmp_path / "r.csv", billing=Billing.EVERY_200
    )
    assert any(
        "held back 12 s" in line and "0.75/s" in line and "2.50 MB/s" in line
        for line in shown.lines()
    )
    assert shown.as_dict()["downloads_held_s"] == 12.4
    calm = summarize(
        BatchResult(),
        Tally(),
        calls=3,
        elapsed=20.0,
        report=tmp_path / "r.csv",
        billing=Billing.EVERY_200,
    )
    assert not any("held back" in line for line in calm.lines())
    assert calm.as_dict()["downloads_held_s"] is None
    # Held back for a moment only: the JSON says how long, the terminal says nothing.
    moment = BatchResult(download_pace=Pace(0.3, 30.0, 2_500_000))
    brief = summarize(
        moment, Tally(), calls=3, elapsed=20.0, report=tmp_path / "r.csv", billing=Billing.EVERY_200
    )
    assert not any("held back" in line for line in brief.lines())
    assert brief.as_dict()["downloads_held_s"] == 0.3
