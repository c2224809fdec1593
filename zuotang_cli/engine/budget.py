"""``--max-calls``: a cap on the paid calls of one run that can never be passed."""

from __future__ import annotations

import asyncio


class CallBudget:
    """--max-calls: at most ``limit`` paid calls (billed failures and calls that timed out
    after going out count too); a call in flight holds one unit, given back if it ends
    unpaid, so the total can never pass the limit."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.billed = 0
        self._held = 0
        self._changed = asyncio.Condition()

    async def reserve(self) -> bool:
        if self.limit is None:
            return True
        async with self._changed:
            while self.billed + self._held >= self.limit:
                if self.billed >= self.limit:
                    return False
                await self._changed.wait()
            self._held += 1
            return True

    async def release(self, *, billed: bool) -> None:
        self.billed += billed
        if self.limit is None:
            return
        async with self._changed:
            self._held -= 1
            self._changed.notify_all()
