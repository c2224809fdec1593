"""zuotang_cli.pump: a blocking iterator read in a thread, handed to the loop in lists."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from zuotang_cli.pump import aiter_in_thread


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
