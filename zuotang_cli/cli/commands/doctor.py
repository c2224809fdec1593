"""``zuotang doctor``: check the credentials, the endpoint, the clock and the body encoding
without a paid call (docs/credentials.md).  The checks are :mod:`zuotang_cli.app.doctor`'s;
this module parses and prints the table."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer
from rich.cells import cell_len

from zuotang_cli.cli.commands.enhance import AuthChoice
from zuotang_cli.i18n import N_
from zuotang_cli.i18n import gettext as _

if TYPE_CHECKING:
    from zuotang_cli.app.doctor import Check

HELP = N_(
    "Check, before a batch spends anything, that the credentials are accepted, the "
    "endpoint path is right, the clock agrees with the gateway's, the body encoding is "
    "read and whether asynchronous tasks can be fetched, and --upload-to's bucket (set "
    "there or in the config). Every check uses requests the "
    "service refuses (not billed); --paid-check makes one paid call, said beforehand. "
    "Prints a table: check, result, what to do.\n\n"
    "Exit codes: 0 all well; 2 wrong endpoint or no credentials; 3 credentials refused; "
    "4 unreachable (the endpoint, or the bucket's); 1 the paid check's image failed."
)
EPILOG = N_(
    "Examples:\n\n\b\n"
    "  zuotang doctor\n"
    "  ZUOTANG_APP_KEY=203... zuotang doctor --auth signature\n"
    "  zuotang doctor --paid-check https://example.com/photo.jpg"
)
Opt = typer.Option


def doctor(
    appcode: Annotated[
        str | None,
        Opt(help=N_("As enhance --appcode (prefer ZUOTANG_APPCODE)."), show_default=False),
    ] = None,
    app_key: Annotated[
        str | None, Opt(help=N_("As enhance --app-key."), show_default=False)
    ] = None,
    auth: Annotated[
        AuthChoice | None, Opt(help=N_("As enhance --auth."), show_default=False)
    ] = None,
    endpoint: Annotated[
        str | None, Opt(help=N_("As enhance --endpoint."), show_default=False)
    ] = None,
    qps: Annotated[
        float | None, Opt(min=0.01, help=N_("As enhance --qps: the probes are spaced by it."))
    ] = None,
    upload_to: Annotated[
        str | None,
        Opt(
            metavar="s3://BUCKET/PREFIX",
            help=N_("As enhance --upload-to: also check the bucket (free)."),
            show_default=False,
        ),
    ] = None,
    upload_endpoint: Annotated[
        str | None, Opt(metavar="URL", help=N_("As enhance --upload-endpoint."), show_default=False)
    ] = None,
    paid_check: Annotated[
        str | None,
        Opt(
            metavar="IMAGE_URL",
            help=N_(
                "Also make ONE PAID call for this image URL: shows whether the listing "
                "answers synchronously, and that a real call works."
            ),
            show_default=False,
        ),
    ] = None,
) -> None:
    from zuotang_cli.app import credentials, settings
    from zuotang_cli.app.doctor import diagnose
    from zuotang_cli.cli.progress import say
    from zuotang_cli.engine.bucket import Target

    flags = {
        "appcode": appcode,
        "app_key": app_key,
        "auth": auth.value if auth is not None else None,
        "endpoint": endpoint,
        "qps": qps,
        "upload_to": upload_to,
        "upload_endpoint": upload_endpoint,
    }
    resolved = settings.load(flags)
    for warning in resolved.warnings:
        say(sys.stderr, _("warning: {warning}").format(warning=warning))
    chosen = credentials.choose(
        resolved.appcode, resolved.app_key, resolved.app_secret, resolved.auth
    )
    diagnosis = diagnose(
        chosen,
        resolved.endpoint,
        qps=resolved.qps,
        paid_check=paid_check,
        announce=lambda line: say(sys.stderr, line),
        bucket=Target.parse(resolved.upload_to) if resolved.upload_to else None,
        bucket_endpoint=resolved.upload_endpoint,
    )
    typer.echo(render(diagnosis.checks), nl=False)
    raise typer.Exit(diagnosis.exit_status)


RESULTS = {"ok": N_("ok"), "warn": N_("warn"), "FAIL": N_("FAIL"), "-": "-"}
"""A check's result as the table shows it."""


def render(checks: list[Check]) -> str:
    """The table: check, result (and what was seen), what to do; in the active language,
    its columns aligned by display width (a Chinese character takes two columns)."""
    rows = [
        (_(check.name), _(RESULTS.get(check.result.value, check.result.value))) for check in checks
    ]
    heading = (_("check"), _("result"))
    width = max((cell_len(name) for name, _result in [*rows, heading]), default=5)
    result_width = max(cell_len(result) for _name, result in [*rows, heading])
    lines = [
        f"{_pad(heading[0], width)}  {_pad(heading[1], result_width)}  "
        + _("what was seen / what to do")
    ]
    for check, (name, result) in zip(checks, rows, strict=True):
        line = f"{_pad(name, width)}  {_pad(result, result_width)}  {check.detail}"
        if check.advice:
            line += f" → {check.advice}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def _pad(text: str, width: int) -> str:
    return text + " " * (width - cell_len(text))
