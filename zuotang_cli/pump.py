"""Feeding a blocking iterator (stdin, list files, folder walks) into the event loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from typing import TypeVar

T = TypeVar("T")

_DONE = object()
_PUT_WAIT = 0.5
"""Seconds a put into a full queue waits before checking that someone still reads."""


class _Raised:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class _Channel:
    """Items from the reading thread to the loop, handed over in lists: the loop takes
    everything read so far at once, and the thread wakes it only when it had nothing."""

    def __init__(self, loop: asyncio.AbstractEventLoop, maxsize: int) -> None:
        self._loop = loop
        self._maxsize = maxsize
        self._items: list[object] = []
        self._room = threading.Condition()
        self._closed = False
        self.ready = asyncio.Event()

    def put(self, value: object) -> bool:
        """In the thread: False when nobody reads any more."""
        with self._room:
            while len(self._items) >= self._maxsize and not self._closed:
                self._room.wait(_PUT_WAIT)
            if self._closed:
                return False
            self._items.append(value)
            was_empty = len(self._items) == 1
        if was_empty:  # the loop may be waiting
            try:
                self._loop.call_soon_threadsafe(self.ready.set)
            except RuntimeError:  # the loop is closed
                return False
        return True

    def take(self) -> list[object]:
        """In the loop: everything put so far (maybe nothing)."""
        with self._room:
            taken, self._items = self._items, []
            self._room.notify()
        return taken

    def close(self) -> None:
        with self._room:
            self._closed = True
            self._room.notify()


async def aiter_in_thread(iterator: Iterator[T], maxsize: int = 4096) -> AsyncIterator[list[T]]:
    """Iterate ``iterator`` in a daemon thread so a slow read never blocks the loop; yield
    what it has read so far, in lists.

    Reading stays lazy (at most ``maxsize`` items wait), a list read faster than it is
    processed costs no loop round trip per item, and one line arriving on a quiet pipe is
    handed over at once.  The thread is a daemon, so a process that stops while it waits
    on a pipe that never ends still exits at once.
    """
    channel = _Channel(asyncio.get_running_loop(), maxsize)

    def pump() -> None:
        try:
            for value in iterator:
                if not channel.put(value):
                    return
        except Exception as exc:
            channel.put(_Raised(exc))
        else:
            channel.put(_DONE)

    threading.Thread(target=pump, name="zuotang-inputs", daemon=True).start()
    try:
        while True:
            # Cleared before looking: a put after the look sets it again, so none is missed.
            channel.ready.clear()
            taken = channel.take()
            if not taken:
                await channel.ready.wait()
                continue
            end = taken[-1]
            if end is _DONE or isinstance(end, _Raised):
                taken.pop()
            if taken:
                yield taken  # type: ignore[misc]
            if isinstance(end, _Raised):
                raise end.exc
            if end is _DONE:
                return
            await asyncio.sleep(0)  # the loop's turn: signals, calls in flight
    finally:
        channel.close()
