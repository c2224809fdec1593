"""``zuotang enhance``: the batch command (design.md §2).  Parses, wires, prints; the work
is done by :mod:`zuotang_cli.batch`."""

from __future__ import annotations

import enum
import os
import sys
from pathlib import Path

import typer

from zuotang_cli.status import EXIT_CODES_HELP

HELP = (
    "Enhance / upscale images through the Zuotang API: URLs, list files ('-' for stdin), "
    "local images or folders, sent concurrently at the account's QPS. Results are saved "
    "in the output directory with a report of every input. stdout carries one line per "
    "saved image (its path), or one JSON record per input with --json. Safe to re-run: a "
    "journal in the output directory skips what is done and downloads what was paid "
    "for, so no image is paid for twice.\n\n" + EXIT_CODES_HELP
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
    type_: ImageType = typer.Option(ImageType.clean, "--type", "-t", help="clean or face."),
    scale: Scale = typer.Option(Scale.auto, "--scale", "-s", help="auto, 1, 2 or 4."),
    output_dir: Path = typer.Option(Path("out"), "--output-dir", "-o", help="Where results go."),
    report: Path | None = typer.Option(
        None, help="Also write the report here (.csv, .json or .jsonl)."
    ),
    recursive: bool = typer.Option(False, "--recursive", "-r", help="Descend into folders."),
    appcode: str | None = typer.Option(
        None, help="AppCode (prefer the ZUOTANG_APPCODE environment variable).", show_default=False
    ),
    endpoint: str | None = typer.Option(
        None, help="Scale endpoint URL [env ZUOTANG_ENDPOINT; default: the marketplace URL]."
    ),
    qps: float = typer.Option(2.0, min=0.01, help="Request starts per second (account limit)."),
    concurrency: int | None = typer.Option(
        None, min=1, help="Calls in flight [default: enough for qps at 30 s a call]."
    ),
    retries: int = typer.Option(4, min=0, help="Retries after a transient failure."),
    timeout: float = typer.Option(45.0, min=1.0, help="Seconds to wait for one call."),
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
    wait_lock: bool = typer.Option(
        False, "--wait-lock", help="Wait for another run on the same output directory."
    ),
    json_out: bool = typer.Option(False, "--json", help="One JSON record per input on stdout."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only errors on stderr."),
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="Every image and HTTP exchange (AppCode masked); tracebacks."
    ),
) -> None:
    from zuotang_cli import cli
    from zuotang_cli.run import EnhanceOptions, run_enhance

    cli.show_tracebacks = verbose
    options = EnhanceOptions(
        inputs=inputs,
        type=type_.value,
        scale=None if scale is Scale.auto else int(scale.value),
        output_dir=output_dir,
        report=report,
        recursive=recursive,
        appcode=appcode or os.environ.get("ZUOTANG_APPCODE") or None,
        endpoint=endpoint or os.environ.get("ZUOTANG_ENDPOINT") or None,
        qps=qps,
        concurrency=concurrency,
        retries=retries,
        timeout=timeout,
        json=json_out,
        dry_run=dry_run,
        force=force,
        retry_failed=retry_failed,
        max_calls=max_calls,
        wait_lock=wait_lock,
        quiet=quiet,
        verbose=verbose,
    )
    raise typer.Exit(run_enhance(options, stdin=sys.stdin.buffer, stdout=sys.stdout))
