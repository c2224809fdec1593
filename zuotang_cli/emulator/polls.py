"""``GET /tasks/visual/scale/{task_id}`` (a task's state) and paths the gateway lacks."""

from __future__ import annotations

import time
import uuid

from starlette.requests import Request
from starlette.responses import Response

from zuotang_cli.emulator import payloads, replies
from zuotang_cli.emulator.gatekeeper import admit, breaker_refusal, refuse
from zuotang_cli.emulator.state import EmulatorState
from zuotang_cli.emulator.tasks import STATE_PROCESSING


async def handle_poll(request: Request, emu: EmulatorState) -> Response:
    """Through the gateway's auth, flow control (if polls count) and breaker; never billed.

    An unknown or expired task id is the service's 404: HTTP 404 with
    ``{"status": 404, "message": "task not found", "data": null}`` and no X-Ca-Error-Code
    (the marketplace document lists 404 for "task id not set correctly", and its status
    table is HTTP and JSON status alike).
    """
    config = emu.config
    if not config.task_path:
        return await wrong_path(request, emu)
    arrival = time.monotonic()
    request_id = str(uuid.uuid4())
    emu.stats.polls += 1
    refusal = await admit(request, emu, arrival, count_qps=config.polls_count_qps)
    if refusal is None:
        refusal = breaker_refusal(emu, arrival)
    if refusal is not None:
        return await refuse(request, refusal, request_id)
    task = emu.tasks.get(request.path_params["task_id"], arrival)
    if task is None:
        return replies.json_reply(payloads.task_not_found(), request_id, 404)
    if task.reply is not None:
        return replies.json_reply(task.reply, request_id)
    data = payloads.running_data(task.task_id, STATE_PROCESSING, task.progress(arrival))
    return replies.json_reply(payloads.envelope(data, config.reply_shape), request_id)


async def wrong_path(request: Request, emu: EmulatorState) -> Response:
    """A path or method the gateway has no API for: modern 404 ``API Not Found``,
    classic 400 ``Invalid Url``. Matched before auth, as the gateway must find the API
    before it knows how to authenticate it."""
    return await refuse(request, emu.error("wrong-path"), str(uuid.uuid4()))
