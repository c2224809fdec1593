"""The Python API, for programs that embed zuotang instead of shelling out.

``enhance()`` runs a whole batch exactly as ``zuotang enhance`` does (same rate gate,
retries, journal, lock and files) and returns typed records; ``ScaleClient`` makes single
calls and returns the classified reply.  Neither prints anything.
"""

from __future__ import annotations

import asyncio
import io
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import httpx

from zuotang_cli import fdlimit, rules
from zuotang_cli.api import CallSpec, Reply, call_once
from zuotang_cli.batch import DEFAULT_TIMEOUT, Batch, BatchConfig
from zuotang_cli.inputs import iter_inputs
from zuotang_cli.journal import Journal
from zuotang_cli.lock import output_lock
from zuotang_cli.models import InputItem, InputKind, Record
from zuotang_cli.pump import aiter_in_thread
from zuotang_cli.status import ExitStatus


@dataclass(frozen=True)
class BatchOutcome:
    records: list[Record]
    """One record per input, in the order they finished."""
    exit_status: ExitStatus
    """What ``zuotang enhance`` would exit with."""
    halted: str | None = None
    """Why the run halted (``auth``, ``quota-exhausted``, ...), if it did."""


async def enhance(
    sources: Sequence[str | Path],
    *,
    appcode: str,
    output_dir: str | Path = "out",
    type: str = "clean",
    scale: int | None = None,
    endpoint: str = rules.DEFAULT_ENDPOINT,
    qps: float = rules.DEFAULT_QPS,
    recursive: bool = False,
    force: bool = False,
    retry_failed: bool = False,
    max_calls: int | None = None,
    on_record: Callable[[Record], None] | None = None,
) -> BatchOutcome:
    """Enhance ``sources`` (URLs, list files, images, folders) into ``output_dir``.

    Safe to call again on the same ``output_dir``: what is done is skipped. Raises
    :class:`~zuotang_cli.errors.UsageError` if another run holds the directory.
    """
    out = Path(output_dir)
    await asyncio.to_thread(out.mkdir, parents=True, exist_ok=True)
    config = BatchConfig(
        spec=CallSpec(endpoint, appcode, type, scale),
        output_dir=out.absolute(),  # noqa: ASYNC240 - reads only the cwd
        qps=qps,
        force=force,
        retry_failed=retry_failed,
        max_calls=max_calls,
    )
    config, fd_note = fdlimit.fit_batch(config)
    if fd_note is not None:
        warnings.warn(fd_note, RuntimeWarning, stacklevel=2)
    records: list[Record] = []

    def sink(record: Record) -> None:
        records.append(record)
        if on_record is not None:
            on_record(record)

    items = iter_inputs([str(s) for s in sources], stdin=io.BytesIO(), recursive=recursive)
    with output_lock(config.output_dir), Journal.open(config.output_dir) as journal:
        result = await Batch(config, sink, journal).run(aiter_in_thread(items))
    halted = result.halt.error_class if result.halt is not None else None
    return BatchOutcome(records, result.exit_status, halted)


class ScaleClient:
    """Single calls to the scale endpoint: no retries, no rate limit, no files.

    >>> async with ScaleClient(appcode) as client:          # doctest: +SKIP
    ...     reply = await client.scale("https://example.com/a.jpg", scale=2)
    ...     reply.verdict, reply.state, reply.image
    """

    def __init__(
        self,
        appcode: str,
        *,
        endpoint: str = rules.DEFAULT_ENDPOINT,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._appcode = appcode
        self.endpoint = endpoint
        self._client = httpx.AsyncClient(timeout=timeout, transport=transport)

    async def scale(
        self, image: str | Path, *, type: str = "clean", scale: int | None = None
    ) -> Reply:
        """One call for an image URL or a local file; the reply, classified."""
        spec = CallSpec(self.endpoint, self._appcode, type, scale)
        if isinstance(image, Path) or not str(image).lower().startswith(("http://", "https://")):
            path = Path(image).absolute()  # noqa: ASYNC240 - reads only the cwd
            item = InputItem(0, str(image), InputKind.FILE, path=path)
        else:
            item = InputItem(0, str(image), InputKind.URL, url=str(image))
        return await call_once(self._client, spec, item)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> ScaleClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:  # never show the AppCode
        return f"ScaleClient(endpoint={self.endpoint!r})"
