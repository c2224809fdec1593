"""The service behind the gateway: do the work of one call and end in a state."""

from __future__ import annotations

import asyncio
import base64
import time
from dataclasses import dataclass

from starlette.requests import Request

from zuotang_cli.emulator import links, payloads
from zuotang_cli.emulator.faults import LINK_FAULTS, STATE_FAULTS
from zuotang_cli.emulator.fetch import fetch_image
from zuotang_cli.emulator.form import ScaleCall
from zuotang_cli.emulator.imaging import CHEAP_RESULT, ImageRejected, Rendered, check_size, render
from zuotang_cli.emulator.state import EmulatorState
from zuotang_cli.protocol import rules


@dataclass
class Call:
    """One scale call in progress."""

    request: Request
    arrival: float
    """Monotonic time handling began, before the body was read."""
    request_id: str
    created_at: int
    task_id: str
    fault: str | None = None
    latency: float = 0.0


@dataclass(frozen=True)
class Outcome:
    state: int
    detail: str
    """What the state means, or why the call failed ("" on success)."""
    processed_at: int
    completed_at: int
    result: Rendered | None = None


async def process(
    call: Call, scale_call: ScaleCall, emu: EmulatorState, *, hangup: Request | None
) -> Outcome:
    """The work, timed as configured. A failure ends early when the client of ``hangup``
    leaves (pass it only when a failure is not billed); a success always runs to its end."""
    config = emu.config
    processed_at = int(time.time())

    def outcome(state: int, detail: str, result: Rendered | None = None) -> Outcome:
        return Outcome(state, detail, processed_at, int(time.time()), result)

    deadline = call.arrival + config.service_timeout
    if call.latency > config.service_timeout:
        await emu.pause_until(deadline, hangup)
        return outcome(-8, _timeout_message(config.service_timeout))
    done_at = call.arrival + call.latency
    if call.fault in STATE_FAULTS:
        emu.stats.faults[call.fault] += 1
        await emu.pause_until(done_at, hangup)
        state = STATE_FAULTS[call.fault]
        return outcome(state, rules.state_meaning(state))
    try:
        work = _render(scale_call, emu)
        result = await asyncio.wait_for(work, timeout=max(deadline - time.monotonic(), 0.0))
    except ImageRejected as exc:
        await emu.pause_until(done_at, hangup)
        return outcome(exc.state, exc.message)
    except asyncio.TimeoutError:
        return outcome(-8, _timeout_message(config.service_timeout))
    await emu.pause_until(done_at)  # the service finishes (and bills) even if the client left
    return outcome(rules.STATE_DONE, "", result)


def publish(
    call: Call, result: Rendered, emu: EmulatorState, base_url: str, return_type: int
) -> str:
    """Store a success's result; ``data.image``: its signed link, or base64 of it."""
    config = emu.config
    if call.fault in LINK_FAULTS:
        emu.stats.faults[call.fault] += 1
    ttl = 0.0 if call.fault == "expire" else config.link_ttl
    signed = links.sign(config.link_style, ttl)
    name = emu.results.add(
        result, ttl=signed.ttl, truncate=call.fault == "truncate", refuse=call.fault == "refuse"
    )
    if return_type == 2:
        return base64.b64encode(result.data).decode("ascii")
    return f"{base_url}results/{name}{signed.query}"


def final_payload(
    call: Call,
    scale_call: ScaleCall,
    outcome: Outcome,
    emu: EmulatorState,
    *,
    base_url: str,
    return_type: int,
) -> dict[str, object]:
    """The whole JSON reply of a finished call (its result published if it succeeded)."""
    shape = emu.config.reply_shape
    result = outcome.result
    image = publish(call, result, emu, base_url, return_type) if result is not None else ""
    data = payloads.final_data(
        shape=shape,
        task_id=call.task_id,
        kind=scale_call.kind,
        state=outcome.state,
        detail=outcome.detail,
        image=image,
        size=(result.width, result.height) if result is not None else None,
        return_type=return_type,
        times=(call.created_at, outcome.processed_at, outcome.completed_at),
    )
    emu.stats.by_state[outcome.state] += 1
    return payloads.envelope(data, shape, outcome.detail or payloads.SUCCESS)


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
    upright = emu.config.orientation == "apply"
    return await asyncio.to_thread(
        render, source, scale_call.kind, scale_call.requested, upright=upright
    )


def _timeout_message(seconds: float) -> str:
    return f"processing timed out (over {seconds:g} s)"
