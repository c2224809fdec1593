"""The Starlette application: routes of the API, the result links and the image host."""

from __future__ import annotations

import email.utils
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from zuotang_cli.emulator.fetch import make_client
from zuotang_cli.emulator.polls import handle_poll, wrong_path
from zuotang_cli.emulator.results import download
from zuotang_cli.emulator.scale import handle_scale
from zuotang_cli.emulator.state import EmulatorState
from zuotang_cli.protocol import rules

STATS_PATH = "/__emulator__/stats"
EXPIRE_PATH = "/__emulator__/expire-links"
"""POST: every result link made so far expires now, as an hour passing would (tests)."""
DOWNLOADS_PATH = "/__emulator__/downloads/{action:str}"
"""POST ``hold``: result downloads wait (a stalled object store); ``release``: they go."""
RESULTS_PREFIX = "/results"
FILES_PREFIX = "/files"
NOT_API_PREFIXES = (RESULTS_PREFIX + "/", FILES_PREFIX + "/", "/__emulator__/")
"""The object store, the image host and the emulator's own routes: not behind the gateway."""
ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]


def create_app(emu: EmulatorState) -> Starlette:
    async def scale(request: Request) -> Response:
        return await handle_scale(request, emu)

    async def poll(request: Request) -> Response:
        return await handle_poll(request, emu)

    async def result(request: Request) -> Response:
        return await download(request, emu.results, emu.stats, emu.config.download_latency)

    async def stats(request: Request) -> Response:
        return JSONResponse(emu.stats.snapshot())

    async def expire(request: Request) -> Response:
        return JSONResponse({"expired": emu.results.expire_all()})

    async def downloads(request: Request) -> Response:
        action = request.path_params["action"]
        if action not in ("hold", "release"):
            return PlainTextResponse("Not Found", status_code=404)
        if action == "hold":
            emu.results.flowing.clear()
        else:
            emu.results.flowing.set()
        return JSONResponse({"downloads": action})

    async def elsewhere(request: Request) -> Response:
        if request.url.path.startswith(NOT_API_PREFIXES):
            return PlainTextResponse("Not Found", status_code=404)
        return await wrong_path(request, emu)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with make_client() as client:
            emu.client = client
            try:
                yield
            finally:
                await emu.tasks.shutdown()
                emu.client = None

    routes: list[Route | Mount] = [
        Route(rules.SCALE_PATH, scale, methods=["POST"]),
        Route(rules.SCALE_PATH + "/{task_id}", poll, methods=["GET"]),
        Route(RESULTS_PREFIX + "/{name}", result, methods=["GET"]),
        Route(STATS_PATH, stats, methods=["GET"]),
        Route(EXPIRE_PATH, expire, methods=["POST"]),
        Route(DOWNLOADS_PATH, downloads, methods=["POST"]),
    ]
    if emu.config.serve_dir is not None:
        routes.append(Mount(FILES_PREFIX, StaticFiles(directory=emu.config.serve_dir)))
    routes.append(Route("/{path:path}", elsewhere, methods=ALL_METHODS))
    clock = Middleware(DateHeader, offset=emu.config.clock_offset)
    return Starlette(routes=routes, lifespan=lifespan, middleware=[clock])


class DateHeader:
    """Every reply's ``Date`` header, by the emulator's clock (``clock_offset`` seconds
    ahead of this machine's), as the gateway sends one by its own."""

    def __init__(self, app: ASGIApp, offset: float = 0.0) -> None:
        self.app, self.offset = app, offset

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def dated(message: Message) -> None:
            if message["type"] == "http.response.start":
                date = email.utils.formatdate(time.time() + self.offset, usegmt=True)
                message["headers"] = [*message.get("headers", []), (b"date", date.encode())]
            await send(message)

        await self.app(scope, receive, dated)
