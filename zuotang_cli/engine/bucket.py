"""The user's own S3-compatible bucket (``--upload-to s3://BUCKET/PREFIX``): checked
before any paid call, objects put, presigned and deleted (docs/uploads.md).

The client is aiobotocore (botocore on the loop's aiohttp): it takes the endpoint, region
and credentials the way every S3 tool does (``AWS_*`` variables, ``~/.aws`` profiles,
``AWS_ENDPOINT_URL_S3``), signs links locally (a fresh one costs no request), and talks to
Alibaba Cloud OSS's S3-compatible endpoint, AWS S3, MinIO and COS alike.  It is the
``s3`` extra (``pip install 'zuotang[s3]'``), imported only when a bucket is used.

Nothing here shows a credential or a presigned link: errors name the bucket and what to
fix, and a link is only ever handed to the call that sends it.
"""

from __future__ import annotations

import asyncio
import contextlib
import mimetypes
import os
import urllib.parse
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zuotang_cli import reasons
from zuotang_cli.errors import TroubleError, UsageError, one_line
from zuotang_cli.i18n import N_
from zuotang_cli.i18n import gettext as _
from zuotang_cli.protocol import rules
from zuotang_cli.sanitize import Secrets

INSTALL_HINT = N_("uploads need the S3 client: pip install 'zuotang[s3]'")
"""Marked for the catalog: shown translated where the run ends on it."""
PROBE_NAME = ".zuotang-probe"
"""The empty object the check before the run puts under the prefix, and deletes."""
OSS_CREDENTIALS = ("ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET")
DEFAULT_UPLOADS_AT_ONCE = 4


@dataclass(frozen=True)
class Target:
    """Where uploads go: a bucket and a key prefix (no leading or trailing slash)."""

    bucket: str
    prefix: str = ""

    @classmethod
    def parse(cls, text: str) -> Target:
        """``s3://BUCKET/PREFIX``; :class:`UsageError` for anything else."""
        parts = urllib.parse.urlsplit(text)
        if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
            raise UsageError(
                _("--upload-to must be s3://BUCKET/PREFIX, not {text!r}").format(text=text)
            )
        return cls(parts.netloc, parts.path.strip("/"))

    def key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def shown(self, key: str | None = None) -> str:
        """``s3://bucket/key``: how an object is named in messages (never its link)."""
        return f"s3://{self.bucket}/{key if key is not None else self.prefix}"

    def __str__(self) -> str:
        return self.shown()


def object_name(digest: str, suffix: str) -> str:
    """An object's name under the prefix: the file's SHA-256 and its type's suffix (no
    file name, nor folder, reaches the bucket)."""
    clean = suffix.lower() if suffix[1:].isalnum() and len(suffix) <= 6 else ""
    return f"{digest}{clean}"


def _credentials(env: Mapping[str, str]) -> dict[str, str]:
    """Keys given to the client explicitly: the OSS variables when no ``AWS_*`` key is
    set (botocore's own chain, profiles included, reads the rest)."""
    key_id, secret = (env.get(name, "") for name in OSS_CREDENTIALS)
    if env.get("AWS_ACCESS_KEY_ID") or not (key_id and secret):
        return {}
    return {"aws_access_key_id": key_id, "aws_secret_access_key": secret}


class Bucket:
    """An open client on the target bucket (see the module); made by :func:`open_bucket`."""

    def __init__(self, client: Any, target: Target, secrets: Secrets) -> None:
        self._client = client
        self.target = target
        self.secrets = secrets
        """The credentials in use, masked out of any text shown."""

    async def check(self) -> None:
        """Prove the bucket, the credentials, the region and the right to write under the
        prefix before any paid call: an empty probe object put, then deleted; and that a
        link to it fits the service's 512 characters.  One line naming what to fix:
        :class:`UsageError` (exit 2) or, for an endpoint that does not answer,
        :class:`TroubleError` (exit 4)."""
        key = self.target.key(PROBE_NAME)
        try:
            await self._client.put_object(Bucket=self.target.bucket, Key=key, Body=b"")
            await self._client.delete_object(Bucket=self.target.bucket, Key=key)
        except Exception as exc:
            raise self.explain(exc) from None
        await self.link(key)

    async def holds(self, key: str) -> bool:
        """Whether the bucket still holds ``key`` (a lifecycle rule, or a person, may have
        removed what an earlier run put there)."""
        try:
            await self._client.head_object(Bucket=self.target.bucket, Key=key)
        except Exception as exc:
            code, status = _error_code(exc)
            if status == 404 or code in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    async def put(self, key: str, path: Path) -> int:
        """Upload the file at ``path`` as ``key``; its size.  The file is read in a thread
        (at most the service's 15 MB: an upload can be retried from memory)."""
        data = await asyncio.to_thread(path.read_bytes)
        await self._client.put_object(
            Bucket=self.target.bucket,
            Key=key,
            Body=data,
            ContentType=mimetypes.guess_type(path.name)[0] or "application/octet-stream",
        )
        return len(data)

    async def link(self, key: str) -> str:
        """A fresh presigned GET link to ``key`` (signed locally: no request)."""
        url: str = await self._client.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.target.bucket, "Key": key},
            ExpiresIn=rules.UPLOAD_LINK_TTL,
        )
        if len(url) > rules.MAX_URL_LENGTH:
            raise UsageError(
                reasons.BUCKET_LINKS_TOO_LONG.format(
                    where=self.target, length=len(url), limit=rules.MAX_URL_LENGTH
                )
            )
        return url

    async def delete(self, key: str) -> None:
        await self._client.delete_object(Bucket=self.target.bucket, Key=key)

    def explain(self, exc: BaseException) -> UsageError | TroubleError:
        """The one line a bucket failure gives (:meth:`check`, and later requests)."""
        where = str(self.target)
        code, status = _error_code(exc)
        if code in ("NoSuchBucket",) or (status == 404 and code in ("", "404", "NotFound")):
            return UsageError(reasons.BUCKET_MISSING.format(where=where))
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidClientTokenId"):
            return UsageError(reasons.BUCKET_CREDENTIALS_REFUSED.format(where=where, code=code))
        if code in ("AccessDenied", "Forbidden", "403", "AllAccessDisabled") or status == 403:
            return UsageError(reasons.BUCKET_DENIED.format(where=where))
        if code in ("PermanentRedirect", "AuthorizationHeaderMalformed", "301") or status == 301:
            return UsageError(reasons.BUCKET_ELSEWHERE.format(where=where))
        name = type(exc).__name__
        if name == "NoCredentialsError":
            return UsageError(reasons.BUCKET_NO_CREDENTIALS.format(where=where))
        if name in ("EndpointConnectionError", "ConnectTimeoutError", "ConnectionClosedError"):
            return TroubleError(reasons.BUCKET_UNREACHABLE.format(where=where))
        detail = self.secrets.mask(one_line(exc))
        return UsageError(reasons.BUCKET_REFUSED.format(where=where, detail=detail))


def _error_code(exc: BaseException) -> tuple[str, int | None]:
    """A botocore ClientError's code and HTTP status (empty, None for anything else)."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return "", None
    error = response.get("Error") or {}
    meta = response.get("ResponseMetadata") or {}
    status = meta.get("HTTPStatusCode")
    return str(error.get("Code") or ""), status if isinstance(status, int) else None


@contextlib.asynccontextmanager
async def open_bucket(
    target: Target, endpoint: str | None = None, env: Mapping[str, str] | None = None
) -> AsyncIterator[Bucket]:
    """A :class:`Bucket` on ``target`` for the life of the block.  ``endpoint``:
    ``--upload-endpoint`` (else ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``, read by
    botocore); the region from ``AWS_REGION`` (else botocore's own sources)."""
    try:
        from aiobotocore.session import get_session
        from botocore.config import Config
    except ImportError:
        raise UsageError(_(INSTALL_HINT)) from None
    env = os.environ if env is None else env
    given = _credentials(env)
    config = Config(
        signature_version="s3v4",
        s3={"addressing_style": _addressing(endpoint or env.get("AWS_ENDPOINT_URL_S3", ""))},
        retries={"max_attempts": 3, "mode": "standard"},
        connect_timeout=10,
        read_timeout=60,
    )
    session = get_session()
    try:
        credentials = await session.get_credentials()
    except Exception:  # a broken profile: the client says so on its first request
        credentials = None
    hidden = [given.get("aws_secret_access_key")]
    if credentials is not None:
        frozen = await credentials.get_frozen_credentials()
        hidden += [frozen.secret_key, frozen.token]
    client_context = session.create_client(
        "s3",
        region_name=env.get("AWS_REGION") or None,
        endpoint_url=endpoint or None,
        config=config,
        **given,
    )
    async with client_context as client:
        yield Bucket(client, target, Secrets(hidden))


def _addressing(endpoint: str) -> str:
    """OSS takes virtual-hosted addressing only; elsewhere botocore decides."""
    host = urllib.parse.urlsplit(endpoint).hostname or ""
    return "virtual" if host.endswith(".aliyuncs.com") else "auto"
