"""One call to the scale endpoint: building the request and classifying the reply.

Classification is a pure function of (HTTP status, headers, body) so that every branch of
design.md §1 is tested without a server.  The gateway in front of the service answers some
errors itself with ``X-Ca-Error-*`` headers and no JSON; the service answers JSON whose
``status`` and ``data.state`` decide the outcome (HTTP 200 alone means nothing).
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import errno
import json
import mimetypes
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from zuotang_cli import rules
from zuotang_cli.models import InputItem
from zuotang_cli.status import ExitStatus


class Verdict(enum.Enum):
    SUCCESS = "success"
    RETRY = "retry"
    """Transient: try the same input again after a backoff."""
    THROTTLE = "throttle"
    """Over the QPS limit: slow the whole run, then try again."""
    FINAL = "final"
    """This input cannot succeed as it is; do not call again for it in this run."""
    HALT = "halt"
    """The account or endpoint is unusable: start no further calls."""


@dataclass(frozen=True)
class Reply:
    """What one attempt came back with, and what to do about it."""

    verdict: Verdict
    error_class: str | None = None
    http_status: int | None = None
    status: int | None = None
    state: int | None = None
    message: str = ""
    task_id: str | None = None
    request_id: str | None = None
    image: str | None = None
    return_type: int | None = None
    created_at: int | None = None
    completed_at: int | None = None
    retry_after: float | None = None
    halt_status: ExitStatus = ExitStatus.HALTED


_AUTH_CODES = {"A400AC", "A401AC", "A400MA", "I403AA"}
_QUOTA_MESSAGES = (
    ("quota exhausted", "quota-exhausted"),
    ("quota expired", "quota-expired"),
    ("arrears", "arrears"),
    ("appcode", "auth"),
    ("unauthorized", "auth"),
)
_QUOTA_CODES = {"B403MQ": "quota-exhausted", "B403ME": "quota-expired"}


def _retry_after(headers: httpx.Headers) -> float | None:
    value = headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, min(float(value), 300.0))
    except ValueError:
        return None  # an HTTP date: rare from gateways; the backoff covers it


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def _by_http_status(
    http_status: int, message: str, code: str | None, base: dict[str, Any]
) -> Reply:
    """Classify a non-success status (from the gateway or the service's JSON)."""
    lowered = message.lower()
    if (
        http_status == 429
        or (code or "").startswith("T429")
        or "throttl" in lowered
        or ("flow control" in lowered)
    ):
        return Reply(Verdict.THROTTLE, "throttled", **base)
    if http_status in (401, 403) or code in _AUTH_CODES or code in _QUOTA_CODES:
        error_class = _QUOTA_CODES.get(code or "")
        if error_class is None:
            error_class = next((c for m, c in _QUOTA_MESSAGES if m in lowered), None)
        if error_class is None:
            error_class = "auth" if http_status == 401 or code in _AUTH_CODES else "forbidden"
        return Reply(Verdict.HALT, error_class, **base)
    if http_status == 400 and code in _AUTH_CODES:
        return Reply(Verdict.HALT, "auth", **base)
    if http_status == 404:
        return Reply(Verdict.HALT, "endpoint-not-found", halt_status=ExitStatus.USAGE, **base)
    if http_status == 413:
        return Reply(Verdict.FINAL, "too-large", **base)
    if http_status >= 500:
        return Reply(Verdict.RETRY, f"server-{http_status}", **base)
    return Reply(Verdict.FINAL, f"http-{http_status}", **base)


def classify(http_status: int, headers: httpx.Headers, body: bytes) -> Reply:
    """Turn one HTTP reply of the scale endpoint into a :class:`Reply`."""
    request_id = headers.get("X-Ca-Request-Id")
    gateway_code = headers.get("X-Ca-Error-Code")
    gateway_message = headers.get("X-Ca-Error-Message", "")
    base: dict[str, Any] = {
        "http_status": http_status,
        "request_id": request_id,
        "retry_after": _retry_after(headers),
    }
    try:
        payload = json.loads(body) if body else None
    except (ValueError, RecursionError):  # not JSON, or JSON nested beyond reason
        payload = None
    if not isinstance(payload, dict):
        message = gateway_message or _snippet(body) or httpx.codes.get_reason_phrase(http_status)
        if http_status == 200:
            return Reply(
                Verdict.FINAL, "bad-reply", message=f"reply is not JSON: {message}", **base
            )
        return _by_http_status(http_status, message, gateway_code, {**base, "message": message})
    return _classify_json(payload, base, gateway_code)


def _classify_json(payload: dict[str, Any], base: dict[str, Any], code: str | None) -> Reply:
    status = _int_or_none(payload.get("status"))
    message = str(payload.get("message") or "")
    data = payload.get("data") if isinstance(payload.get("data"), dict) else {}
    assert isinstance(data, dict)
    fields: dict[str, Any] = {
        **base,
        "status": status,
        "message": message,
        "state": _int_or_none(data.get("state")),
        "task_id": str(data["task_id"]) if data.get("task_id") else None,
        "return_type": _int_or_none(data.get("return_type")),
        "created_at": _int_or_none(data.get("created_at")),
        "completed_at": _int_or_none(data.get("completed_at")),
    }
    http_status = base["http_status"]
    if http_status != 200 or status != 200:
        failing = http_status if http_status != 200 else (status or 0)
        if failing == 0:
            message = f"reply has no usable status ({payload.get('status')!r}): {message}"
            return Reply(Verdict.FINAL, "bad-reply", **{**fields, "message": message})
        return _by_http_status(failing, message, code, fields)
    state = fields["state"]
    image = data.get("image")
    if state == rules.STATE_DONE:
        if isinstance(image, str) and image:
            return Reply(Verdict.SUCCESS, None, image=image, **fields)
        return Reply(Verdict.FINAL, "bad-reply", **{**fields, "message": "state 1 without image"})
    if state in rules.RETRYABLE_STATES:
        return Reply(Verdict.RETRY, f"state{state}", **fields)
    if state in rules.FINAL_STATES:
        return Reply(Verdict.FINAL, f"state{state}", **fields)
    if state in rules.UNFINISHED_STATES:
        return Reply(Verdict.FINAL, "unfinished", **fields)
    message = f"reply has an unknown state {data.get('state')!r}: {message}"
    return Reply(Verdict.FINAL, "bad-reply", **{**fields, "message": message})


def _snippet(body: bytes, limit: int = 120) -> str:
    text = body[:limit].decode("utf-8", "replace").strip()
    return " ".join(text.split())


def network_reply(exc: Exception) -> Reply:
    """An attempt that got no HTTP reply at all (always worth another try)."""
    error_class = "timeout" if isinstance(exc, httpx.TimeoutException) else "network"
    if _out_of_file_descriptors(exc):  # the client's own limit, not the network's fault
        error_class = "too-many-open-files"
    text = str(exc) or type(exc).__name__
    return Reply(Verdict.RETRY, error_class, message=f"{type(exc).__name__}: {text}")


def _out_of_file_descriptors(exc: BaseException | None) -> bool:
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, OSError) and exc.errno in (errno.EMFILE, errno.ENFILE):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


@dataclass(frozen=True)
class CallSpec:
    """Everything one call needs except the input (the same for the whole batch)."""

    endpoint: str
    appcode: str
    type: str
    scale: int | None

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"APPCODE {self.appcode}", "Accept": "application/json"}

    def fields(self) -> dict[str, str]:
        fields = {"type": self.type}
        if self.scale is not None:
            fields["scale_factor"] = str(self.scale)
        return fields

    def __repr__(self) -> str:  # never show the AppCode
        return f"CallSpec(endpoint={self.endpoint!r}, type={self.type!r}, scale={self.scale!r})"


MAX_REPLY_BYTES = 64 * 1024 * 1024
"""A reply larger than this is refused (a base64 result of a 15 MB image fits well)."""


def build_request(
    client: httpx.AsyncClient, spec: CallSpec, item: InputItem, content: bytes | None = None
) -> httpx.Request:
    """The POST for one input: form-urlencoded for URLs, multipart ``image_file`` for files."""
    headers = spec.headers()
    if item.url is not None:
        body = urllib.parse.urlencode({"image_url": item.url, **spec.fields()})
        headers["Content-Type"] = "application/x-www-form-urlencoded; charset=UTF-8"
        return client.build_request("POST", spec.endpoint, headers=headers, content=body)
    assert item.path is not None and content is not None
    mime = mimetypes.guess_type(item.path.name)[0] or "application/octet-stream"
    files = {"image_file": (item.path.name, content, mime)}
    return client.build_request(
        "POST", spec.endpoint, headers=headers, data=spec.fields(), files=files
    )


async def call_once(
    client: httpx.AsyncClient,
    spec: CallSpec,
    item: InputItem,
    on_sent: Callable[[], None] | None = None,
) -> Reply:
    """Send one attempt and classify it; network trouble becomes a RETRY reply.

    ``on_sent`` is called once the request headers are on the wire (the moment the
    gateway's flow control sees the call); the rate gate needs it.
    """
    content = None
    if item.path is not None:
        try:
            content = await asyncio.to_thread(item.path.read_bytes)
        except OSError as exc:
            return Reply(Verdict.FINAL, "unreadable", message=f"cannot read: {exc.strerror}")
    request = build_request(client, spec, item, content)
    if on_sent is not None:
        request.extensions["trace"] = _on_headers_sent(on_sent)
    try:
        response = await client.send(request, stream=True)
        try:
            body = await _read_capped(response)
        finally:
            await response.aclose()
    except httpx.HTTPError as exc:
        return network_reply(exc)
    except httpx.InvalidURL as exc:  # not an HTTPError: a redirect to nowhere, say
        return Reply(Verdict.FINAL, "bad-reply", message=f"invalid URL: {exc}")
    if body is None:
        return Reply(
            Verdict.FINAL,
            "bad-reply",
            http_status=response.status_code,
            request_id=response.headers.get("X-Ca-Request-Id"),
            message=f"reply larger than {MAX_REPLY_BYTES // (1024 * 1024)} MiB",
        )
    return scrub(classify(response.status_code, response.headers, body), spec.appcode)


def scrub(reply: Reply, secret: str) -> Reply:
    """The reply with ``secret`` masked in the server's words (a server may echo the
    Authorization header back; the AppCode must never reach a log or a report)."""
    if not secret or secret not in reply.message:
        return reply
    return dataclasses.replace(reply, message=reply.message.replace(secret, "****"))


def _on_headers_sent(callback: Callable[[], None]) -> Callable[[str, Any], Awaitable[None]]:
    async def trace(event: str, info: Any) -> None:
        if event.endswith("send_request_headers.complete"):
            callback()

    return trace


async def _read_capped(response: httpx.Response) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > MAX_REPLY_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def describe_exchange(response: httpx.Response) -> str:
    """One line for --verbose: the request with its headers, the AppCode masked, and the
    reply's status and gateway headers."""
    request = response.request
    sent = "; ".join(f"{name}: {_masked(name, value)}" for name, value in request.headers.items())
    gateway = " ".join(
        f"{name}={value}"
        for name, value in response.headers.items()
        if name.lower().startswith("x-ca-") or name.lower() == "retry-after"
    )
    line = f"http: {request.method} {request.url} [{sent}] -> {response.status_code} {gateway}"
    _, _, secret = request.headers.get("Authorization", "").partition(" ")
    return line.replace(secret, "****") if secret else line


def _masked(name: str, value: str) -> str:
    if name.lower() != "authorization":
        return value
    scheme, _, _ = value.partition(" ")
    return f"{scheme} ****"
