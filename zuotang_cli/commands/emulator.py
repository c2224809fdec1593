"""``zuotang emulator``: run the local stand-in for the remote API (design.md §4)."""

from __future__ import annotations

import typer

from zuotang_cli.errors import UsageError

HELP = (
    "Run a faithful local stand-in for the Zuotang scale API: same path, auth, form and "
    "multipart bodies, JSON replies, state codes, gateway errors, strict QPS, quota, "
    "expiring result links and injectable faults. Prints its URL on one line."
)
EPILOG = (
    "Examples:\n\n\b\n"
    "  zuotang emulator --port 0 --serve samples/ --appcode demo\n"
    "  zuotang emulator --qps 2 --latency 1-3 --faults 429=0.05,500=0.02 --seed 7\n"
    "  curl http://127.0.0.1:PORT/__emulator__/stats"
)


def emulator(
    host: str = typer.Option("127.0.0.1", help="Address to listen on (loopback by default)."),
    port: int = typer.Option(8000, help="Port to listen on; 0 picks a free one."),
    qps: float = typer.Option(2.0, help="Accepted calls per AppCode in any 1 s window."),
    latency: str = typer.Option("1-2", help="Per-call processing time range MIN-MAX, seconds."),
    link_ttl: float = typer.Option(3600.0, help="Seconds a result link stays valid."),
    quota: int | None = typer.Option(
        None, help="Successful calls allowed before 403 Quota Exhausted."
    ),
    appcode: list[str] = typer.Option(
        [], help="Accepted AppCode (repeatable). Default: any non-empty code is accepted."
    ),
    serve: str | None = typer.Option(None, help="Serve this folder's files under /files/."),
    faults: str = typer.Option("", help="Fault probabilities, e.g. 429=0.05,500=0.02,reset=0.01."),
    seed: int | None = typer.Option(None, help="Seed for latency and fault draws."),
    throttle_style: str = typer.Option("429", help="Throttle reply: 429 (newer gateway) or 403."),
    return_type: int = typer.Option(1, help="1: result as a URL; 2: result as base64 data."),
    cheap: bool = typer.Option(
        False, help="Skip fetching and resizing; answer a small fixed image (benchmarks only)."
    ),
    slow_seconds: float = typer.Option(
        120.0, help="How long a 'slow' fault holds a call before its gateway 504."
    ),
    download_latency: float = typer.Option(
        0.0, help="Seconds each result download waits before answering (slow storage)."
    ),
) -> None:
    try:
        from zuotang_cli.emulator import EmulatorConfig, serve_forever
    except ImportError as exc:
        raise UsageError(
            f"the emulator needs the 'emulator' extra (pip install 'zuotang[emulator]'): {exc}"
        ) from None
    try:
        config = EmulatorConfig.from_options(
            qps=qps,
            latency=latency,
            link_ttl=link_ttl,
            quota=quota,
            appcodes=appcode,
            serve_dir=serve,
            faults=faults,
            seed=seed,
            throttle_style=throttle_style,
            return_type=return_type,
            cheap=cheap,
            slow_seconds=slow_seconds,
            download_latency=download_latency,
        )
    except ValueError as exc:
        raise UsageError(f"emulator: {exc}") from None
    raise typer.Exit(serve_forever(config, host=host, port=port))
