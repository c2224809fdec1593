"""The Python API, for programs that embed zuotang instead of shelling out.

``enhance()`` runs a whole batch exactly as ``zuotang enhance`` does (same rate gate,
retries, journal, lock and files) and returns typed records; ``ScaleClient`` makes single
calls and returns the classified reply.  Neither prints anything.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from zuotang_cli.engine.pump import aiter_in_thread
from zuotang_cli.errors import UsageError
from zuotang_cli.models import InputItem, InputKind, Record, Row
from zuotang_cli.protocol import rules
from zuotang_cli.protocol.api import CallSpec, Reply, call_once
from zuotang_cli.protocol.rules import DEFAULT_TIMEOUT
from zuotang_cli.status import ExitStatus


@dataclass(frozen=True)
class BatchOutcome:
    records: list[Record]
    """One record per input, in the order they finished."""
    exit_status: ExitStatus
    """What ``zuotang enhance`` would exit with."""
    halted: str | None = None
    """Why the run halted (``auth``, ``quota-exhausted``, ...), if it did."""
    plan: list[tuple[str, str, str]] = field(default_factory=list)
    """With ``dry_run=True``: (input, action, reason) for each input, as ``zuotang enhance
    --dry-run`` prints them (``records`` is then empty)."""


async def enhance(
    sources: Sequence[str | Path],
    *,
    appcode: str | None = None,
    output_dir: str | Path = "out",
    on_record: Callable[[Record], None] | None = None,
    **options: Any,
) -> BatchOutcome:
    """Enhance ``sources`` (URLs, list files, images, folders) into ``output_dir``, through
    the same checks, journal, lock and batch as ``zuotang enhance``.

    ``options`` are those of :class:`~zuotang_cli.app.session.EnhanceOptions` (``type``,
    ``scale``, ``qps``, ``billing``, ``paid_retries``, ``max_calls``, ``force``,
    ``dry_run``...), the command's options by their Python names; ``app_key`` and
    ``app_secret`` sign the requests in place of the AppCode (docs/credentials.md).  Safe
    to call again on
    the same ``output_dir``: what is done is skipped.  Raises
    :class:`~zuotang_cli.errors.UsageError` on a bad option or if another run holds the
    directory.
    """
    from zuotang_cli.app.options import EnhanceOptions
    from zuotang_cli.app.session import Session
    from zuotang_cli.protocol.rules import Billing, Body, FileTransport

    if "billing" in options:
        options["billing"] = Billing(options["billing"])
    if options.get("body") is not None:
        options["body"] = Body(options["body"])
    if options.get("send_files") is not None:
        options["send_files"] = FileTransport(options["send_files"])
    try:
        settings = EnhanceOptions(
            inputs=[str(s) for s in sources],
            appcode=appcode,
            output_dir=Path(output_dir),
            quiet=True,
            **options,
        )
    except (TypeError, ValueError) as exc:  # an unknown keyword or value
        raise UsageError(f"enhance(): {exc}") from None
    session = await asyncio.to_thread(Session.prepare, settings)
    records: list[Record] = []
    plan: list[tuple[str, str, str]] = []

    def planned(source: str, action: str, reason: str) -> None:
        plan.append((source, action, reason))

    def sink(row: Row) -> None:
        record = row.full()
        records.append(record)
        if on_record is not None:
            on_record(record)

    with session.opened() as journal:
        batch = session.batch(journal, sink, planned=planned if settings.dry_run else None)
        result = await batch.run(aiter_in_thread(session.inputs(io.BytesIO())))
    halted = result.halt.error_class if result.halt is not None else None
    return BatchOutcome(records, result.exit_status, halted, plan)


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
