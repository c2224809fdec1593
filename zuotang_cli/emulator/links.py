"""Result links shaped like the object store's signed URLs, carrying their true expiry."""

from __future__ import annotations

import math
import secrets
import time
from dataclasses import dataclass
from urllib.parse import urlencode

LINK_STYLES = ("oss", "oss-v4", "plain")


@dataclass(frozen=True)
class SignedLink:
    query: str
    """``?...`` to append to the link (empty for ``plain``)."""
    ttl: float
    """Seconds from now until the link really expires (the store must use this)."""


def sign(style: str, ttl: float, now: float | None = None) -> SignedLink:
    """Sign a link valid ``ttl`` seconds from wall time ``now``.

    OSS signs with whole seconds: ``Expires`` (V1) and ``x-oss-date`` + ``x-oss-expires``
    (V4) are integers, so the link dies at ``floor(now) + ceil(ttl)``, which is what the
    URL says. ``plain`` keeps the exact ``ttl`` and says nothing.
    """
    now = time.time() if now is None else now
    if style == "plain":
        return SignedLink("", ttl)
    signed_at = math.floor(now)
    expires_in = math.ceil(ttl)
    expires_at = signed_at + expires_in
    signature = secrets.token_urlsafe(18)
    if style == "oss":
        params = {"OSSAccessKeyId": "emu", "Expires": str(expires_at), "Signature": signature}
    else:
        params = {
            "x-oss-signature-version": "OSS4-HMAC-SHA256",
            "x-oss-credential": "emu/oss/aliyun_v4_request",
            "x-oss-date": time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(signed_at)),
            "x-oss-expires": str(expires_in),
            "x-oss-signature": signature,
        }
    return SignedLink("?" + urlencode(params), max(expires_at - now, 0.0))
