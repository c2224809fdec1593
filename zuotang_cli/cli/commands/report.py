"""``zuotang report OUT_DIR``: the full report of an output directory, from its journal."""

from __future__ import annotations

import enum
import sys
from pathlib import Path

import typer

from zuotang_cli.cli.environment import environment
from zuotang_cli.i18n import N_, ngettext
from zuotang_cli.i18n import gettext as _

HELP = N_(
    "Rebuild the full report of an output directory from its journal: one row per input "
    "ever run there, on stdout, with a summary by outcome and reason on stderr. What a "
    "cron user reads the next morning, even after a crash."
)
EPILOG = N_(
    "Examples:\n\n\b\n"
    "  zuotang report out/ > report.csv\n"
    "  zuotang report out/ --format jsonl | jq -r 'select(.outcome==\"failed\").input'\n"
    "  zuotang report out/ --format json -q"
)


class Format(str, enum.Enum):
    csv = "csv"
    json = "json"
    jsonl = "jsonl"


def report(
    ctx: typer.Context,
    output_dir: Path = typer.Argument(..., help=N_("The output directory of earlier runs.")),
    format_: Format = typer.Option(Format.csv, "--format", "-f", help=N_("csv, json or jsonl.")),
    quiet: bool = typer.Option(False, "--quiet", "-q", help=N_("No summary on stderr.")),
) -> None:
    from zuotang_cli.cli.progress import say
    from zuotang_cli.outputs.report import Summary, stream_report, summary_by_reason
    from zuotang_cli.store.journal import Journal
    from zuotang_cli.store.lock import in_use

    summary = Summary()
    reasons: list[str] = []
    with Journal.open(output_dir, create=False) as journal:
        writer = stream_report(format_.value, environment(ctx).stdout)
        with writer:
            for record in journal.records(run_alive=in_use(output_dir)):
                writer.write(record)
                summary.add(record)
                if not record.ok:
                    reasons.append(record.error_class or record.outcome.value)
    if not quiet:
        n = summary.total
        inputs = ngettext("{n} input: {counts}", "{n} inputs: {counts}", n)
        say(sys.stderr, inputs.format(n=n, counts=summary.line()))
        if reasons:
            by_reason = summary_by_reason(reasons)
            say(sys.stderr, _("not done, by reason: {reasons}").format(reasons=by_reason))
    raise typer.Exit(0)
