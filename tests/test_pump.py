"""zuotang_cli.engine.pump: a blocking iterator read in a thread, handed to the loop in lists."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from zuotang_cli.engine.pump import aiter_in_thread


async def collect(iterator: Iterator[int], maxsize: int = 4096) -> list[list[int]]:
    return [chunk async for chunk in aiter_in_thread(iterator, maxsize)]


def test_every_item_arrives_once_in_order() -> None:
    chunks = asyncio.run(collect(iter(range(10_000)), maxsize=100))
    assert [item for chunk in chunks for item in chunk] == list(range(10_000))
    assert all(chunks) and max(map(len, chunks)) <= 100  # never more than maxsize waits
    assert len(chunks) < 10_000  # handed over in lists, not one loop turn an item


def test_a_line_on_a_quiet_pipe_is_handed_over_before_the_next_one() -> None:
    """`tail -f list | zuotang enhance -`: the first input must not wait for a second."""
    more = threading.Event()

    def quiet() -> Iterator[int]:
        yield 1
        more.wait(10)
        yield 2

    async def main() -> list[list[int]]:
        got = []
        async for chunk in aiter_in_thread(quiet()):
            got.append(chunk)
            more.set()  # only once the first one is here does the second come
        return got

    assert asyncio.run(asyncio.wait_for(main(), 5)) == [[1], [2]]


def test_reading_stays_lazy() -> None:
    read = []

    def counted() -> Iterator[int]:
        for i in range(100_000):
            read.append(i)
            yield i

    async def main() -> int:
        async for _chunk in aiter_in_thread(counted(), maxsize=50):
            await asyncio.sleep(0.2)  # the reader runs ahead meanwhile, at most maxsize
            return len(read)
        return 0

    assert asyncio.run(main()) <= 50 + 50 + 1


def test_an_error_of_the_iterator_is_raised_after_what_came_before() -> None:
    def failing() -> Iterator[int]:
        yield 1
        raise OSError("gone")

    async def main() -> list[int]:
        got = []
        with pytest.raises(OSError, match="gone"):
            async for chunk in aiter_in_thread(failing()):
                got += chunk
        return got

    assert asyncio.run(main()) == [1]


def blocked_after(items: list[int], release: threading.Event) -> Iterator[int]:
    """``items``, then a read that blocks (a FIFO or a stdin nobody closes)."""
    yield from items
    release.wait(30)
    yield -1


def test_stop_at_once_ends_with_what_was_read_while_the_source_blocks() -> None:
    release = threading.Event()

    async def main() -> list[int]:
        feed = aiter_in_thread(blocked_after([1, 2, 3], release))
        got: list[int] = []
        got += await feed.__anext__()
        while len(got) < 3:
            got += await feed.__anext__()
        await asyncio.sleep(0.1)  # the reader is blocked by now
        feed.stop(0)
        got += [item async for chunk in feed for item in chunk]
        return got

    try:
        assert asyncio.run(asyncio.wait_for(main(), 5)) == [1, 2, 3]
    finally:
        release.set()


def test_stop_with_a_grace_reads_on_while_the_source_gives() -> None:
    """After a first Ctrl-C a list file is read to its end (each input gets its row); a
    source that has nothing ready is waited on for the grace only."""
    release = threading.Event()

    async def main() -> list[int]:
        feed = aiter_in_thread(blocked_after(list(range(10_000)), release), maxsize=100)
        feed.stop(0.3)
        return [item async for chunk in feed for item in chunk]

    try:
        got = asyncio.run(asyncio.wait_for(main(), 10))
    finally:
        release.set()
    assert got == list(range(10_000))  # every item the source gave, none after it blocked


def test_stop_wakes_a_wait_already_in_progress() -> None:
    release = threading.Event()

    async def main() -> list[int]:
        feed = aiter_in_thread(blocked_after([], release))
        waiting = asyncio.ensure_future(feed.__anext__())
        await asyncio.sleep(0.1)
        feed.stop(0)
        with pytest.raises(StopAsyncIteration):
            await waiting
        return []

    try:
        asyncio.run(asyncio.wait_for(main(), 5))
    finally:
        release.set()
