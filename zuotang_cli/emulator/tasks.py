"""Tasks of the asynchronous service: created by a POST, fetched by ``GET .../{task_id}``."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

STATE_PROCESSING = 4


@dataclass
class Task:
    task_id: str
    started: float
    """Monotonic time processing began."""
    latency: float
    """Planned processing time (for ``progress``)."""
    reply: dict[str, Any] | None = None
    """The finished task's JSON, as a synchronous reply would carry it."""
    expires_at: float = math.inf
    """Monotonic time from which the task is gone (its result link's lifetime)."""

    def progress(self, now: float) -> int:
        """0-99 while running, by the share of the planned time gone by."""
        if self.latency <= 0:
            return 99
        return max(0, min(99, int(100 * (now - self.started) / self.latency)))


class TaskStore:
    """Tasks by id, shared by every client of one emulator; finished ones expire."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._tasks: dict[str, Task] = {}
        self._expiry_order: deque[tuple[float, str]] = deque()
        self._workers: set[asyncio.Future[None]] = set()

    def add(self, task: Task) -> None:
        self._tasks[task.task_id] = task

    def get(self, task_id: str, now: float) -> Task | None:
        self._purge(now)
        return self._tasks.get(task_id)

    def finish(self, task: Task, reply: dict[str, Any], now: float) -> None:
        task.reply = reply
        task.expires_at = now + self.ttl
        self._expiry_order.append((task.expires_at, task.task_id))

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` in the background (kept referenced until it ends)."""
        worker = asyncio.ensure_future(work)
        self._workers.add(worker)
        worker.add_done_callback(self._workers.discard)

    async def shutdown(self) -> None:
        """Cancel the tasks still processing (the server is stopping)."""
        workers = list(self._workers)
        for worker in workers:
            worker.cancel()
        for worker in workers:
            with contextlib.suppress(asyncio.CancelledError):
                await worker

    def _purge(self, now: float) -> None:
        while self._expiry_order and self._expiry_order[0][0] <= now:
            _, task_id = self._expiry_order.popleft()
            self._tasks.pop(task_id, None)
