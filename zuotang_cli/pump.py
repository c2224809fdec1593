"""Feeding a blocking iterator (stdin, list files, folder walks) into the event loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import AsyncIterator, Iterator
from typing import TypeVar

T = TypeVar("T")

_DONE = object()


class _Raised:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


async def aiter_in_thread(iterator: Iterator[T], maxsize: int = 1024) -> AsyncIterator[T]:
    """Iterate ``iterator`` in a daemon thread so a slow read never blocks the loop.

    The queue is bounded (reading stays lazy) and the thread is a daemon, so a process
    that stops while the thread waits on a pipe that never ends still exits at once.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[object] = asyncio.Queue(maxsize)

    def put(value: object) -> bool:
        try:
            asyncio.run_coroutine_threadsafe(queue.put(value), loop).result()
        except (RuntimeError, concurrent.futures.CancelledError):
            return False  # the loop is gone: nobody is reading any more
        return True

    def pump() -> None:
        try:
            for value in iterator:
                if not put(value):
                    return
        except Exception as exc:
            put(_Raised(exc))
        else:
            put(_DONE)

    threading.Thread(target=pump, name="zuotang-inputs", daemon=True).start()
    while True:
        value = await queue.get()
        if value is _DONE:
            return
        if isinstance(value, _Raised):
            raise value.exc
        yield value  # type: ignore[misc]
