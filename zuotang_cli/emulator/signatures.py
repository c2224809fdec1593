"""The gateway's check of AppKey + AppSecret signatures, written apart from the client's
(:mod:`zuotang_cli.protocol.signing`) from the same documented rules
(docs/credentials.md), so that a mistake in one is caught by the other.

Its refusals are the gateway's: HTTP 400 with the reason in ``X-Ca-Error-Message`` and
no code, a wrong signature answered with the gateway's own string to sign, newlines
written as ``#``.  Timestamps are valid 15 minutes either side of the emulator's clock
(``--clock-offset`` moves it); a nonce is refused the second time it is seen.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Mapping
from urllib.parse import parse_qsl

from starlette.requests import Request

from zuotang_cli.emulator.gateway import GatewayError

VALID_FOR = 15 * 60.0
"""Seconds a timestamp is valid either side of the gateway's clock."""
OWN_LINES = ("accept", "content-md5", "content-type", "date")
NOT_IN_BLOCK = {*OWN_LINES, "x-ca-signature", "x-ca-signature-headers"}


def refusal(message: str) -> GatewayError:
    return GatewayError(400, message)


def is_signed(request: Request) -> bool:
    return "x-ca-key" in request.headers or "x-ca-signature" in request.headers


class NonceMemory:
    """Nonces seen within the last two validity windows (a timestamp older than that is
    refused anyway)."""

    def __init__(self) -> None:
        self._seen: dict[str, float] = {}

    def first_time(self, nonce: str, now: float) -> bool:
        if len(self._seen) > 10_000:
            self._seen = {n: t for n, t in self._seen.items() if t > now - 2 * VALID_FOR}
        if nonce in self._seen:
            return False
        self._seen[nonce] = now
        return True


def server_string(request: Request, body: bytes) -> str:
    """The string the gateway signs for ``request``, composed from what arrived."""
    headers = request.headers
    lines = [request.method.upper(), *(headers.get(name, "") for name in OWN_LINES)]
    listed = headers.get("x-ca-signature-headers", "")
    names = sorted({n.strip().lower() for n in listed.split(",") if n.strip()} - NOT_IN_BLOCK)
    lines += [f"{name}:{headers.get(name, '')}" for name in names]
    params: dict[str, str] = {}
    for name, value in parse_qsl(request.url.query, keep_blank_values=True):
        params.setdefault(name, value)
    content_type = headers.get("content-type", "").partition(";")[0].strip().lower()
    if content_type == "application/x-www-form-urlencoded":
        for name, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
            params.setdefault(name, value)
    tail = request.url.path
    if params:
        tail += "?" + "&".join(k + ("=" + params[k] if params[k] else "") for k in sorted(params))
    return "\n".join(lines) + "\n" + tail


def check(
    request: Request,
    body: bytes,
    keys: Mapping[str, str],
    nonces: NonceMemory,
    clock_offset: float,
) -> GatewayError | None:
    """The gateway's refusal of a signed ``request`` (its whole ``body`` read), or None
    when the AppKey, timestamp, Content-MD5, signature and nonce are all good."""
    headers = request.headers
    secret = keys.get(headers.get("x-ca-key", ""))
    if secret is None:
        return refusal("Invalid AppKey")
    if headers.get("x-ca-signature-method", "HmacSHA256") != "HmacSHA256":
        return refusal("Invalid Signature Method")
    now = time.time() + clock_offset
    stamp = headers.get("x-ca-timestamp", "")
    if not stamp.isdigit():
        return refusal("Invalid Timestamp")
    if abs(int(stamp) / 1000 - now) > VALID_FOR:
        return refusal("Timestamp Expired")
    md5 = headers.get("content-md5")
    if md5 is not None and md5 != base64.b64encode(hashlib.md5(body).digest()).decode():
        return refusal("Invalid Content-MD5")
    text = server_string(request, body)
    digest = hmac.new(secret.encode(), text.encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(
        base64.b64encode(digest).decode(), headers.get("x-ca-signature", "")
    ):
        return refusal(f"Invalid Signature, Server StringToSign:`{text.replace(chr(10), '#')}`")
    nonce = headers.get("x-ca-nonce", "")
    if not nonce:
        return refusal("Invalid Nonce")
    if not nonces.first_time(nonce, now):
        return refusal("Nonce Used")
    return None
