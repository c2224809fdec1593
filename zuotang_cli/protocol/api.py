"""One call to the scale endpoint: building the request and classifying the reply.

Classification is a pure function of (HTTP status, headers, body) so that every branch of
docs/api-contract.md is tested without a server.  The gateway in front of the service answers some
errors itself with ``X-Ca-Error-*`` headers and no JSON; the service answers JSON whose
``status`` and ``data.state`` decide the outcome (HTTP 200 alone means nothing).
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import datetime
import enum
import errno
import functools
import json
import mimetypes
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from zuotang_cli.errors import one_line
from zuotang_cli.models import ErrorClass, InputItem
from zuotang_cli.protocol import rules, signing
from zuotang_cli.protocol.rules import Billing, Body, FileTransport
from zuotang_cli.protocol.signing import AppKey, Clock
from zuotang_cli.sanitize import Secrets
from zuotang_cli.status import ExitStatus


class Verdict(enum.Enum):
    SUCCESS = "success"
    PENDING = "pending"
    """Accepted as an asynchronous task: its result is fetched by task id."""
    RETRY = "retry"
    """Transient: try the same input again after a backoff."""
    THROTTLE = "throttle"
    """Over the QPS limit, or the gateway's circuit breaker is open: pause the whole run,
    then try again."""
    FINAL = "final"
    """This input cannot succeed as it is; do not call again for it in this run."""
    HALT = "halt"
    """The account or endpoint is unusable: start no further calls."""


BREAKER_PAUSE = 90.0
"""How long the gateway's circuit breaker (503 ``D503CB``) stays open."""


@dataclass(frozen=True)
class Reply:
    """What one attempt came back with, and what to do about it."""

    verdict: Verdict
    error_class: ErrorClass | None = None
    http_status: int | None = None
    status: int | None = None
    state: int | None = None
    message: str = ""
    task_id: str | None = None
    request_id: str | None = None
    image: str | None = None
    """The result: a link, base64 data, or (``result`` set) the reply's own bytes."""
    return_type: int | None = None
    created_at: int | None = None
    completed_at: int | None = None
    image_width: int | None = None
    image_height: int | None = None
    result: bytes | None = None
    """An HTTP-200 reply whose body is the image itself (``image/*``, return_type 3)."""
    retry_after: float | None = None
    halt_status: ExitStatus = ExitStatus.HALTED
    lost_after_sending: bool = False
    """The request went out whole and no complete reply came back (a read timeout, a
    dropped connection): the service may have answered the gateway, and billed it."""
    server_time: float | None = None
    """The gateway's clock (its ``Date`` header) when it refused a timestamp."""

    def billed(self, billing: Billing) -> bool:
        """Whether this reply is a paid call under ``billing``."""
        if billing is Billing.SUCCESS_ONLY:
            return self.verdict is Verdict.SUCCESS
        return self.http_status == 200


_AUTH_CODES = {"A400AC", "A401AC", "A400MA", "I403AA"}
_QUOTA_CODES = {"B403MQ": ErrorClass.QUOTA_EXHAUSTED, "B403ME": ErrorClass.QUOTA_EXPIRED}
_BREAKER_CODE = "D503CB"
_SIGNATURE_MESSAGES: tuple[tuple[str, ErrorClass, Verdict], ...] = (
    ("invalid signature", ErrorClass.SIGNATURE, Verdict.HALT),
    ("invalid appkey", ErrorClass.APP_KEY, Verdict.HALT),
    ("nonce used", ErrorClass.NONCE_USED, Verdict.RETRY),
    ("invalid timestamp", ErrorClass.CLOCK_SKEW, Verdict.RETRY),
    ("timestamp expired", ErrorClass.CLOCK_SKEW, Verdict.RETRY),
)
"""The gateway's refusals of a signed request (HTTP 400, ``X-Ca-Error-Message``):
docs/credentials.md.  A used nonce is sent again once with a fresh one; a timestamp
refused is a clock off, corrected by the gateway's ``Date``."""
_HALT_MESSAGES: tuple[tuple[str, ErrorClass, ExitStatus], ...] = (
    ("invalid appcode", ErrorClass.AUTH, ExitStatus.HALTED),
    ("missing appcode", ErrorClass.AUTH, ExitStatus.HALTED),
    ("quota exhausted", ErrorClass.QUOTA_EXHAUSTED, ExitStatus.HALTED),
    ("quota expired", ErrorClass.QUOTA_EXPIRED, ExitStatus.HALTED),
    ("arrears", ErrorClass.ARREARS, ExitStatus.HALTED),
    ("unauthorized", ErrorClass.AUTH, ExitStatus.HALTED),
    ("invalid url", ErrorClass.ENDPOINT_REFUSED, ExitStatus.USAGE),
    ("invalid param location", ErrorClass.ENDPOINT_REFUSED, ExitStatus.USAGE),
    ("api not found", ErrorClass.ENDPOINT_REFUSED, ExitStatus.USAGE),
    ("invalid domain", ErrorClass.ENDPOINT_REFUSED, ExitStatus.USAGE),
)
"""The gateway's own words for "this account or endpoint cannot work"; the classic gateway
sends them in ``X-Ca-Error-Message`` alone, with no ``X-Ca-Error-Code``."""
_UNSEEN_FIELDS = ("image_url", "image_file", "type", "param")
_UNSEEN_WORDS = ("required", "missing", "empty")


def _retry_after(headers: httpx.Headers) -> float | None:
    value = headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, min(float(value), 300.0))
    except ValueError:
        return None  # an HTTP date: rare from gateways; the backoff covers it


def _int_or_none(value: Any) -> int | None:
    """An integer field as real replies send it: ``1``, ``"1"``, ``1.0`` or ``"-8"``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
        return int(number) if number.is_integer() else None
    return None


def params_not_seen(message: str) -> bool:
    """The service's 400 saying a required field is missing: it did not read our body."""
    lowered = message.lower()
    return any(f in lowered for f in _UNSEEN_FIELDS) and any(w in lowered for w in _UNSEEN_WORDS)


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
        return Reply(Verdict.THROTTLE, ErrorClass.THROTTLED, **base)
    if 400 <= http_status < 500:
        for words, error_class, verdict in _SIGNATURE_MESSAGES:
            if words in lowered:
                return Reply(verdict, error_class, **base)
    if code == _BREAKER_CODE:
        pause = base.get("retry_after") or BREAKER_PAUSE
        return Reply(Verdict.THROTTLE, ErrorClass.CIRCUIT_OPEN, **{**base, "retry_after": pause})
    if "unsupported multipart" in lowered:
        return Reply(Verdict.FINAL, ErrorClass.UNSUPPORTED_MULTIPART, **base)
    if code in _QUOTA_CODES:
        return Reply(Verdict.HALT, _QUOTA_CODES[code], **base)
    if 400 <= http_status < 500:
        for words, error_class, exit_status in _HALT_MESSAGES:
            if words in lowered:
                return Reply(Verdict.HALT, error_class, halt_status=exit_status, **base)
    if code in _AUTH_CODES or http_status == 401:
        return Reply(Verdict.HALT, ErrorClass.AUTH, **base)
    if http_status == 403:
        return Reply(Verdict.HALT, ErrorClass.FORBIDDEN, **base)
    if http_status == 404:
        return Reply(
            Verdict.HALT, ErrorClass.ENDPOINT_NOT_FOUND, halt_status=ExitStatus.USAGE, **base
        )
    if http_status == 413:
        return Reply(Verdict.FINAL, ErrorClass.TOO_LARGE, **base)
    if http_status >= 500:
        return Reply(Verdict.RETRY, ErrorClass.SERVER_ERROR, **base)
    if http_status == 400:
        unseen = code is None and params_not_seen(message)
        return Reply(
            Verdict.FINAL, ErrorClass.PARAMS_NOT_SEEN if unseen else ErrorClass.HTTP_400, **base
        )
    return Reply(Verdict.FINAL, ErrorClass.HTTP_OTHER, **base)


def classify(http_status: int, headers: httpx.Headers, body: bytes) -> Reply:
    """Turn one HTTP reply of the scale endpoint (or of a task poll) into a :class:`Reply`."""
    request_id = headers.get("X-Ca-Request-Id")
    gateway_code = headers.get("X-Ca-Error-Code") or None
    gateway_message = headers.get("X-Ca-Error-Message", "")
    base: dict[str, Any] = {
        "http_status": http_status,
        "request_id": request_id,
        "retry_after": _retry_after(headers),
    }
    if http_status != 200 and "timestamp" in gateway_message.lower():
        base["server_time"] = signing.server_time(headers.get("Date"))
    content_type = headers.get("Content-Type", "").lower()
    if http_status == 200 and content_type.startswith("image/") and body:
        return Reply(Verdict.SUCCESS, None, result=body, image="", return_type=3, **base)
    try:
        payload = json.loads(body) if body else None
    except (ValueError, RecursionError):  # not JSON, or JSON nested beyond reason
        payload = None
    if not isinstance(payload, dict):
        message = gateway_message or _snippet(body) or httpx.codes.get_reason_phrase(http_status)
        if http_status == 200:
            message = f"reply is not JSON: {message}"
            return Reply(Verdict.FINAL, ErrorClass.BAD_REPLY, message=message, **base)
        return _by_http_status(http_status, message, gateway_code, {**base, "message": message})
    return _classify_json(payload, base, gateway_code)


def _classify_json(payload: dict[str, Any], base: dict[str, Any], code: str | None) -> Reply:
    status = _int_or_none(payload.get("status"))
    data = payload.get("data") if isinstance(payload.get("data"), dict) else {}
    assert isinstance(data, dict)
    # Real replies carry no ``message`` on success, and the reason of a failure in
    # ``data.state_detail``.
    message = str(payload.get("message") or data.get("state_detail") or "")
    fields: dict[str, Any] = {
        **base,
        "status": status,
        "message": message,
        "state": _int_or_none(data.get("state")),
        "task_id": str(data["task_id"]) if data.get("task_id") else None,
        "return_type": _int_or_none(data.get("return_type")),
        "created_at": _int_or_none(data.get("created_at")),
        "completed_at": _int_or_none(data.get("completed_at")),
        "image_width": _int_or_none(data.get("image_width")),
        "image_height": _int_or_none(data.get("image_height")),
    }
    http_status = base["http_status"]
    if http_status != 200 or status != 200:
        failing = http_status if http_status != 200 else (status or 0)
        if failing == 0:
            message = f"reply has no usable status ({payload.get('status')!r}): {message}"
            return Reply(Verdict.FINAL, ErrorClass.BAD_REPLY, **{**fields, "message": message})
        return _by_http_status(failing, message, code, fields)
    state = fields["state"]
    image = data.get("image")
    if state == rules.STATE_DONE:
        if isinstance(image, str) and image:
            return Reply(Verdict.SUCCESS, None, image=image, **fields)
        fields["message"] = "state 1 without image"
        return Reply(Verdict.FINAL, ErrorClass.BAD_REPLY, **fields)
    if (state is None or state in rules.UNFINISHED_STATES) and fields["task_id"]:
        return Reply(Verdict.PENDING, ErrorClass.UNFINISHED, **fields)
    if state in rules.RETRYABLE_STATES:
        return Reply(Verdict.RETRY, ErrorClass.for_state(state), **fields)
    if state in rules.FINAL_STATES:
        return Reply(Verdict.FINAL, ErrorClass.for_state(state), **fields)
    if state in rules.UNFINISHED_STATES:
        return Reply(Verdict.FINAL, ErrorClass.UNFINISHED, **fields)
    message = f"reply has an unknown state {data.get('state')!r}: {message}"
    return Reply(Verdict.FINAL, ErrorClass.BAD_REPLY, **{**fields, "message": message})


def link_expiry(url: str) -> float | None:
    """When a result link stops working, from its own signature, if it says.

    OSS links carry ``Expires=<unix time>`` (older signing) or ``x-oss-date`` plus
    ``x-oss-expires=<seconds>`` (V4 signing).
    """
    try:
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
    except ValueError:
        return None
    lowered = {name.lower(): value for name, value in query.items()}
    expires = _int_or_none(lowered.get("expires"))
    if expires is not None and expires > 0:
        return float(expires)
    seconds = _int_or_none(lowered.get("x-oss-expires"))
    stamp = lowered.get("x-oss-date", "")
    if seconds is None or not stamp:
        return None
    try:
        signed = datetime.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ")
    except ValueError:
        return None
    return signed.replace(tzinfo=datetime.timezone.utc).timestamp() + seconds


def _snippet(body: bytes, limit: int = 120) -> str:
    text = body[:limit].decode("utf-8", "replace").strip()
    return " ".join(text.split())


def network_reply(exc: Exception, *, sent: bool = False) -> Reply:
    """An attempt that got no complete HTTP reply (always worth another try).

    ``sent``: the whole request had gone out, so the service may have done (and billed)
    the work; a read timeout is the usual case.
    """
    error_class = (
        ErrorClass.TIMEOUT if isinstance(exc, httpx.TimeoutException) else (ErrorClass.NETWORK)
    )
    if _out_of_file_descriptors(exc):  # the client's own limit, not the network's fault
        error_class = ErrorClass.TOO_MANY_OPEN_FILES
    return Reply(
        Verdict.RETRY,
        error_class,
        message=one_line(exc),
        lost_after_sending=sent and not isinstance(exc, httpx.ConnectError),
    )


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
    body: Body = Body.FORM
    """How URL calls are encoded."""
    files: FileTransport = FileTransport.MULTIPART
    """How local files travel: multipart ``image_file``, form ``image_base64``, or a
    presigned link to the user's bucket as ``image_url`` (docs/uploads.md)."""
    app_key: AppKey | None = None
    """Set: every request is signed with it (docs/credentials.md), no AppCode sent."""
    clock: Clock = field(default_factory=Clock, compare=False)
    """The run's clock for signatures, corrected when the gateway says it is off."""

    @property
    def signed(self) -> bool:
        return self.app_key is not None

    def headers(self) -> dict[str, str]:
        if self.app_key is not None:  # Accept set explicitly: it is signed
            return {"Accept": "application/json"}
        return {"Authorization": f"APPCODE {self.appcode}", "Accept": "application/json"}

    def authorize(self, request: httpx.Request) -> str | None:
        """Sign ``request`` (a fresh timestamp and nonce) when signatures are used; the
        string signed, to show beside the gateway's when it refuses the signature."""
        if self.app_key is None:
            return None
        params = list(request.url.params.multi_items())
        body = request.read()
        content_type = request.headers.get("Content-Type", "")
        if signing.is_form(content_type):
            text = body.decode("utf-8", "replace")
            params += urllib.parse.parse_qsl(text, keep_blank_values=True)
        done = signing.sign(
            self.app_key,
            request.method,
            request.url.path,
            dict(request.headers),
            params,
            body,
            timestamp_ms=self.clock.millis(),
        )
        request.headers.update(done.headers)
        return done.text

    @functools.cached_property
    def secrets(self) -> Secrets:
        """What must never be shown or stored: the AppCode and the AppSecret (in any
        form)."""
        secret = self.app_key.secret if self.app_key is not None else None
        return Secrets([self.appcode, secret])

    def fields(self) -> dict[str, str]:
        # sync=1: the vendor's backend is asynchronous without it (docs/api-contract.md);
        # a synchronous listing ignores it.
        fields = {"type": self.type, "sync": "1"}
        if self.scale is not None:
            fields["scale_factor"] = str(self.scale)
        return fields

    def task_url(self, task_id: str) -> str:
        """Where an asynchronous task's result is fetched: ``GET {endpoint}/{task_id}``."""
        return f"{self.endpoint.rstrip('/')}/{urllib.parse.quote(task_id, safe='')}"

    def __repr__(self) -> str:  # never show the AppCode
        return (
            f"CallSpec(endpoint={self.endpoint!r}, type={self.type!r}, scale={self.scale!r}, "
            f"body={self.body.value!r}, files={self.files.value!r}, signed={self.signed})"
        )


MAX_REPLY_BYTES = 64 * 1024 * 1024
"""A reply larger than this is refused (a base64 result of a 15 MB image fits well)."""
MULTIPART_OVERHEAD = 1024
"""Bytes a multipart body adds to an uploaded file (boundaries, part headers, fields)."""


def build_request(
    client: httpx.AsyncClient,
    spec: CallSpec,
    item: InputItem,
    content: bytes | None = None,
    *,
    image_url: str | None = None,
) -> httpx.Request:
    """The POST for one input: form-urlencoded (or multipart, per ``spec.body``) for URLs
    and for a local file sent by its link (``image_url``: a presigned link to the user's
    bucket); for other files, per ``spec.files``, multipart ``image_file`` or a form with
    ``image_base64``."""
    headers = spec.headers()
    url = item.url if image_url is None else image_url
    if url is not None:
        return _fields_request(client, spec, {"image_url": url, **spec.fields()}, headers)
    assert item.path is not None and content is not None
    if spec.files is FileTransport.BASE64:
        fields = {"image_base64": base64.b64encode(content).decode("ascii"), **spec.fields()}
        return _fields_request(client, spec, fields, headers, form=True)
    mime = mimetypes.guess_type(item.path.name)[0] or "application/octet-stream"
    files = {"image_file": (item.path.name, content, mime)}
    return client.build_request(
        "POST", spec.endpoint, headers=headers, data=spec.fields(), files=files
    )


def _fields_request(
    client: httpx.AsyncClient,
    spec: CallSpec,
    fields: dict[str, str],
    headers: dict[str, str],
    *,
    form: bool = False,
) -> httpx.Request:
    """A body of text fields: multipart when ``spec.body`` says so (and not ``form``),
    else form-urlencoded."""
    if spec.body is Body.MULTIPART and not form:
        parts = {name: (None, value) for name, value in fields.items()}
        return client.build_request("POST", spec.endpoint, headers=headers, files=parts)
    body = urllib.parse.urlencode(fields)
    headers["Content-Type"] = "application/x-www-form-urlencoded; charset=UTF-8"
    return client.build_request("POST", spec.endpoint, headers=headers, content=body)


async def call_once(
    client: httpx.AsyncClient,
    spec: CallSpec,
    item: InputItem,
    on_sent: Callable[[], None] | None = None,
    *,
    deadline: float | None = None,
    on_body_sent: Callable[[], None] | None = None,
    image_url: str | None = None,
) -> Reply:
    """Send one attempt and classify it; network trouble becomes a RETRY reply.

    ``on_sent`` is called once the request headers are on the wire (the moment the
    gateway's flow control sees the call); the rate gate needs it.  ``on_body_sent``
    once the whole request is out (from then on the call may be billed).  ``deadline``:
    see :func:`_exchange`.  ``image_url``: a local file's presigned link, sent instead of
    its bytes.
    """
    content = None
    if item.path is not None and image_url is None:
        try:
            content = await asyncio.to_thread(item.path.read_bytes)
        except OSError as exc:
            message = f"cannot read: {exc.strerror}"
            return Reply(Verdict.FINAL, ErrorClass.UNREADABLE, message=message)
    request = build_request(client, spec, item, content, image_url=image_url)
    signed = spec.authorize(request)
    reply = await _exchange(client, request, _Progress(on_sent, on_body_sent), deadline)
    return scrub(beside_ours(reply, signed), spec.secrets)


async def poll_once(
    client: httpx.AsyncClient,
    spec: CallSpec,
    task_id: str,
    on_sent: Callable[[], None],
    *,
    deadline: float | None = None,
) -> Reply:
    """Fetch an asynchronous task once (``GET {endpoint}/{task_id}``, same auth)."""
    request = client.build_request("GET", spec.task_url(task_id), headers=spec.headers())
    signed = spec.authorize(request)
    reply = await _exchange(client, request, _Progress(on_sent), deadline)
    return scrub(beside_ours(reply, signed), spec.secrets)


def beside_ours(reply: Reply, signed: str | None) -> Reply:
    """A refused signature's message with the gateway's string to sign beside ours,
    newlines made visible, so the difference shows where the bug is."""
    if signed is None or reply.error_class is not ErrorClass.SIGNATURE:
        return reply
    return dataclasses.replace(reply, message=signature_mismatch(reply.message, signed))


def signature_mismatch(message: str, ours: str) -> str:
    """The gateway's refusal, then its string to sign and ours, each on one line."""
    theirs = signing.gateway_string(message)
    head = message.split(",", 1)[0].strip() or "Invalid Signature"
    gateway = signing.shown(theirs) if theirs is not None else "(not given)"
    same = " (the same string: the AppSecret is wrong)" if theirs == ours else ""
    return f"{head}: the gateway signed `{gateway}`; zuotang signed `{signing.shown(ours)}`{same}"


CONNECT_ALLOWANCE = 15.0
"""Seconds a request may take to get its first byte onto the wire (connecting, TLS)
before its deadline starts counting: the batch's connect timeout is at most this."""


async def _exchange(
    client: httpx.AsyncClient,
    request: httpx.Request,
    progress: _Progress,
    deadline: float | None = None,
) -> Reply:
    """One request and its whole reply, within ``deadline`` seconds (default: the
    client's read timeout, which is ``--timeout``) from its first byte sent to the last
    byte received.  httpx's timeouts bound each read alone, so a reply trickling a byte
    every few seconds would otherwise run for ever.  Past the deadline the request is
    abandoned: a TIMEOUT reply, possibly paid if the request had gone out whole."""
    request.extensions["trace"] = progress.trace
    limit = deadline if deadline is not None else client.timeout.read
    if limit is None:
        return await _send(client, request, progress)
    loop = asyncio.get_running_loop()
    started = loop.time()
    exchange = asyncio.ensure_future(_send(client, request, progress))
    try:
        while not exchange.done():
            now, sent = loop.time(), progress.sent_at
            due = (sent if sent is not None else started + CONNECT_ALLOWANCE) + limit
            if now >= due:
                break
            # Not sent yet: the first byte goes out now at the earliest, so the deadline
            # is ``limit`` away at least; wake then and look again.
            await asyncio.wait(
                {exchange}, timeout=due - now if sent is not None else min(due - now, limit)
            )
    except asyncio.CancelledError:
        exchange.cancel()
        raise
    if not exchange.cancel():  # it ended first
        return exchange.result()
    await asyncio.wait({exchange}, timeout=1.0)  # let it close the connection
    return Reply(
        Verdict.RETRY,
        ErrorClass.TIMEOUT,
        message=f"no complete reply within --timeout {limit:g} s of sending the request",
        lost_after_sending=progress.body_sent,
    )


async def _send(client: httpx.AsyncClient, request: httpx.Request, progress: _Progress) -> Reply:
    try:
        response = await client.send(request, stream=True)
        try:
            body = await _read_capped(response)
        finally:
            await response.aclose()
    except httpx.HTTPError as exc:
        return network_reply(exc, sent=progress.body_sent)
    except httpx.InvalidURL as exc:  # not an HTTPError: a redirect to nowhere, say
        return Reply(Verdict.FINAL, ErrorClass.BAD_REPLY, message=f"invalid URL: {exc}")
    if body is None:
        return Reply(
            Verdict.FINAL,
            ErrorClass.BAD_REPLY,
            http_status=response.status_code,
            request_id=response.headers.get("X-Ca-Request-Id"),
            message=f"reply larger than {MAX_REPLY_BYTES // (1024 * 1024)} MiB",
        )
    return classify(response.status_code, response.headers, body)


def scrub(reply: Reply, secrets: Secrets | str) -> Reply:
    """The reply with the secrets masked in every text of the server's that is shown or
    stored (a server may echo the Authorization header back, in its message, a header
    or an id; the AppCode must never reach a log, a report or the journal).  The result
    link keeps them: the download needs it as it is, and the batch masks it before
    storing it."""
    if isinstance(secrets, str):
        secrets = Secrets([secrets])
    texts = (reply.message, reply.task_id or "", reply.request_id or "")
    if not secrets or not any(secrets.found_in(text) for text in texts):
        return reply
    return dataclasses.replace(
        reply,
        message=secrets.mask(reply.message),
        task_id=secrets.mask_optional(reply.task_id),
        request_id=secrets.mask_optional(reply.request_id),
    )


class _Progress:
    """Follows a request onto the wire through httpx's ``trace`` extension."""

    def __init__(
        self,
        on_headers_sent: Callable[[], None] | None,
        on_body_sent: Callable[[], None] | None = None,
    ) -> None:
        self._on_headers_sent = on_headers_sent
        self._on_body_sent = on_body_sent
        self.sent_at: float | None = None
        """When the request's first bytes went out (the loop's clock)."""
        self.body_sent = False

    async def trace(self, event: str, info: Any) -> None:
        if event.endswith("send_request_headers.complete"):
            if self.sent_at is None:
                self.sent_at = asyncio.get_running_loop().time()
            if self._on_headers_sent:
                self._on_headers_sent()
        elif event.endswith("send_request_body.complete"):
            if not self.body_sent and self._on_body_sent:
                self._on_body_sent()
            self.body_sent = True


async def _read_capped(response: httpx.Response) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > MAX_REPLY_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def describe_exchange(response: httpx.Response, secrets: Secrets | None = None) -> str:
    """One line for --verbose: the request with its headers, and the reply's status and
    gateway headers; the AppCode masked wherever it is (the Authorization header, and
    ``secrets`` anywhere: a result link or a header a server built around it)."""
    request = response.request
    sent = "; ".join(f"{name}: {_masked(name, value)}" for name, value in request.headers.items())
    gateway = " ".join(
        f"{name}={value}"
        for name, value in response.headers.items()
        if name.lower().startswith("x-ca-") or name.lower() == "retry-after"
    )
    line = f"http: {request.method} {request.url} [{sent}] -> {response.status_code} {gateway}"
    _, _, secret = request.headers.get("Authorization", "").partition(" ")
    masks = Secrets([secret])
    line = masks.mask(line) if masks else line
    return secrets.mask(line) if secrets else line


def _masked(name: str, value: str) -> str:
    if name.lower() != "authorization":
        return value
    scheme, _, _ = value.partition(" ")
    return f"{scheme} ****"
