"""Feeding a blocking iterator (stdin, list files, folder walks) into the event loop."""

from __future__ import annotations

import asyncio
import collections
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Protocol, TypeVar, runtime_checkable

T = TypeVar("T")

_DONE = object()
_PUT_WAIT = 0.5
"""Seconds a put into a full queue waits before checking that someone still reads."""


@runtime_checkable
class Stoppable(Protocol):
    """A stream of inputs the batch can tell to end (a reader thread, a watched folder):
    from then on it waits at most ``grace`` seconds for inputs not ready yet."""

    def stop(self, grace: float) -> None: ...


class _Raised:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class _Channel:
    """Items from the reading thread to the loop, handed over in lists: the loop takes
    everything read so far at once, and the thread wakes it only when it had nothing.

    A put takes no lock unless the channel is full (a lock a line was a third of the
    reading thread's time on a long list): one thread appends, the loop pops, and a deque
    does both safely."""

    def __init__(self, loop: asyncio.AbstractEventLoop, maxsize: int) -> None:
        self._loop = loop
        self._maxsize = maxsize
        self._items: collections.deque[object] = collections.deque()
        self._room = threading.Condition()
        self._closed = False
        self.ready = asyncio.Event()

    def put(self, value: object) -> bool:
        """In the thread: False when nobody reads any more."""
        items = self._items
        if len(items) >= self._maxsize:
            with self._room:
                while len(items) >= self._maxsize and not self._closed:
                    self._room.wait(_PUT_WAIT)
        if self._closed:
            return False
        items.append(value)
        if len(items) == 1:  # it was empty: the loop may be waiting (after the append, so
            try:  # that a loop that took everything meanwhile is woken for nothing at worst)
                self._loop.call_soon_threadsafe(self.ready.set)
            except RuntimeError:  # the loop is closed
                return False
        return True

    def take(self) -> list[object]:
        """In the loop: everything put so far (maybe nothing)."""
        items = self._items
        taken = [items.popleft() for _ in range(len(items))]
        if taken:
            with self._room:
                self._room.notify()
        return taken

    def close(self) -> None:
        with self._room:
            self._closed = True
            self._room.notify()


class ThreadFeed(AsyncIterator[list[T]]):
    """Iterate ``iterator`` in a daemon thread so a slow read never blocks the loop; yield
    what it has read so far, in lists.

    Reading stays lazy (at most ``maxsize`` items wait), a list read faster than it is
    processed costs no loop round trip per item, and one line arriving on a quiet pipe is
    handed over at once.  The thread is a daemon, so a process that stops while it waits
    on a pipe that never ends (an open FIFO, a stdin nobody closes) still exits at once;
    :meth:`stop` tells the loop side not to wait for it either.
    """

    def __init__(self, iterator: Iterator[T], maxsize: int = 4096) -> None:
        self._iterator = iterator
        self._maxsize = maxsize
        self._channel: _Channel | None = None
        self._grace: float | None = None
        """Once stopping: how long to wait for the reader when it has nothing ready."""
        self._finished = False
        self._error: BaseException | None = None

    def __aiter__(self) -> ThreadFeed[T]:
        return self

    def stop(self, grace: float) -> None:
        """From now on, wait at most ``grace`` seconds for the reader whenever it has
        nothing ready (it is blocked on its source), then end with what it has read; 0:
        end at once with what it has read so far (no more is read).  In the loop."""
        self._grace = grace if self._grace is None else min(grace, self._grace)
        if self._channel is not None:
            self._channel.ready.set()  # wake a wait in progress to apply it

    async def __anext__(self) -> list[T]:
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        if self._finished:
            raise StopAsyncIteration
        if self._channel is None:
            self._channel = self._start()
        channel = self._channel
        while True:
            # Cleared before looking: a put after the look sets it again, so none is missed.
            channel.ready.clear()
            if self._grace == 0:
                channel.close()  # the reader puts nothing more: what it put is all
            taken = channel.take()
            if taken:
                break
            if self._grace == 0 or not await self._ready(channel):
                self._finish()
                raise StopAsyncIteration
        end = taken[-1]
        if end is _DONE or isinstance(end, _Raised):
            taken.pop()
            self._finish()
            if isinstance(end, _Raised):
                self._error = end.exc  # raised after the items read before it
        if taken:
            return taken  # type: ignore[return-value]
        return await self.__anext__()

    async def _ready(self, channel: _Channel) -> bool:
        """Wait for the reader's next items; False when stopping and it had none within
        the grace."""
        if self._grace is None:
            await channel.ready.wait()
            return True
        try:
            await asyncio.wait_for(channel.ready.wait(), self._grace)
        except asyncio.TimeoutError:
            return False
        return True

    def _start(self) -> _Channel:
        channel = _Channel(asyncio.get_running_loop(), self._maxsize)
        iterator = self._iterator

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
        return channel

    def _finish(self) -> None:
        self._finished = True
        if self._channel is not None:
            self._channel.close()

    async def aclose(self) -> None:
        self._finish()


def aiter_in_thread(iterator: Iterator[T], maxsize: int = 4096) -> ThreadFeed[T]:
    """:class:`ThreadFeed` of ``iterator``."""
    return ThreadFeed(iterator, maxsize)
