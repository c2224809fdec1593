"""``zuotang emulator``: run the local stand-in for the remote API.

Its switches: docs/api-contract.md, "The emulator's switches".
"""

from __future__ import annotations

import errno

import typer

from zuotang_cli.errors import UsageError
from zuotang_cli.i18n import N_
from zuotang_cli.i18n import gettext as _

HELP = N_(
    "Run a faithful local stand-in for the Zuotang scale API: same path, auth, form and "
    "multipart bodies, JSON replies, state codes, gateway errors, strict QPS, quota, "
    "expiring result links and injectable faults. Prints its URL on one line."
)
EPILOG = N_(
    "Examples:\n\n\b\n"
    "  zuotang emulator --port 0 --serve samples/ --appcode demo\n"
    "  zuotang emulator --app-key demo-key:demo-secret --clock-offset 1200\n"
    "  zuotang emulator --qps 2 --latency 1-3 --faults 429=0.05,500=0.02 --seed 7\n"
    "  curl http://127.0.0.1:PORT/__emulator__/stats"
)


def emulator(
    host: str = typer.Option("127.0.0.1", help=N_("Address to listen on (loopback by default).")),
    port: int = typer.Option(8000, help=N_("Port to listen on; 0 picks a free one.")),
    qps: float = typer.Option(2.0, help=N_("Accepted calls per AppCode in any 1 s window.")),
    latency: str = typer.Option("1-2", help=N_("Per-call processing time range MIN-MAX, seconds.")),
    link_ttl: float = typer.Option(3600.0, help=N_("Seconds a result link stays valid.")),
    quota: int | None = typer.Option(
        None, help=N_("Billed calls (per --billing) allowed before 403 Quota Exhausted.")
    ),
    appcode: list[str] = typer.Option(
        [], help=N_("Accepted AppCode (repeatable). Default: any non-empty code is accepted.")
    ),
    app_key: list[str] = typer.Option(
        [],
        metavar="KEY:SECRET",
        help=N_(
            "Accept requests signed with this AppKey and AppSecret (repeatable); they are "
            "checked as the gateway does: 15-minute timestamps, nonces used once."
        ),
    ),
    clock_offset: float = typer.Option(
        0.0, help=N_("Seconds the emulator's clock is ahead of this machine's (negative: behind).")
    ),
    serve: str | None = typer.Option(None, help=N_("Serve this folder's files under /files/.")),
    faults: str = typer.Option(
        "", help=N_("Fault probabilities, e.g. 429=0.05,500=0.02,reset=0.01,breaker=0.01.")
    ),
    fault_caps: str = typer.Option(
        "", help=N_("Most times a fault kind is injected, e.g. breaker=1 (the breaker opens once).")
    ),
    seed: int | None = typer.Option(None, help=N_("Seed for latency and fault draws.")),
    fail_first: str | None = typer.Option(
        None, help=N_("A state fault (e.g. state-8) that every input's first call answers.")
    ),
    throttle_style: str = typer.Option(
        "429", help=N_("Throttle reply: 429 (newer gateway) or 403.")
    ),
    return_type: int = typer.Option(
        1, help=N_("1: result as a URL; 2: as base64 data; 3: a sync reply is the image itself.")
    ),
    cheap: bool = typer.Option(
        False, help=N_("Skip fetching and resizing; answer a small fixed image (benchmarks only).")
    ),
    slow_seconds: float = typer.Option(
        120.0, help=N_("How long a 'slow' fault holds a call before its gateway 504.")
    ),
    download_latency: float = typer.Option(
        0.0, help=N_("Seconds each result download waits before answering (slow storage).")
    ),
    gateway_style: str = typer.Option(
        "modern",
        help=N_(
            "modern: X-Ca-Error-Code on gateway errors; classic: message only, "
            "bad AppCode 400, throttling 403, wrong path 400 Invalid Url."
        ),
    ),
    refuse_with: str | None = typer.Option(
        None,
        help=N_(
            "Refuse every scale call with 'STATUS MESSAGE[|CODE]', "
            "e.g. '403 User Arrears' or '403 Quota Exhausted|B403MQ'."
        ),
    ),
    billing: str = typer.Option(
        "every-200",
        help=N_("every-200: every HTTP-200 reply is billed; success-only: state 1 only."),
    ),
    replies: str = typer.Option(
        "sync",
        help=N_("sync; async-unless-sync: a task id unless the body has sync=1; async: always."),
    ),
    task_path: bool = typer.Option(
        True, help=N_("Serve GET /tasks/visual/scale/{task_id} (polling a task).")
    ),
    polls_count_qps: bool = typer.Option(
        True, "--polls-count-qps/--polls-free", help=N_("Polls take a place in the QPS window.")
    ),
    body_accept: str = typer.Option(
        "both", help=N_("Body encodings the service reads: both, form or multipart.")
    ),
    gateway_multipart: bool = typer.Option(
        True,
        help=N_("Without it the gateway refuses multipart bodies (400 Unsupported Multipart)."),
    ),
    url_only: bool = typer.Option(
        False,
        "--url-only",
        help=N_(
            "The listing's default: only image_url is read (image_file and image_base64 "
            "refused as a missing image_url)."
        ),
    ),
    body_limit: int = typer.Option(
        8 * 1024 * 1024,
        help=N_("Bodies over this many bytes get 413 (8 MiB serverless; 33554432 dedicated)."),
    ),
    breaker_seconds: float = typer.Option(
        90.0, help=N_("How long the circuit breaker (fault 'breaker') stays open.")
    ),
    breaker_retry_after: bool = typer.Option(
        False, help=N_("The breaker's 503 carries Retry-After (seconds left).")
    ),
    reply_shape: str = typer.Option(
        "real",
        help=N_("real: replies as seen in the wild; doc: as the marketplace document shows."),
    ),
    link_style: str = typer.Option(
        "oss", help=N_("Result links: oss (Expires=), oss-v4 (x-oss-date/x-oss-expires) or plain.")
    ),
    orientation: str = typer.Option(
        "ignore",
        help=N_(
            "A source's EXIF orientation: ignore (the stored pixels) or apply (turned "
            "upright first)."
        ),
    ),
) -> None:
    try:
        from zuotang_cli.emulator import EmulatorConfig, serve_forever
    except ImportError as exc:
        raise UsageError(
            _(
                "the emulator needs the 'emulator' extra (pip install 'zuotang[emulator]'): "
                "{reason}"
            ).format(reason=exc)
        ) from None
    try:
        config = EmulatorConfig.from_options(
            qps=qps,
            latency=latency,
            link_ttl=link_ttl,
            quota=quota,
            appcodes=appcode,
            app_keys=app_key,
            clock_offset=clock_offset,
            serve_dir=serve,
            faults=faults,
            fault_caps=fault_caps,
            seed=seed,
            fail_first=fail_first,
            throttle_style=throttle_style,
            return_type=return_type,
            cheap=cheap,
            slow_seconds=slow_seconds,
            download_latency=download_latency,
            gateway_style=gateway_style,
            refuse_with=refuse_with,
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
    except ValueError as exc:
        raise UsageError(_("emulator: {reason}").format(reason=exc)) from None
    try:
        status = serve_forever(config, host=host, port=port)
    except OSError as exc:  # the port is taken, or the host is not ours: a usage problem
        reason = exc.strerror or exc
        if exc.errno == errno.EADDRINUSE:
            said = _("emulator: {reason}; pick another --port (0: any free port)")
        else:
            said = _("emulator: {reason}")
        raise UsageError(said.format(reason=reason)) from None
    raise typer.Exit(status)
