"""Command-line entry point: parses, dispatches, and maps errors to exit codes.

The commands live one per module in :mod:`zuotang_cli.cli.commands`; this module only wires
them together and is the single boundary where exceptions become exit codes.
"""

from __future__ import annotations

import contextlib
import os
import sys
import traceback
from collections.abc import Sequence
from typing import NoReturn

import typer

from zuotang_cli import __version__
from zuotang_cli.cli.commands import config as config_cmd
from zuotang_cli.cli.commands import doctor as doctor_cmd
from zuotang_cli.cli.commands import emulator as emulator_cmd
from zuotang_cli.cli.commands import enhance as enhance_cmd
from zuotang_cli.cli.commands import gallery as gallery_cmd
from zuotang_cli.cli.commands import report as report_cmd
from zuotang_cli.cli.commands import watch as watch_cmd
from zuotang_cli.cli.environment import Environment
from zuotang_cli.cli.progress import say, write_stderr
from zuotang_cli.errors import ZuotangError
from zuotang_cli.sanitize import visible
from zuotang_cli.status import EXIT_CODES_HELP, ExitStatus

app = typer.Typer(
    name="zuotang",
    help=(
        "Batch client for the Zuotang (佐糖) photo clarity / upscale API "
        "on the Alibaba Cloud marketplace.\n\n" + EXIT_CODES_HELP
    ),
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"zuotang {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version and exit."
    ),
) -> None:
    """Batch client for the Zuotang photo clarity / upscale API."""


app.command("enhance", help=enhance_cmd.HELP, epilog=enhance_cmd.EPILOG)(enhance_cmd.enhance)
app.command("watch", help=watch_cmd.HELP, epilog=watch_cmd.EPILOG)(watch_cmd.watch)
app.command("report", help=report_cmd.HELP, epilog=report_cmd.EPILOG)(report_cmd.report)
app.command("emulator", help=emulator_cmd.HELP, epilog=emulator_cmd.EPILOG)(emulator_cmd.emulator)
app.command("gallery", help=gallery_cmd.HELP, epilog=gallery_cmd.EPILOG)(gallery_cmd.gallery)
app.command("doctor", help=doctor_cmd.HELP, epilog=doctor_cmd.EPILOG)(doctor_cmd.doctor)
app.add_typer(config_cmd.app, name="config")


def _error(message: str) -> None:
    say(sys.stderr, f"error: {message}")


def main(argv: Sequence[str] | None = None) -> None:
    """Run the CLI and exit with an :class:`ExitStatus`.

    Typer (standalone mode) already turns usage errors into exit 2 and Ctrl-C into 130;
    our own exception family is mapped here, the one place errors become exit codes.
    Commands end with ``raise typer.Exit(status)``.
    """
    _hold_standard_descriptors()
    env = Environment()
    try:
        app(args=argv, prog_name="zuotang", obj=env)
    except ZuotangError as exc:
        _fail(env, exc, str(exc), exc.exit_status)
    except OSError as exc:
        message = f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc)
        _fail(env, exc, message, ExitStatus.TROUBLE)  # the disk or the system: retry later


def _hold_standard_descriptors() -> None:
    """Started with stdin, stdout or stderr closed (``2>&-``): put the null device there,
    so no file the run opens (journal, report, result) lands on 0-2 and gets its output."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            with contextlib.suppress(OSError):
                os.open(os.devnull, os.O_RDWR)  # the lowest free descriptor: this one


def _fail(env: Environment, exc: BaseException, message: str, status: ExitStatus) -> NoReturn:
    """One line (and with --verbose the traceback first), then the error's exit code."""
    if env.verbose and sys.stderr is not None:
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        write_stderr(sys.stderr, "".join(f"{visible(line)}\n" for line in text.splitlines()))
    _error(message)
    sys.exit(status)
