"""``zuotang gallery``: a before / after page of an output directory.  The page is built
by :mod:`zuotang_cli.outputs.gallery`; this module parses and prints."""

from __future__ import annotations

import webbrowser
from pathlib import Path

import typer

from zuotang_cli.i18n import N_

HELP = N_(
    "Write OUT_DIR/index.html: every done image beside its input under a before / after "
    "slider, with both sizes and the factor, the failures with their reasons, and a summary. "
    "One self-contained file (the images are linked, not copied). Prints its path."
)
EPILOG = N_(
    "Examples:\n\n\b\n"
    "  zuotang gallery out/ --open\n"
    "  zuotang gallery enhanced/ --report run.jsonl\n"
    '  xdg-open "$(zuotang gallery out/)"'
)


def gallery(
    out_dir: Path = typer.Argument(
        ...,
        metavar="OUT_DIR",
        help=N_("An output directory of zuotang enhance."),
        show_default=False,
    ),
    report: Path | None = typer.Option(
        None, help=N_("The report to read [default: OUT_DIR/report.csv]."), show_default=False
    ),
    open_page: bool = typer.Option(False, "--open", help=N_("Open the page in the web browser.")),
) -> None:
    from zuotang_cli.outputs.gallery import gallery_from_report

    index = gallery_from_report(out_dir, report)
    typer.echo(str(index))
    if open_page:
        webbrowser.open(index.as_uri())
    raise typer.Exit(0)
