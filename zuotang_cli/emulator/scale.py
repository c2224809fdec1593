"""``POST /tasks/visual/scale``: the gateway's checks, then the service's work."""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from dataclasses import dataclass
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from zuotang_cli import rules
from zuotang_cli.emulator import replies
from zuotang_cli.emulator.faults import GATEWAY_FAULTS, STATE_FAULTS, draw_fault
from zuotang_cli.emulator.fetch import fetch_image
from zuotang_cli.emulator.form import (
    BadRequest,
    BodyTooLarge,
    ScaleCall,
    drain,
    parse_call,
    read_body,
)
from zuotang_cli.emulator.imaging import CHEAP_RESULT, ImageRejected, Rendered, check_size, render
from zuotang_cli.emulator.replies import CutShortResponse, GatewayError
from zuotang_cli.emulator.state import EmulatorState

APPCODE_PREFIX = "APPCODE "


@dataclass
class Call:
    """One scale call in progress."""

    request: Request
    arrival: float
    """Monotonic time handling began, before the body was read."""
    request_id: str
    created_at: int
    fault: str | None = None
    latency: float = 0.0


async def handle_scale(request: Request, emu: EmulatorState) -> Response:
    """Entry point of the route: counts the call and records how it was answered."""
    arrival = time.monotonic()
    call = Call(request, arrival, str(uuid.uuid4()), int(time.time()))
    emu.stats.call_started()
    try:
        response = await _gateway(call, emu)
    except ClientDisconnect:  # the client left while sending its body: nobody to answer
        return Response(b"", status_code=499)
    finally:
        emu.stats.call_finished()
    if not isinstance(response, CutShortResponse):
        emu.stats.by_status[response.status_code] += 1
    return response


def appcode_of(header: str | None) -> str | None:
    """The code of an ``Authorization: APPCODE <code>`` header (exactly one space)."""
    if header is None or not header.startswith(APPCODE_PREFIX):
        return None
    code = header[len(APPCODE_PREFIX) :]
    return code if code and not any(ch.isspace() for ch in code) else None


async def _refuse(call: Call, error: GatewayError) -> Response:
    await drain(call.request)
    return replies.gateway_reply(error, call.request_id)


async def _gateway(call: Call, emu: EmulatorState) -> Response:
    """Auth, then flow control, then quota, like the Alibaba gateway."""
    config = emu.config
    code = appcode_of(call.request.headers.get("Authorization"))
    if code is None:
        return await _refuse(call, replies.MISSING_APPCODE)
    if config.appcodes and code not in config.appcodes:
        return await _refuse(call, replies.INVALID_APPCODE)
    emu.stats.arrivals.append(call.arrival)
    if not emu.flow.admit(code, call.arrival):
        emu.stats.throttled += 1
        return await _refuse(call, replies.THROTTLED[config.throttle_style])
    emu.stats.accepted_arrivals.append(call.arrival)
    if not emu.quota.hold():
        return await _refuse(call, replies.QUOTA_EXHAUSTED)
    # Draw now, in arrival order, so a seed gives the same story for the same calls.
    call.fault = draw_fault(config.faults, emu.rng)
    call.latency = emu.rng.uniform(*config.latency)
    billed = False
    try:
        response, billed = await _service(call, emu)
    finally:
        emu.quota.release(billed=billed)
    return response


async def _service(call: Call, emu: EmulatorState) -> tuple[Response, bool]:
    """Read and check the body, apply a fault if one was drawn, else do the work."""
    try:
        body = await read_body(call.request)
    except BodyTooLarge:
        return replies.gateway_reply(replies.BODY_TOO_LARGE, call.request_id), False
    try:
        scale_call = await parse_call(call.request, body)
    except BadRequest as exc:
        return replies.bad_request(str(exc), call.request_id), False
    if call.fault in GATEWAY_FAULTS:
        emu.stats.faults[call.fault] += 1
        return await _gateway_fault(call, emu), False
    return await _process(call, scale_call, emu)


async def _gateway_fault(call: Call, emu: EmulatorState) -> Response:
    config = emu.config
    if call.fault == "429":
        return replies.gateway_reply(replies.THROTTLED[config.throttle_style], call.request_id)
    if call.fault == "reset":
        return CutShortResponse(
            b'{"status":200,"message":"success","data":{"state":1,"progress":100}}',
            headers={replies.REQUEST_ID: call.request_id},
            media_type="application/json",
        )
    if call.fault == "slow":
        await emu.pause_until(call.arrival + config.slow_seconds, call.request)
        return replies.gateway_reply(replies.BACKEND_ERRORS["504"], call.request_id)
    assert call.fault is not None
    return replies.gateway_reply(replies.BACKEND_ERRORS[call.fault], call.request_id)


async def _process(call: Call, scale_call: ScaleCall, emu: EmulatorState) -> tuple[Response, bool]:
    config = emu.config
    deadline = call.arrival + config.service_timeout
    if call.latency > config.service_timeout:
        await emu.pause_until(deadline, call.request)
        return _failure(call, emu, -8, _timeout_message(config.service_timeout)), False
    done_at = call.arrival + call.latency
    if call.fault in STATE_FAULTS:
        emu.stats.faults[call.fault] += 1
        await emu.pause_until(done_at, call.request)
        state = STATE_FAULTS[call.fault]
        return _failure(call, emu, state, rules.state_meaning(state)), False
    try:
        work = _render(scale_call, emu)
        result = await asyncio.wait_for(work, timeout=max(deadline - time.monotonic(), 0.0))
    except ImageRejected as exc:
        await emu.pause_until(done_at, call.request)
        return _failure(call, emu, exc.state, exc.message), False
    except asyncio.TimeoutError:
        return _failure(call, emu, -8, _timeout_message(config.service_timeout)), False
    await emu.pause_until(done_at)  # the service finishes (and bills) even if the client left
    return _success(call, scale_call, result, emu), True


async def _render(scale_call: ScaleCall, emu: EmulatorState) -> Rendered:
    source = scale_call.upload
    if source is not None:
        check_size(len(source))
    if emu.config.cheap:
        return CHEAP_RESULT
    if source is None:
        assert scale_call.image_url is not None
        source = await fetch_image(
            emu.client, scale_call.image_url, timeout=emu.config.fetch_timeout
        )
    return await asyncio.to_thread(render, source, scale_call.kind, scale_call.requested)


def _timeout_message(seconds: float) -> str:
    return f"processing timed out (over {seconds:g} s)"


def _data(call: Call, emu: EmulatorState, *, state: int, image: str) -> dict[str, Any]:
    return {
        "state": state,
        "progress": 100 if state == rules.STATE_DONE else 0,
        "task_id": uuid.uuid4().hex,
        "image": image,
        "return_type": emu.config.return_type,
        "type": 1,
        "created_at": call.created_at,
        "completed_at": int(time.time()),
    }


def _failure(call: Call, emu: EmulatorState, state: int, message: str) -> Response:
    emu.stats.by_state[state] += 1
    payload = {"status": 200, "message": message, "data": _data(call, emu, state=state, image="")}
    return replies.json_reply(payload, call.request_id)


def _success(call: Call, scale_call: ScaleCall, result: Rendered, emu: EmulatorState) -> Response:
    config = emu.config
    if call.fault in ("truncate", "expire"):
        emu.stats.faults[call.fault] += 1
    ttl = 0.0 if call.fault == "expire" else config.link_ttl
    name = emu.results.add(result, ttl=ttl, truncate=call.fault == "truncate")
    if config.return_type == 1:
        image = f"{call.request.base_url}results/{name}"
    else:
        image = base64.b64encode(result.data).decode("ascii")
    emu.stats.bill(scale_call.billing_key)
    emu.stats.by_state[rules.STATE_DONE] += 1
    data = _data(call, emu, state=rules.STATE_DONE, image=image)
    return replies.json_reply({"status": 200, "message": "success", "data": data}, call.request_id)
