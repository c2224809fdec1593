"""What a user would write instead of ``zuotang enhance``: two small, honest httpx clients.

* :func:`sequential` — the official examples in a loop: one call, then its download, then
  the next (requests-style, a sync ``httpx.Client``).
* :func:`five_at_a_time` — what most batch tools do: a fixed number of workers
  (``asyncio.Semaphore(5)``), no rate limiter; a throttled call is retried after 1 s.

Both count the throttle replies they receive and the images they save.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

CONCURRENCY = 5
THROTTLE_WAIT = 1.0
TIMEOUT = 60.0


@dataclass
class NaiveRun:
    done: int = 0
    throttled: int = 0
    failed: int = 0
    wall_s: float = 0.0


@dataclass(frozen=True)
class Target:
    endpoint: str
    appcode: str
    output_dir: Path

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"APPCODE {self.appcode}"}

    def form(self, image_url: str) -> dict[str, str]:
        return {"image_url": image_url, "type": "clean"}


def is_throttled(response: httpx.Response) -> bool:
    return response.status_code == 429 or (
        response.status_code == 403 and "throttl" in response.text.lower()
    )


def result_url(response: httpx.Response) -> str | None:
    """The result link of a successful call, else None."""
    if response.status_code != 200:
        return None
    data = response.json().get("data") or {}
    image = data.get("image")
    return image if data.get("state") == 1 and isinstance(image, str) and image else None


def sequential(target: Target, urls: list[str]) -> NaiveRun:
    run = NaiveRun()
    started = time.monotonic()
    with httpx.Client(timeout=TIMEOUT) as client:
        for n, url in enumerate(urls):
            form = target.form(url)
            while is_throttled(
                response := client.post(target.endpoint, data=form, headers=target.headers)
            ):
                run.throttled += 1
                time.sleep(THROTTLE_WAIT)
            image = result_url(response)
            if image is None:
                run.failed += 1
                continue
            (target.output_dir / f"{n}.png").write_bytes(client.get(image).content)
            run.done += 1
    run.wall_s = time.monotonic() - started
    return run


def five_at_a_time(target: Target, urls: list[str]) -> NaiveRun:
    run = NaiveRun()
    started = time.monotonic()
    asyncio.run(_gather(target, urls, run))
    run.wall_s = time.monotonic() - started
    return run


async def _gather(target: Target, urls: list[str], run: NaiveRun) -> None:
    slots = asyncio.Semaphore(CONCURRENCY)
    async with httpx.AsyncClient(timeout=TIMEOUT) as client:

        async def one(n: int, url: str) -> None:
            form = target.form(url)
            async with slots:
                while is_throttled(
                    response := await client.post(
                        target.endpoint, data=form, headers=target.headers
                    )
                ):
                    run.throttled += 1
                    await asyncio.sleep(THROTTLE_WAIT)
                image = result_url(response)
                if image is None:
                    run.failed += 1
                    return
                content = (await client.get(image)).content
                (target.output_dir / f"{n}.png").write_bytes(content)
                run.done += 1

        await asyncio.gather(*(one(n, url) for n, url in enumerate(urls)))
