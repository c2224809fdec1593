"""``POST /tasks/visual/scale``: the gateway's checks, the service's work, the bill."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from zuotang_cli.emulator import payloads, replies
from zuotang_cli.emulator.faults import GATEWAY_FAULTS
from zuotang_cli.emulator.form import (
    MULTIPART,
    BadRequest,
    BodyTooLarge,
    ScaleCall,
    check_fields,
    media_type,
    read_body,
    read_fields,
    wants_sync,
)
from zuotang_cli.emulator.gatekeeper import admit, appcode_of, breaker_refusal, refuse
from zuotang_cli.emulator.replies import CutShortResponse
from zuotang_cli.emulator.service import Call, final_payload, process
from zuotang_cli.emulator.state import EmulatorState
from zuotang_cli.emulator.tasks import Task
from zuotang_cli.protocol import rules

__all__ = ["appcode_of", "handle_scale"]


@dataclass(frozen=True)
class Answer:
    response: Response
    state: int | None = None
    """The reply's ``data.state`` (None: it has none, e.g. a task id only)."""
    billing_key: str | None = None
    """Set when the service itself answered HTTP 200 (what ``every-200`` bills)."""
    task: bool = False
    """An asynchronous task was started; it ends (and may be billed) later."""


async def handle_scale(request: Request, emu: EmulatorState) -> Response:
    """Entry point of the route: counts the call and records how it was answered."""
    arrival = time.monotonic()
    task_id = payloads.new_task_id(emu.config.reply_shape)
    call = Call(request, arrival, str(uuid.uuid4()), int(time.time()), task_id)
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


async def _gateway(call: Call, emu: EmulatorState) -> Response:
    """A configured refusal, auth, flow control, quota, the breaker; then the service."""
    config = emu.config
    if config.refusal is not None:
        return await refuse(call.request, config.refusal, call.request_id)
    refusal = await admit(call.request, emu, call.arrival)
    if refusal is not None:
        return await refuse(call.request, refusal, call.request_id)
    if not emu.quota.hold():
        return await refuse(call.request, emu.error("quota"), call.request_id)
    billed = task_bills_later = False
    try:
        refusal = breaker_refusal(emu, call.arrival)
        if refusal is not None:
            return await refuse(call.request, refusal, call.request_id)
        # Draw now, in arrival order, so a seed gives the same story for the same calls.
        call.fault = emu.draw_fault()
        call.latency = emu.rng.uniform(*config.latency)
        answer = await _service(call, emu)
        billed = _bill(answer, emu)
        task_bills_later = answer.task and config.billing == "success-only"
        return answer.response
    finally:
        if not task_bills_later:
            emu.quota.release(billed=billed)


def _bill(answer: Answer, emu: EmulatorState) -> bool:
    """Bill the reply if the rule says so: every service 200, or only state 1."""
    if answer.billing_key is None:
        return False
    if emu.config.billing == "every-200":
        failure = answer.state is not None and answer.state != rules.STATE_DONE
        emu.stats.bill(answer.billing_key, failure=failure)
        return True
    if answer.state == rules.STATE_DONE:
        emu.stats.bill(answer.billing_key)
        return True
    return False


async def _service(call: Call, emu: EmulatorState) -> Answer:
    """Read and check the body, apply a fault if one was drawn, else do the work."""
    config = emu.config
    try:
        body = await read_body(call.request, config.body_limit)
    except BodyTooLarge:
        return Answer(replies.gateway_reply(emu.error("body-too-large"), call.request_id))
    if not config.gateway_multipart and media_type(call.request) == MULTIPART:
        return Answer(replies.gateway_reply(emu.error("unsupported-multipart"), call.request_id))
    try:
        fields = await read_fields(call.request, body, config.body_accept)
        if wants_sync(fields):
            emu.stats.sync_requested += 1
        scale_call = check_fields(fields, url_only=config.url_only)
    except BadRequest as exc:
        return Answer(replies.bad_request(str(exc), call.request_id))
    if config.fail_first and scale_call.billing_key not in emu.inputs_seen:
        call.fault = config.fail_first  # this input's first call fails, whatever was drawn
    emu.inputs_seen.add(scale_call.billing_key)
    if call.fault in GATEWAY_FAULTS:
        assert call.fault is not None
        emu.stats.faults[call.fault] += 1
        return Answer(await _gateway_fault(call, emu))
    if call.fault == "async":
        emu.stats.faults[call.fault] += 1
        return _start_task(call, scale_call, emu)
    if config.replies == "async" or (config.replies == "async-unless-sync" and not scale_call.sync):
        return _start_task(call, scale_call, emu)
    hangup = None if config.billing == "every-200" else call.request
    outcome = await process(call, scale_call, emu, hangup=hangup)
    base_url = str(call.request.base_url)
    if outcome.result is not None and config.return_type == 3:
        emu.stats.by_state[outcome.state] += 1
        response = replies.image_reply(
            outcome.result.data, outcome.result.content_type, call.request_id
        )
    else:
        return_type = config.return_type
        payload = final_payload(
            call, scale_call, outcome, emu, base_url=base_url, return_type=return_type
        )
        response = replies.json_reply(payload, call.request_id)
    return Answer(response, outcome.state, scale_call.billing_key)


async def _gateway_fault(call: Call, emu: EmulatorState) -> Response:
    config = emu.config
    if call.fault == "429":
        return replies.gateway_reply(emu.error("throttled"), call.request_id)
    if call.fault == "403":
        return replies.gateway_reply(emu.error("throttled-403"), call.request_id)
    if call.fault == "breaker":
        emu.stats.breaker_refused += 1
        return replies.gateway_reply(emu.breaker.open(time.monotonic()), call.request_id)
    if call.fault == "reset":
        return CutShortResponse(
            b'{"status":200,"message":"success","data":{"state":1,"progress":100}}',
            headers={replies.REQUEST_ID: call.request_id},
            media_type="application/json",
        )
    if call.fault == "slow":
        await emu.pause_until(call.arrival + config.slow_seconds, call.request)
        return replies.gateway_reply(emu.error("504"), call.request_id)
    assert call.fault is not None
    return replies.gateway_reply(emu.error(call.fault), call.request_id)


def _start_task(call: Call, scale_call: ScaleCall, emu: EmulatorState) -> Answer:
    """The asynchronous service: answer the task id at once, work in the background."""
    task = Task(call.task_id, started=call.arrival, latency=call.latency)
    emu.tasks.add(task)
    emu.tasks.spawn(_run_task(call, scale_call, task, str(call.request.base_url), emu))
    payload = payloads.envelope(payloads.created_data(task.task_id), emu.config.reply_shape)
    return Answer(replies.json_reply(payload, call.request_id), None, scale_call.billing_key, True)


async def _run_task(
    call: Call, scale_call: ScaleCall, task: Task, base_url: str, emu: EmulatorState
) -> None:
    """Process a task; keep its final reply for polls; settle its bill.

    Binary results (return type 3) exist only for synchronous calls: a task gives a URL.
    """
    config = emu.config
    state: int | None = None
    try:
        outcome = await process(call, scale_call, emu, hangup=None)
        state = outcome.state
        return_type = 1 if config.return_type == 3 else config.return_type
        payload = final_payload(
            call, scale_call, outcome, emu, base_url=base_url, return_type=return_type
        )
        emu.tasks.finish(task, payload, time.monotonic())
    finally:
        if config.billing == "success-only":  # the POST held its quota slot until now
            billed = state == rules.STATE_DONE
            if billed:
                emu.stats.bill(scale_call.billing_key)
            emu.quota.release(billed=billed)
        elif state is not None and state != rules.STATE_DONE:
            emu.stats.billed_failures += 1  # billed when created, failed since
