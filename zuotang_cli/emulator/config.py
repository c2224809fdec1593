"""The emulator's settings: one frozen dataclass, built directly or from CLI strings."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from zuotang_cli.emulator.faults import (
    STATE_FAULTS,
    parse_caps,
    parse_faults,
    validate_caps,
    validate_faults,
)
from zuotang_cli.emulator.form import BODY_ACCEPTS, MAX_BODY_BYTES
from zuotang_cli.emulator.gateway import GATEWAY_STYLES, GatewayError, parse_refusal
from zuotang_cli.emulator.links import LINK_STYLES
from zuotang_cli.protocol import rules

THROTTLE_STYLES = ("429", "403")
RETURN_TYPES = (1, 2, 3)
BILLING_RULES = ("every-200", "success-only")
REPLY_MODES = ("sync", "async-unless-sync", "async")
REPLY_SHAPES = ("real", "doc")
ORIENTATIONS = ("ignore", "apply")
"""What the service does with a source's EXIF orientation: keeps the stored pixels as they
are (``ignore``, as Pillow and many pipelines do) or turns them upright first (``apply``,
as OpenCV's imread does); the real service's behaviour is not documented."""
CHOICES = {
    "gateway_style": GATEWAY_STYLES,
    "throttle_style": THROTTLE_STYLES,
    "billing": BILLING_RULES,
    "replies": REPLY_MODES,
    "body_accept": BODY_ACCEPTS,
    "reply_shape": REPLY_SHAPES,
    "link_style": LINK_STYLES,
    "orientation": ORIENTATIONS,
}


def parse_latency(text: str) -> tuple[float, float]:
    """``"1-2"`` → (1.0, 2.0); ``"0"`` or ``"1.5"`` → a fixed time. Raises ValueError."""
    low, sep, high = text.strip().partition("-")
    try:
        bounds = (float(low), float(high) if sep else float(low))
    except ValueError:
        raise ValueError(f"latency {text!r} is not SECONDS or MIN-MAX") from None
    return bounds


def parse_app_keys(texts: Iterable[str]) -> dict[str, str]:
    """``["KEY:SECRET", ...]`` → {KEY: SECRET}. Raises ValueError (never showing the
    secret)."""
    keys: dict[str, str] = {}
    for text in texts:
        key, sep, secret = text.partition(":")
        if not sep or not key.strip() or not secret.strip():
            raise ValueError("--app-key must be KEY:SECRET, both non-empty")
        keys[key.strip()] = secret.strip()
    return keys


@dataclass(frozen=True)
class EmulatorConfig:
    """How the emulator behaves; every field is checked on construction (ValueError)."""

    qps: float = rules.DEFAULT_QPS
    """Accepted calls per AppCode in any sliding one-second window."""
    latency: tuple[float, float] = (1.0, 2.0)
    """Processing time of a call, drawn uniformly from (min, max) seconds."""
    link_ttl: float = rules.LINK_TTL
    """Seconds a result link stays valid after the result is made."""
    quota: int | None = None
    """Billed calls (by the ``billing`` rule) allowed before 403 Quota Exhausted; None =
    unlimited."""
    appcodes: frozenset[str] = frozenset()
    """Accepted AppCodes; empty = any non-empty code."""
    app_keys: Mapping[str, str] = field(default_factory=dict, repr=False)
    """AppKey → AppSecret of the signed requests accepted (none: every signed request
    gets ``Invalid AppKey``)."""
    clock_offset: float = 0.0
    """Seconds the gateway's clock is ahead of this machine's (its ``Date`` headers and
    its check of signature timestamps)."""
    serve_dir: Path | None = None
    """Folder served under ``/files/`` (the emulator plays the image host)."""
    faults: Mapping[str, float] = field(default_factory=dict)
    """Fault kind → probability per call (see :mod:`zuotang_cli.emulator.faults`)."""
    fault_caps: Mapping[str, int] = field(default_factory=dict)
    """Fault kind → the most times it is injected in this run (``breaker=1``: the circuit
    breaker opens once); a draw of a kind whose cap is reached is no fault."""
    seed: int | None = None
    """Seed of the one RNG that draws latencies and faults."""
    fail_first: str | None = None
    """A failing state fault (``state-8``...) that every input's first call answers, in
    place of whatever fault was drawn: a paid failure each, then the real work."""
    throttle_style: str = "429"
    """``"429"`` (newer gateways, with X-Ca-Error-Code and Retry-After) or ``"403"``."""
    return_type: int = 1
    """1: ``data.image`` is a URL on the emulator; 2: base64 of the result bytes;
    3: a synchronous reply is the image itself (async tasks fall back to a URL)."""
    cheap: bool = False
    """Skip fetching and resizing; answer a small fixed PNG (benchmarks)."""
    slow_seconds: float = 120.0
    """How long a ``slow`` fault holds the call before its gateway 504."""
    service_timeout: float = rules.SERVICE_TIMEOUT
    """Processing longer than this is answered with state -8 at this time."""
    fetch_timeout: float = 10.0
    """Total time allowed to download ``image_url``."""
    download_latency: float = 0.0
    """Seconds each result download waits before its reply (a slow object store)."""
    gateway_style: str = "modern"
    """``modern`` (X-Ca-Error-Code on every gateway error, bad AppCode 401) or ``classic``
    (message only, bad AppCode 400, throttling 403, a wrong path 400 ``Invalid Url``)."""
    refuse_with: str | None = None
    """``"STATUS MESSAGE[|CODE]"``: the gateway refuses every scale call so."""
    billing: str = "every-200"
    """``every-200`` (every HTTP-200 reply of a POST is billed) or ``success-only``."""
    replies: str = "sync"
    """``sync``; ``async-unless-sync`` (a task id unless ``sync=1``); ``async`` (always)."""
    task_path: bool = True
    """Serve ``GET {SCALE_PATH}/{task_id}``; False: that path is unknown to the gateway."""
    polls_count_qps: bool = True
    """Polls take a place in the AppCode's QPS window like a POST."""
    body_accept: str = "both"
    """Body encodings the service reads: ``both``, ``form`` or ``multipart``."""
    gateway_multipart: bool = True
    """False: the gateway refuses multipart bodies (400 Unsupported Multipart)."""
    url_only: bool = False
    """The listing's default: only ``image_url`` is read; a call sending ``image_file`` or
    ``image_base64`` is refused as one missing ``image_url`` (400)."""
    body_limit: int = MAX_BODY_BYTES
    """Bodies over this many bytes get the gateway's 413 (8 MiB serverless, 32 MiB dedicated)."""
    breaker_seconds: float = 90.0
    """How long an opened circuit breaker (fault ``breaker``) refuses calls."""
    breaker_retry_after: bool = False
    """The breaker's 503 carries ``Retry-After`` (seconds left, rounded up)."""
    reply_shape: str = "real"
    """``real`` (as seen in real replies) or ``doc`` (as the marketplace document shows)."""
    link_style: str = "oss"
    orientation: str = "ignore"
    """``ignore`` or ``apply`` the source's EXIF orientation (:data:`ORIENTATIONS`)."""
    """``oss`` (``Expires=``), ``oss-v4`` (``x-oss-date`` + ``x-oss-expires``) or ``plain``."""
    refusal: GatewayError | None = field(default=None, init=False, compare=False, repr=False)
    """``refuse_with`` parsed."""

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "latency", (float(self.latency[0]), float(self.latency[1])))
        set_(self, "appcodes", frozenset(self.appcodes))
        set_(self, "app_keys", dict(self.app_keys))
        set_(self, "faults", validate_faults(self.faults))
        set_(self, "fault_caps", validate_caps(self.fault_caps))
        if self.serve_dir is not None:
            set_(self, "serve_dir", Path(self.serve_dir))
        if self.refuse_with is not None:
            set_(self, "refusal", parse_refusal(self.refuse_with))
        self._check()

    def _check(self) -> None:
        if self.fail_first is not None and self.fail_first not in STATE_FAULTS:
            raise ValueError(
                f"fail-first must be a state fault ({', '.join(STATE_FAULTS)}), "
                f"not {self.fail_first!r}"
            )
        low, high = self.latency
        if not (0.0 <= low <= high and math.isfinite(high)):
            raise ValueError(f"latency {low:g}-{high:g} must be 0 <= MIN <= MAX")
        if not (self.qps > 0 and math.isfinite(self.qps)):
            raise ValueError(f"qps must be a positive number, not {self.qps:g}")
        for name in (
            "link_ttl",
            "slow_seconds",
            "service_timeout",
            "fetch_timeout",
            "download_latency",
            "breaker_seconds",
        ):
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"{name.replace('_', '-')} must be >= 0, not {value:g}")
        if not math.isfinite(self.clock_offset):
            raise ValueError(f"clock offset must be a number of seconds, not {self.clock_offset}")
        if any(not key or not secret for key, secret in self.app_keys.items()):
            raise ValueError("an app key must be KEY:SECRET, both non-empty")
        if self.quota is not None and self.quota < 0:
            raise ValueError(f"quota must be >= 0, not {self.quota}")
        if any(not code or any(ch.isspace() for ch in code) for code in self.appcodes):
            raise ValueError("an AppCode must be non-empty and without spaces")
        if self.serve_dir is not None and not self.serve_dir.is_dir():
            raise ValueError(f"serve directory {str(self.serve_dir)!r} is not a folder")
        for name, choices in CHOICES.items():
            value = getattr(self, name)
            if value not in choices:
                shown = " or ".join(choices)
                raise ValueError(f"{name.replace('_', ' ')} must be {shown}, not {value!r}")
        if self.return_type not in RETURN_TYPES:
            raise ValueError(f"return type must be 1, 2 or 3, not {self.return_type!r}")
        if self.body_limit <= 0:
            raise ValueError(f"body limit must be a positive byte count, not {self.body_limit}")

    @classmethod
    def from_options(
        cls,
        *,
        qps: float = rules.DEFAULT_QPS,
        latency: str = "1-2",
        link_ttl: float = rules.LINK_TTL,
        quota: int | None = None,
        appcodes: Iterable[str] = (),
        app_keys: Iterable[str] = (),
        clock_offset: float = 0.0,
        serve_dir: str | Path | None = None,
        faults: str = "",
        fault_caps: str = "",
        seed: int | None = None,
        fail_first: str | None = None,
        throttle_style: str = "429",
        return_type: int = 1,
        cheap: bool = False,
        slow_seconds: float = 120.0,
        download_latency: float = 0.0,
        gateway_style: str = "modern",
        refuse_with: str | None = None,
        billing: str = "every-200",
        replies: str = "sync",
        task_path: bool = True,
        polls_count_qps: bool = True,
        body_accept: str = "both",
        gateway_multipart: bool = True,
        url_only: bool = False,
        body_limit: int = MAX_BODY_BYTES,
        breaker_seconds: float = 90.0,
        breaker_retry_after: bool = False,
        reply_shape: str = "real",
        link_style: str = "oss",
        orientation: str = "ignore",
    ) -> EmulatorConfig:
        """Build from command-line strings. Raises ValueError with a one-line message."""
        return cls(
            qps=qps,
            latency=parse_latency(latency),
            link_ttl=link_ttl,
            quota=quota,
            appcodes=frozenset(appcodes),
            app_keys=parse_app_keys(app_keys),
            clock_offset=clock_offset,
            serve_dir=Path(serve_dir) if serve_dir is not None else None,
            faults=parse_faults(faults),
            fault_caps=parse_caps(fault_caps),
            seed=seed,
            fail_first=fail_first,
            throttle_style=throttle_style,
            return_type=return_type,
            cheap=cheap,
            slow_seconds=slow_seconds,
            download_latency=download_latency,
            gateway_style=gateway_style,
            refuse_with=refuse_with or None,
            billing=billing,
            replies=replies,
            task_path=task_path,
            polls_count_qps=polls_count_qps,
            body_accept=body_accept,
            gateway_multipart=gateway_multipart,
            url_only=url_only,
            body_limit=body_limit,
            breaker_seconds=breaker_seconds,
            breaker_retry_after=breaker_retry_after,
            reply_shape=reply_shape,
            link_style=link_style,
            orientation=orientation,
        )
