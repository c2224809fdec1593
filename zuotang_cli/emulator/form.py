"""Reading and checking the body of a scale call (form or multipart)."""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from typing import TypeAlias
from urllib.parse import parse_qsl, urlsplit

from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.types import Message, Receive

from zuotang_cli.protocol import rules

MAX_BODY_BYTES = 8 * 1024 * 1024
"""The gateway of a serverless (shared) instance refuses larger bodies with 413."""
DEDICATED_BODY_BYTES = 32 * 1024 * 1024
"""The limit of a dedicated gateway instance (``--body-limit 33554432``)."""
BODY_ACCEPTS = ("both", "form", "multipart")
FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
FACTORS = {"1": 1, "2": 2, "4": 4}


Fields: TypeAlias = dict[str, str | bytes]
"""Body fields by name (first wins); a file part is its bytes."""


class BadRequest(Exception):
    """A 400 from the service; the text is the JSON ``message``."""


class BodyTooLarge(Exception):
    """The gateway's 413."""


@dataclass(frozen=True)
class ScaleCall:
    kind: str
    requested: int | None
    """None for auto."""
    image_url: str | None = None
    upload: bytes | None = None
    sync: bool = False
    """The body carried ``sync=1`` (the vendor's "answer the finished result")."""

    @property
    def billing_key(self) -> str:
        if self.upload is not None:
            return "sha256:" + hashlib.sha256(self.upload).hexdigest()
        url = self.image_url or ""
        if "x-amz-signature=" in url.lower():  # a presigned link: signed anew each call
            return url.partition("?")[0]  # the object it names is the input
        return url


async def drain(request: Request) -> None:
    """Read and drop what is left of the body, so the client sees the reply."""
    try:
        async for _ in request.stream():
            pass
    except (ClientDisconnect, RuntimeError):  # gone, or already read
        pass


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The whole body. Raises BodyTooLarge (after draining) or ClientDisconnect."""
    declared = request.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limit:
        await drain(request)
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            await drain(request)
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def media_type(request: Request) -> str:
    return request.headers.get("Content-Type", "").partition(";")[0].strip().lower()


async def read_fields(request: Request, body: bytes, accept: str = "both") -> Fields:
    """The body's fields. A body in an encoding the service does not read (``accept``)
    gives no fields at all. Raises BadRequest for other content types or garbage."""
    kind = media_type(request)
    if kind not in (FORM, MULTIPART):
        raise BadRequest(f"Content-Type must be {FORM} or {MULTIPART}, not {kind or 'none'}")
    if accept != "both" and kind != (FORM if accept == "form" else MULTIPART):
        return {}
    if kind == MULTIPART:
        return await _multipart_fields(request, body)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("body is not valid UTF-8") from None
    fields: Fields = {}
    for name, value in parse_qsl(text, keep_blank_values=True):
        fields.setdefault(name, value)
    return fields


def wants_sync(fields: Fields) -> bool:
    return fields.get("sync") == "1"


async def _multipart_fields(request: Request, body: bytes) -> Fields:
    replay = Request(request.scope, _replay(body))
    try:
        form: FormData = await replay.form(max_files=4, max_fields=50)
    except HTTPException as exc:
        raise BadRequest(f"malformed multipart body: {exc.detail}") from None
    except Exception as exc:  # python-multipart raises assorted errors on garbage
        raise BadRequest(f"malformed multipart body: {exc}") from None
    fields: Fields = {}
    try:
        for name, value in form.multi_items():
            if name not in fields:
                fields[name] = await value.read() if isinstance(value, UploadFile) else value
    finally:
        await form.close()
    return fields


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


def check_fields(fields: Fields, *, url_only: bool = False) -> ScaleCall:
    """The call the fields ask for. Raises BadRequest, checking ``type`` first (as the
    marketplace document lists it), then ``scale_factor``, then the image source.

    ``url_only``: the listing's default, where file and base64 uploads are not enabled:
    ``image_file`` and ``image_base64`` are not read, so a call carrying only them is
    refused as one missing ``image_url``."""
    kind = _text(fields, "type")
    if kind is None or kind == "":
        raise BadRequest("type is required (clean or face)")
    if kind not in rules.TYPES:
        raise BadRequest(f"type must be clean or face, not {kind!r}")
    factor_text = _text(fields, "scale_factor") or ""
    if factor_text and factor_text not in FACTORS:
        raise BadRequest(f"scale_factor must be 1, 2 or 4, not {factor_text!r}")
    requested = FACTORS.get(factor_text)
    image_url = _text(fields, "image_url") or None
    upload = None if url_only else _upload(fields)
    if upload is not None and image_url is not None:
        raise BadRequest("give either image_url or image_file, not both")
    if upload is not None:
        return ScaleCall(kind, requested, upload=upload, sync=wants_sync(fields))
    if image_url is None:
        raise BadRequest("image_url is required")
    _check_url(image_url)
    return ScaleCall(kind, requested, image_url=image_url, sync=wants_sync(fields))


def _upload(fields: Fields) -> bytes | None:
    """The image sent in the body: a multipart ``image_file`` or ``image_base64``."""
    upload = fields.get("image_file")
    if upload is not None and not isinstance(upload, bytes):
        raise BadRequest("image_file must be a file part of a multipart/form-data body")
    encoded = _text(fields, "image_base64")
    if encoded:
        if upload is not None:
            raise BadRequest("give either image_file or image_base64, not both")
        try:
            return base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest("image_base64 is not valid base64") from None
    return upload


def _text(fields: Fields, name: str) -> str | None:
    value = fields.get(name)
    if isinstance(value, bytes):
        raise BadRequest(f"{name} must be a text field, not a file")
    return value


def _check_url(url: str) -> None:
    if len(url) > rules.MAX_URL_LENGTH:
        raise BadRequest(f"image_url is longer than {rules.MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
    except ValueError:
        raise BadRequest("image_url is not a valid URL") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise BadRequest("image_url must be an http(s) URL")
