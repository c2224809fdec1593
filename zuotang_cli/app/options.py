"""The options of one batch, declared once.

``zuotang enhance`` fills :class:`EnhanceOptions` from its flags (their defaults are read
from here), the Python API from its keywords, and both hand it to
:func:`zuotang_cli.app.session.prepare`.  A light module: the command line imports it at start.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from zuotang_cli.protocol import rules
from zuotang_cli.protocol.rules import DEFAULT_TIMEOUT, Billing, Body, FileTransport

MIN_QPS = 0.01
MAX_QPS = 10_000.0
"""No marketplace account allows more; beyond it a number is a typo."""
MIN_TIMEOUT = 1.0
MAX_TIMEOUT = 86_400.0
"""A day: longer waits (and --stats-interval) are typos, and ``inf`` overflows timers."""
MAX_UPLOAD = 1024 * 1024 * 1024
"""Bytes: far above any gateway's limit (32 MB on a dedicated instance)."""
MAX_CONCURRENCY = 100_000
DEFAULT_UPLOAD_CONCURRENCY = 4
"""Uploads to the user's bucket at once: a few keep the calls fed at any QPS the marketplace
sells (an upload takes well under the seconds a call takes)."""
MAX_COUNT = 1_000_000
"""Retries and paid retries of one input."""
DEFAULT_STATS_INTERVAL = 60.0
"""Seconds between two progress lines when stderr is not a terminal (cron, logs)."""


@dataclass(frozen=True)
class EnhanceOptions:
    inputs: list[str]
    type: str = "clean"
    scale: int | None = None
    output_dir: Path = Path("out")
    report: Path | None = None
    recursive: bool = False
    appcode: str | None = None
    app_key: str | None = None
    app_secret: str | None = None
    """From ``ZUOTANG_APP_SECRET`` or the config file only: never a flag."""
    auth: str | None = None
    """``appcode`` or ``signature``; None: signatures when the AppKey and AppSecret are
    set (docs/credentials.md)."""
    endpoint: str | None = None
    qps: float = rules.DEFAULT_QPS
    concurrency: int | None = None
    retries: int = 4
    timeout: float = DEFAULT_TIMEOUT
    billing: Billing = Billing.EVERY_200
    body: Body | None = None
    """None: form, switched to multipart when the endpoint does not read form fields."""
    send_files: FileTransport | None = None
    """How local files travel (docs/uploads.md); None: multipart ``image_file``, moved to
    the bucket when the endpoint refuses files in the body and ``upload_to`` is set."""
    upload_to: str | None = None
    """``s3://BUCKET/PREFIX``: the user's bucket for local files."""
    upload_endpoint: str | None = None
    """The bucket's S3 endpoint (None: ``AWS_ENDPOINT_URL_S3``, ``AWS_ENDPOINT_URL``, AWS)."""
    keep_uploads: bool = False
    """Leave uploaded objects in the bucket."""
    upload_concurrency: int = DEFAULT_UPLOAD_CONCURRENCY
    paid_retries: int = 1
    max_upload: int = rules.MAX_UPLOAD_BYTES
    polls_free: bool = False
    json: bool = False
    quiet: bool = False
    verbose: bool = False
    dry_run: bool = False
    force: bool = False
    retry_failed: bool = False
    max_calls: int | None = None
    wait_lock: bool = False
    probe: bool = False
    print0: bool = False
    gallery: bool = False
    stats_interval: float = DEFAULT_STATS_INTERVAL
    """Without a terminal on stderr: a progress line every so many seconds (0: none)."""
    summary_json: Path | None = None
    """Also write the summary as one JSON object to this file."""
    include: tuple[str, ...] = ()
    """Glob patterns a file found in a folder must match (one of them)."""
    exclude: tuple[str, ...] = ()
    """Glob patterns of files found in folders to leave out."""
    name: str | None = None
    """``--name TEMPLATE``: how results are named (None: the source's own name)."""
    format: str | None = None
    """``--format jpg|png|webp|same``: the result converted locally (None: as it came)."""
    quality: int | None = None
    """``--quality N`` (1-100) for JPEG and WebP results (None: 92)."""
    strip_gps: bool = False
    """Leave the source's GPS position out of the EXIF carried over."""

    def __repr__(self) -> str:  # never show the AppCode nor the AppSecret
        return f"EnhanceOptions(inputs={self.inputs!r}, output_dir={self.output_dir!r}, ...)"


DEFAULT_SETTLE = 2.0
"""Seconds a watched file's size and mtime must stay the same before it is taken."""
MAX_SETTLE = 3600.0


@dataclass(frozen=True)
class WatchOptions:
    """What ``zuotang watch`` adds to :class:`EnhanceOptions` (whose ``inputs`` are then
    the folders watched): docs/watch.md."""

    settle: float = DEFAULT_SETTLE
    poll: bool = False
    """List the folders every so often instead of the OS's events (network shares)."""
    once: bool = False
    """Take what the folders hold, then end (cron)."""
    move_done: Path | None = None
    """Move each original whose row is done (or done before) here."""
    max_calls_per_day: int | None = None
    """At most this many paid calls in one local calendar day; then calls wait."""
