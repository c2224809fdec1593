"""AppKey + AppSecret signatures, as the Alibaba Cloud API Gateway checks them.

Pure functions (no I/O) and one small mutable object, :class:`Clock`.  The rules are in
docs/credentials.md ("The gateway's signature rules"); in short:

- headers ``X-Ca-Key``, ``X-Ca-Timestamp`` (ms), ``X-Ca-Nonce`` (a fresh UUID for every
  request, retries included), ``X-Ca-Signature-Method: HmacSHA256``,
  ``X-Ca-Signature-Headers`` (the names of the signed headers, comma-joined) and
  ``X-Ca-Signature`` = base64(HMAC-SHA256(AppSecret, string to sign));
- the string to sign: ``METHOD``, ``Accept``, ``Content-MD5``, ``Content-Type``, ``Date``
  lines (each kept when empty), then the signed headers sorted by name as ``name:value``
  lines, then the path and, after ``?``, the query and form parameters merged, sorted by
  name, ``k=v`` joined by ``&`` (a name alone when its value is empty), unencoded;
- ``Content-MD5`` = base64(MD5(body)) only for a body that is not a form.

The secret never travels: only the signature, which is worthless for another request
(the nonce is remembered by the gateway and the timestamp is valid 15 minutes).
"""

from __future__ import annotations

import base64
import datetime
import email.utils
import hashlib
import hmac
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

KEY = "X-Ca-Key"
TIMESTAMP = "X-Ca-Timestamp"
NONCE = "X-Ca-Nonce"
METHOD = "X-Ca-Signature-Method"
SIGNED_HEADERS = "X-Ca-Signature-Headers"
SIGNATURE = "X-Ca-Signature"
HMAC_SHA256 = "HmacSHA256"
CONTENT_MD5 = "Content-MD5"
FORM = "application/x-www-form-urlencoded"
WINDOW = 15 * 60.0
"""Seconds either side of the gateway's clock a timestamp is accepted."""
NEVER_SIGNED = frozenset(
    name.lower()
    for name in ("Accept", CONTENT_MD5, "Content-Type", "Date", SIGNATURE, SIGNED_HEADERS)
)
"""Headers that have their own line, or are the signature itself: never in the header
block."""
SIGNED = (KEY, NONCE, METHOD, TIMESTAMP)
"""The headers zuotang signs."""


@dataclass(frozen=True)
class AppKey:
    """The AppKey and AppSecret of a purchased API (the secret never shown)."""

    key: str
    secret: str = field(repr=False)

    def __repr__(self) -> str:
        return f"AppKey({self.key!r}, secret=****)"


class Clock:
    """The local clock, corrected by the gateway's: timestamps are ``time.time()`` plus
    :attr:`offset`, which :meth:`correct` sets from a reply's ``Date`` header when the
    gateway refused a timestamp (as the AWS SDKs correct clock skew).  One per run,
    shared by every call of it."""

    def __init__(self, offset: float = 0.0) -> None:
        self.offset = offset
        self.corrections = 0
        self._lock = threading.Lock()

    def now(self) -> float:
        return time.time() + self.offset

    def millis(self) -> int:
        return int(self.now() * 1000)

    def correct(self, server_time: float, received_at: float | None = None) -> bool:
        """Take the offset of ``server_time`` (the reply's ``Date``) from the local time
        the reply came (``received_at``, default now).  True when the offset changed by
        more than the ``Date`` header's one-second grain (so a second refusal of a call
        signed before the first correction changes nothing)."""
        local = time.time() if received_at is None else received_at
        offset = server_time - local
        with self._lock:
            if abs(offset - self.offset) <= 2.0:
                return False
            self.offset = offset
            self.corrections += 1
            return True

    def __repr__(self) -> str:
        return f"Clock(offset={self.offset:+.0f} s)"


def server_time(date_header: str | None) -> float | None:
    """The time a ``Date`` header (RFC 7231) says, or None when absent or unreadable."""
    if not date_header:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(date_header)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:  # "-0000" or no zone: HTTP dates are GMT
        return parsed.replace(tzinfo=datetime.timezone.utc).timestamp()
    return parsed.timestamp()


def content_md5(body: bytes) -> str:
    return base64.b64encode(hashlib.md5(body).digest()).decode("ascii")


def is_form(content_type: str) -> bool:
    return content_type.partition(";")[0].strip().lower() == FORM


def resource(path: str, params: Iterable[tuple[str, str]]) -> str:
    """The last part of the string to sign: ``path?a=1&b&c=3`` (sorted, unencoded)."""
    merged: dict[str, str] = {}
    for name, value in params:
        merged.setdefault(name, value)
    if not merged:
        return path
    pairs = (name if not merged[name] else f"{name}={merged[name]}" for name in sorted(merged))
    return f"{path}?{'&'.join(pairs)}"


def string_to_sign(
    method: str,
    headers: Mapping[str, str],
    path: str,
    params: Iterable[tuple[str, str]],
    signed: Iterable[str],
) -> str:
    """The string to sign of a request whose ``headers`` (names in any case) are as
    sent, ``params`` its query and form parameters, ``signed`` the names of the headers
    signed."""
    lowered = {name.lower(): value for name, value in headers.items()}
    lines = [method.upper()]
    lines += [lowered.get(name, "") for name in ("accept", "content-md5", "content-type", "date")]
    names = sorted({name.strip().lower() for name in signed} - NEVER_SIGNED - {""})
    lines += [f"{name}:{lowered.get(name, '')}" for name in names]
    return "\n".join(lines) + "\n" + resource(path, params)


def signature(secret: str, text: str) -> str:
    digest = hmac.new(secret.encode("utf-8"), text.encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


@dataclass(frozen=True)
class Signed:
    """What signing a request adds to it, and the string that was signed."""

    headers: dict[str, str]
    text: str


def sign(
    app: AppKey,
    method: str,
    path: str,
    headers: Mapping[str, str],
    params: Iterable[tuple[str, str]],
    body: bytes,
    *,
    timestamp_ms: int,
    nonce: str | None = None,
) -> Signed:
    """The headers that sign a request (``headers``: those it already has, with its
    ``Accept`` and ``Content-Type``; ``params``: its query and, for a form body, the
    form's fields; ``body``: its bytes, for the Content-MD5 of a body not a form)."""
    added = {
        KEY: app.key,
        TIMESTAMP: str(timestamp_ms),
        NONCE: nonce or str(uuid.uuid4()),
        METHOD: HMAC_SHA256,
        SIGNED_HEADERS: ",".join(name.lower() for name in SIGNED),
    }
    content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
    if body and not is_form(content_type):
        added[CONTENT_MD5] = content_md5(body)
    text = string_to_sign(method, {**headers, **added}, path, params, SIGNED)
    added[SIGNATURE] = signature(app.secret, text)
    return Signed(added, text)


def gateway_string(message: str) -> str | None:
    """The gateway's own string to sign from its refusal ``Invalid Signature, Server
    StringToSign:`...```, where it writes each newline as ``#``; None when not there."""
    marker = "stringtosign:"
    at = message.lower().find(marker)
    if at < 0:
        return None
    text = message[at + len(marker) :].strip()
    if text.startswith("`"):
        text = text[1:]
        text = text[: text.rfind("`")] if "`" in text else text
    return text.replace("#", "\n")


def shown(text: str) -> str:
    """A string to sign on one line, its newlines written ``\\n``."""
    return text.replace("\r", "\\r").replace("\n", "\\n")
