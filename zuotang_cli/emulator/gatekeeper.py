"""What the gateway checks before a call reaches the service: auth (an AppCode, or an
AppKey signature), QPS, the breaker."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from zuotang_cli.emulator import replies, signatures
from zuotang_cli.emulator.form import drain
from zuotang_cli.emulator.gateway import GatewayError
from zuotang_cli.emulator.state import EmulatorState

APPCODE_PREFIX = "APPCODE "


def appcode_of(header: str | None) -> str | None:
    """The code of an ``Authorization: APPCODE <code>`` header (exactly one space)."""
    if header is None or not header.startswith(APPCODE_PREFIX):
        return None
    code = header[len(APPCODE_PREFIX) :]
    return code if code and not any(ch.isspace() for ch in code) else None


async def admit(
    request: Request, emu: EmulatorState, arrival: float, *, count_qps: bool = True
) -> GatewayError | None:
    """Auth, then flow control (unless ``count_qps`` is False); the refusal, if any.

    A signed request's body is read whole here (the form's fields are signed); the
    service reads it again from Starlette's cache."""
    config = emu.config
    if signatures.is_signed(request):
        declared = request.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > config.body_limit:
            return emu.error("body-too-large")
        refusal = signatures.check(
            request, await request.body(), config.app_keys, emu.nonces, config.clock_offset
        )
        if refusal is not None:
            emu.stats.signature_refused[refusal.message.split(",")[0]] += 1
            return refusal
        emu.stats.signed += 1
        code: str | None = request.headers["x-ca-key"]
    else:
        code = appcode_of(request.headers.get("Authorization"))
        if code is None:
            return emu.error("missing-appcode")
        if config.appcodes and code not in config.appcodes:
            return emu.error("invalid-appcode")
    assert code is not None
    if not count_qps:
        return None
    emu.stats.arrivals.append(arrival)
    if not emu.flow.admit(code, arrival):
        emu.stats.throttled += 1
        return emu.error("throttled")
    emu.stats.accepted_arrivals.append(arrival)
    return None


def breaker_refusal(emu: EmulatorState, now: float) -> GatewayError | None:
    """The open breaker's 503 (counted), or None when it is closed."""
    refusal = emu.breaker.refusal(now)
    if refusal is not None:
        emu.stats.breaker_refused += 1
    return refusal


async def refuse(request: Request, error: GatewayError, request_id: str) -> Response:
    """Read what is left of the body, then answer the gateway's error."""
    await drain(request)
    return replies.gateway_reply(error, request_id)
