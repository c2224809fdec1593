"""Facts of the remote API that the client and the emulator share (docs/api-contract.md)."""

from __future__ import annotations

import enum

from zuotang_cli.i18n import N_

DEFAULT_ENDPOINT = "https://scale.market.alicloudapi.com/tasks/visual/scale"
SCALE_PATH = "/tasks/visual/scale"

TYPES = ("clean", "face")
SCALES = ("auto", "1", "2", "4")

MAX_URL_LENGTH = 512
MAX_FILE_BYTES = 15 * 1024 * 1024
MIN_LONG_SIDE = 10
MAX_LONG_SIDE = 4096
SERVICE_TIMEOUT = 30.0
"""The service answers state -8 when processing would take longer than this."""
DEFAULT_TIMEOUT = 150.0
"""The client's deadline for one call (``--timeout``).  The service gives up processing at
30 s, but a synchronous call may first wait in the vendor's queue (state 0), and public
workers wait 120-150 s for one.  A call the client abandons may still be answered (and
billed) upstream, with no task id left to fetch it by, so giving up early is the
expensive choice."""
LINK_TTL = 3600.0
"""Result links are valid for one hour."""
DEFAULT_QPS = 2.0

# Pillow format names the service accepts (jpg, jpeg, bmp, png, webp, tiff).
SUPPORTED_FORMATS = frozenset({"JPEG", "PNG", "BMP", "WEBP", "TIFF", "MPO"})

STATE_DONE = 1
STATE_MEANINGS: dict[int, str] = {
    1: N_("done"),
    0: N_("queued (not finished)"),
    2: N_("preparing (not finished)"),
    3: N_("waiting (not finished)"),
    4: N_("processing (not finished)"),
    -1: N_("processing failed"),
    -2: N_("result upload failed"),
    -3: N_("could not download image_url"),
    -5: N_("image over 15 MB"),
    -7: N_("invalid image (format or resolution)"),
    -8: N_("timed out (over 30 s)"),
}
"""The report keeps these English; a person is shown them translated (``_(meaning)``)."""
UNFINISHED_STATES = frozenset({0, 2, 3, 4})
RETRYABLE_STATES = frozenset({-1, -2, -8})
FINAL_STATES = frozenset({-3, -5, -7})


def state_meaning(state: int | None) -> str:
    """Human meaning of a ``data.state`` value ('' when there is none)."""
    if state is None:
        return ""
    return STATE_MEANINGS.get(state, f"unknown state {state}")


# Auto scale: long side in (lo, hi] gets the factor.
AUTO_SCALE_RANGES: tuple[tuple[int, int, int], ...] = (
    (10, 500, 4),
    (500, 1000, 2),
    (1000, 4096, 1),
)
# A requested factor applies only when the long side is in [lo, hi].
REQUESTED_SCALE_RANGES: dict[int, tuple[int, int]] = {1: (10, 4096), 2: (10, 1000), 4: (10, 500)}


def effective_factor(long_side: int, requested: int | None) -> int:
    """The factor the service applies to an image whose longer side is ``long_side``.

    ``requested`` is None for auto.  A requested factor outside its documented range is
    silently not applied (factor 1); so is auto outside every range (a long side of 10).
    """
    if requested is None:
        for lo, hi, factor in AUTO_SCALE_RANGES:
            if lo < long_side <= hi:
                return factor
        return 1
    lo, hi = REQUESTED_SCALE_RANGES[requested]
    return requested if lo <= long_side <= hi else 1


# The vendor's own document puts the auto-scale (and requested-factor) limits at 512 and
# 1024 px where the marketplace's says 500 and 1000 (docs/api-contract.md, "Scale factors").
UNCERTAIN_BANDS: dict[int | None, tuple[tuple[int, int], ...]] = {
    None: ((500, 512), (1000, 1024)),
    2: ((1000, 1024),),
    4: ((500, 512),),
    1: (),
}


def factor_uncertain(long_side: int, requested: int | None) -> bool:
    """Whether the two API documents disagree on the factor for this long side."""
    return any(lo < long_side <= hi for lo, hi in UNCERTAIN_BANDS.get(requested, ()))


class Billing(str, enum.Enum):
    """Which replies the marketplace bills (docs/api-contract.md, "Billing": "正常请求计费")."""

    EVERY_200 = "every-200"
    """Every HTTP-200 reply, whatever its ``data.state`` (the marketplace's rule)."""
    SUCCESS_ONLY = "success-only"
    """Only replies with a result (for sellers that bill successes alone)."""


class Body(str, enum.Enum):
    """How the fields of a URL call are encoded (local files: :class:`FileTransport`)."""

    FORM = "form"
    MULTIPART = "multipart"


class FileTransport(str, enum.Enum):
    """How a local file travels to the service (docs/uploads.md)."""

    MULTIPART = "multipart"
    """The file's bytes as the multipart field ``image_file``."""
    BASE64 = "base64"
    """The file's bytes as the form field ``image_base64`` (sellers who enabled it)."""
    BUCKET = "bucket"
    """Uploaded to the user's own S3-compatible bucket; its presigned link sent as
    ``image_url`` (the one way every listing takes)."""


UPLOAD_LINK_TTL = 3600
"""Seconds a presigned link to an uploaded file lives (at least 15 minutes: the service
fetches it within 10 s of the call, but a call may wait for the rate gate, a throttle or
a retry first).  A fresh link is signed for every attempt."""


MAX_UPLOAD_BYTES = 8 * 1024 * 1024
"""The largest request body the gateway takes on shared (serverless) instances; dedicated
instances take 32 MB (``--max-upload``)."""
