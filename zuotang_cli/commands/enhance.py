"""``zuotang enhance``: the batch command (design.md §2).  Parses, wires, prints; the work
is done by :mod:`zuotang_cli.batch`."""

from __future__ import annotations

import enum
import sys
from pathlib import Path

import typer

from zuotang_cli.status import EXIT_CODES_HELP

HELP = (
    "Enhance / upscale images through the Zuotang API: URLs, list files ('-' for stdin), "
    "local images or folders, sent concurrently at the account's QPS. Results are saved "
    "in the output directory with a report of every input. stdout carries one line per "
    "saved image (its path), or one JSON record per input with --json. stderr has the "
    "progress, the first 20 problems and a summary: counts, paid calls, throttle replies, "
    "failures by reason. Safe to re-run: a journal in the output directory skips what is "
    "done and downloads what was paid for, so no image is paid for twice.\n\n" + EXIT_CODES_HELP
)
EPILOG = (
    "Examples:\n\n\b\n"
    "  export ZUOTANG_APPCODE=...   # your AppCode (Alibaba Cloud console)\n"
    "  zuotang enhance urls.txt --type clean --scale 2 -o out/\n"
    "  zuotang enhance photos/ --recursive --type face -o enhanced/ --report run.jsonl\n"
    "  grep -v thumb urls.txt | zuotang enhance - -o out --json | jq -r .output"
)


class ImageType(str, enum.Enum):
    clean = "clean"
    face = "face"


class BillingChoice(str, enum.Enum):
    every_200 = "every-200"
    success_only = "success-only"


class BodyChoice(str, enum.Enum):
    form = "form"
    multipart = "multipart"


class Scale(str, enum.Enum):
    auto = "auto"
    x1 = "1"
    x2 = "2"
    x4 = "4"


def enhance(
    inputs: list[str] = typer.Argument(
        ...,
        metavar="INPUT",
        help="http(s) URL, list file of URLs, '-' (list on stdin), image file or folder.",
        show_default=False,
    ),
    type_: ImageType | None = typer.Option(
        None, "--type", "-t", help="clean or face [default: clean].", show_default=False
    ),
    scale: Scale | None = typer.Option(
        None, "--scale", "-s", help="auto, 1, 2 or 4 [default: auto].", show_default=False
    ),
    output_dir: Path | None = typer.Option(
        None, "--output-dir", "-o", help="Where results go [default: out].", show_default=False
    ),
    report: Path | None = typer.Option(
        None, help="Also write the report here (.csv, .json or .jsonl)."
    ),
    recursive: bool = typer.Option(False, "--recursive", "-r", help="Descend into folders."),
    include: list[str] | None = typer.Option(
        None,
        "--include",
        metavar="GLOB",
        help="In folders, take only files matching this glob (name or relative path); repeatable.",
        show_default=False,
    ),
    exclude: list[str] | None = typer.Option(
        None,
        "--exclude",
        metavar="GLOB",
        help="In folders, leave out files matching this glob (name or relative path); repeatable.",
        show_default=False,
    ),
    appcode: str | None = typer.Option(
        None,
        help="AppCode; prefer ZUOTANG_APPCODE or 'zuotang config set-appcode' (a flag shows "
        "in ps).",
        show_default=False,
    ),
    endpoint: str | None = typer.Option(
        None, help="Scale endpoint URL [default: the marketplace URL].", show_default=False
    ),
    qps: float | None = typer.Option(
        None,
        min=0.01,
        help="Request starts per second: the account's limit [default: 2].",
        show_default=False,
    ),
    concurrency: int | None = typer.Option(
        None, min=1, help="Calls in flight [default: enough for qps at 30 s a call]."
    ),
    retries: int = typer.Option(4, min=0, help="Retries after a transient failure."),
    timeout: float = typer.Option(
        150.0,
        min=1.0,
        help="Seconds to wait for one call: well above the service's 30 s, since a call may "
        "queue first, and an abandoned call may still be billed.",
    ),
    paid_retries: int = typer.Option(
        1,
        "--paid-retries",
        min=0,
        help="Paid calls an input may make again after a billed failure (state -1/-2/-8, a "
        "timeout), over all runs.",
    ),
    billing: BillingChoice | None = typer.Option(
        None,
        help="Which replies are billed: every-200 (the marketplace's rule) or success-only "
        "[default: every-200].",
        show_default=False,
    ),
    body: BodyChoice | None = typer.Option(
        None,
        help="Encoding of URL calls: form or multipart [default: form, switched to multipart "
        "when the endpoint does not read form fields].",
        show_default=False,
    ),
    max_upload: float = typer.Option(
        8.0,
        "--max-upload",
        min=0.1,
        help="Largest request body in MB the gateway takes (32 on a dedicated gateway); "
        "bigger local files are refused unsent.",
    ),
    polls_free: bool = typer.Option(
        False,
        "--polls-free",
        help="Fetches of asynchronous tasks do not count against --qps (by default they "
        "pass the rate gate like calls).",
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Say what would be called, downloaded and skipped; no call."
    ),
    force: bool = typer.Option(False, "--force", help="Process again what is already done."),
    retry_failed: bool = typer.Option(
        False, "--retry-failed", help="Try again inputs that failed for good before."
    ),
    max_calls: int | None = typer.Option(
        None, "--max-calls", min=0, help="At most N paid calls in this run (a cost cap)."
    ),
    probe: bool = typer.Option(
        False, "--probe", help="Check remote images' format and size (ranged GET) before a call."
    ),
    wait_lock: bool = typer.Option(
        False, "--wait-lock", help="Wait for another run on the same output directory."
    ),
    json_out: bool = typer.Option(
        False,
        "--json",
        help="One JSON record per input on stdout, and the summary as one JSON object, the "
        "last line on stderr.",
    ),
    summary_json: Path | None = typer.Option(
        None,
        "--summary-json",
        help="Also write the summary (counts, paid calls, failures by reason) as JSON here.",
        show_default=False,
    ),
    stats_interval: float = typer.Option(
        60.0,
        "--stats-interval",
        min=0.0,
        help="When stderr is not a terminal (cron, logs): a progress line every N seconds; "
        "0 turns it off.",
    ),
    print0: bool = typer.Option(
        False, "--print0", help="Saved paths on stdout end with NUL, not newline (xargs -0)."
    ),
    gallery: bool = typer.Option(
        False, "--gallery", help="Also write OUTPUT_DIR/index.html: before/after, failures."
    ),
    quiet: bool = typer.Option(
        False, "--quiet", "-q", help="Only errors on stderr (and the --json summary)."
    ),
    verbose: bool = typer.Option(
        False,
        "--verbose",
        "-v",
        help="Every image, every problem (not only the first 20), files folders left out, "
        "HTTP exchanges (AppCode masked); tracebacks.",
    ),
) -> None:
    from zuotang_cli import cli, settings
    from zuotang_cli.api import Billing, Body
    from zuotang_cli.progress import write_stderr
    from zuotang_cli.run import EnhanceOptions, run_enhance

    cli.show_tracebacks = verbose
    if json_out and print0:
        raise typer.BadParameter("--json and --print0 do not go together", param_hint="--print0")
    resolved = settings.load(
        {
            "appcode": appcode,
            "endpoint": endpoint,
            "qps": qps,
            "type": type_.value if type_ else None,
            "scale": scale.value if scale else None,
            "output_dir": output_dir,
            "billing": billing.value if billing else None,
            "body": body.value if body else None,
        }
    )
    for warning in resolved.warnings:
        write_stderr(sys.stderr, f"zuotang: warning: {warning}\n")
    options = EnhanceOptions(
        inputs=inputs,
        type=resolved.type,
        scale=resolved.scale_factor,
        output_dir=resolved.output_dir,
        report=report,
        recursive=recursive,
        appcode=resolved.appcode,
        endpoint=resolved.endpoint,
        qps=resolved.qps,
        concurrency=concurrency,
        retries=retries,
        timeout=timeout,
        billing=Billing(resolved.billing),
        body=Body(resolved.body) if resolved.body else None,
        paid_retries=paid_retries,
        max_upload=int(max_upload * 1024 * 1024),
        polls_free=polls_free,
        json=json_out,
        print0=print0,
        gallery=gallery,
        stats_interval=stats_interval,
        summary_json=summary_json,
        include=tuple(include or ()),
        exclude=tuple(exclude or ()),
        dry_run=dry_run,
        force=force,
        retry_failed=retry_failed,
        max_calls=max_calls,
        wait_lock=wait_lock,
        probe=probe,
        quiet=quiet,
        verbose=verbose,
    )
    raise typer.Exit(run_enhance(options, stdin=sys.stdin.buffer, stdout=sys.stdout))
