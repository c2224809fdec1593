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
    probe: bool = typer.Option(
        False, "--probe", help="Check remote images' format and size (ranged GET) before a call."
    ),
    wait_lock: bool = typer.Option(
        False, "--wait-lock", help="Wait for another run on the same output directory."
    ),
    json_out: bool = typer.Option(False, "--json", help="One JSON record per input on stdout."),
    print0: bool = typer.Option(
        False, "--print0", help="Saved paths on stdout end with NUL, not newline (xargs -0)."
    ),
    gallery: bool = typer.Option(
        False, "--gallery", help="Also write OUTPUT_DIR/index.html: before/after, failures."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only errors on stderr."),
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="Every image and HTTP exchange (AppCode masked); tracebacks."
    ),
) -> None:
    from zuotang_cli import cli, settings
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
        json=json_out,
        print0=print0,
        gallery=gallery,
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
