"""The Starlette application: routes of the API, the result links and the image host."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from zuotang_cli import rules
from zuotang_cli.emulator.fetch import make_client
from zuotang_cli.emulator.results import download
from zuotang_cli.emulator.scale import handle_scale
from zuotang_cli.emulator.state import EmulatorState

STATS_PATH = "/__emulator__/stats"
RESULTS_PREFIX = "/results"
FILES_PREFIX = "/files"


def create_app(emu: EmulatorState) -> Starlette:
    async def scale(request: Request) -> Response:
        return await handle_scale(request, emu)

    async def result(request: Request) -> Response:
        return await download(request, emu.results, emu.stats, emu.config.download_latency)

    async def stats(request: Request) -> Response:
        return JSONResponse(emu.stats.snapshot())

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with make_client() as client:
            emu.client = client
            try:
                yield
            finally:
                emu.client = None

    routes: list[Route | Mount] = [
        Route(rules.SCALE_PATH, scale, methods=["POST"]),
        Route(RESULTS_PREFIX + "/{name}", result, methods=["GET"]),
        Route(STATS_PATH, stats, methods=["GET"]),
    ]
    if emu.config.serve_dir is not None:
        routes.append(Mount(FILES_PREFIX, StaticFiles(directory=emu.config.serve_dir)))
    return Starlette(routes=routes, lifespan=lifespan)
