"""The caps on paid calls: ``--max-calls`` (one run, never passed) and
``--max-calls-per-day`` (a local calendar day; when spent, calls wait for the next day)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import time
from collections.abc import Callable
from typing import Protocol

from zuotang_cli.i18n import gettext as _

DAY_CHECK = 60.0
"""While the day's calls are spent: seconds between two looks at the clock (a clock set
forward, a machine woken from sleep, are noticed within this)."""


class Clock(Protocol):
    """Wall-clock time and a way to wait: injected, so that tests pass a day at will."""

    def time(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def time(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


SYSTEM_CLOCK = SystemClock()


class DailyBudget:
    """``--max-calls-per-day``: at most ``limit`` paid calls (counted as ``--max-calls``
    counts them) in one local calendar day.  A call in flight holds a unit; once the day's
    are spent, a new call waits for the next day (``notice`` says so once, and again when
    calls resume), or for ``stopping``.  The day's count is kept through ``remember`` (the
    journal), so a restart on the same day goes on from it."""

    def __init__(
        self,
        limit: int,
        clock: Clock,
        stopping: asyncio.Event,
        *,
        recalled: str | None = None,
        remember: Callable[[str], None] | None = None,
        notice: Callable[[str], None] | None = None,
    ) -> None:
        self.limit = limit
        self.clock = clock
        self.stopping = stopping
        self._remember = remember
        self._notice = notice
        self.day = self._today()
        self.spent = 0
        day, _, spent = (recalled or "").partition(" ")
        if day == self.day and spent.isdigit():
            self.spent = int(spent)
        self._held = 0
        self._waiting_for_tomorrow = False
        self._changed = asyncio.Event()

    def _today(self) -> str:
        return datetime.datetime.fromtimestamp(self.clock.time()).date().isoformat()

    def _roll(self) -> None:
        today = self._today()
        if today == self.day:
            return
        self.day, self.spent = today, 0
        if self._waiting_for_tomorrow:
            self._waiting_for_tomorrow = False
            self._say(
                _("a new day ({today}): calls resume (--max-calls-per-day {limit})").format(
                    today=today, limit=self.limit
                )
            )

    def _say(self, message: str) -> None:
        if self._notice is not None:
            self._notice(message)

    def _until_tomorrow(self) -> float:
        now = datetime.datetime.fromtimestamp(self.clock.time())
        tomorrow = datetime.datetime.combine(
            now.date() + datetime.timedelta(days=1), datetime.time()
        )
        return max(0.0, (tomorrow - now).total_seconds())

    async def reserve(self) -> None:
        """Hold a unit, waiting as long as it takes (the next day); at once when the run is
        stopping (the call then finds the gate closed and gives it back)."""
        while True:
            self._roll()
            if self.spent + self._held < self.limit or self.stopping.is_set():
                self._held += 1
                return
            if self.spent >= self.limit:
                if not self._waiting_for_tomorrow:
                    self._waiting_for_tomorrow = True
                    self._say(
                        _(
                            "--max-calls-per-day {limit} reached for {day}: new calls wait "
                            "until midnight (local time); files are still taken in"
                        ).format(limit=self.limit, day=self.day)
                    )
                await self._either(self.clock.sleep(min(DAY_CHECK, self._until_tomorrow())))
            else:  # the calls in flight may end unpaid
                self._changed.clear()
                await self._either(self._changed.wait())

    async def _either(self, waiting: object) -> None:
        """Wait for ``waiting`` (a coroutine) or for the run to stop."""
        tasks = {
            asyncio.ensure_future(waiting),  # type: ignore[call-overload]
            asyncio.ensure_future(self.stopping.wait()),
        }
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    def release(self, *, billed: bool) -> None:
        self._held -= 1
        if billed:
            self._roll()
            self.spent += 1
            if self._remember is not None:
                self._remember(f"{self.day} {self.spent}")
        self._changed.set()


class CallBudget:
    """--max-calls: at most ``limit`` paid calls (billed failures and calls that timed out
    after going out count too); a call in flight holds one unit, given back if it ends
    unpaid, so the total can never pass the limit.  ``daily``: the day's cap besides."""

    def __init__(self, limit: int | None, daily: DailyBudget | None = None) -> None:
        self.limit = limit
        self.daily = daily
        self.billed = 0
        self._held = 0
        self._changed = asyncio.Condition()

    async def reserve(self) -> bool:
        if self.limit is None:
            if self.daily is not None:
                await self.daily.reserve()
            return True
        async with self._changed:
            while self.billed + self._held >= self.limit:
                if self.billed >= self.limit:
                    return False
                await self._changed.wait()
            self._held += 1
        if self.daily is not None:
            try:
                await self.daily.reserve()
            except BaseException:
                await self._give_back()
                raise
        return True

    async def _give_back(self) -> None:
        async with self._changed:
            self._held -= 1
            self._changed.notify_all()

    async def release(self, *, billed: bool) -> None:
        self.billed += billed
        if self.daily is not None:
            self.daily.release(billed=billed)
        if self.limit is None:
            return
        async with self._changed:
            self._held -= 1
            self._changed.notify_all()
