"""Command-line entry point: chooses the language, dispatches, maps errors to exit codes.

The commands live one per module in :mod:`zuotang_cli.cli.commands`, wired together by
:mod:`zuotang_cli.cli.app` once the language is chosen (docs/i18n.md); this module is the
single boundary where exceptions become exit codes.
"""

from __future__ import annotations

import contextlib
import os
import sys
import traceback
from collections.abc import Sequence
from typing import TYPE_CHECKING, NoReturn

from zuotang_cli import i18n, reasons
from zuotang_cli.cli.environment import Environment
from zuotang_cli.cli.progress import say, write_stderr
from zuotang_cli.errors import ZuotangError
from zuotang_cli.i18n import gettext as _
from zuotang_cli.sanitize import visible
from zuotang_cli.status import ExitStatus

if TYPE_CHECKING:
    import typer


def __getattr__(name: str) -> typer.Typer:
    """``main.app``: the application, declared in the active language (English unless
    :func:`main` chose another)."""
    if name == "app":
        from zuotang_cli.cli import app

        return app.build()
    raise AttributeError(name)


def speak(argv: Sequence[str]) -> str:
    """Choose the language before the commands are declared: ``--lang`` among the options
    before the command, ``ZUOTANG_LANG``, the config file's ``lang``, the locale
    (docs/i18n.md); the language chosen."""
    from zuotang_cli.app import settings

    language = i18n.activate(settings.language(_lang_flag(argv)))
    i18n.share_with_libraries(language)
    return language


def _lang_flag(argv: Sequence[str]) -> str | None:
    """The value of ``--lang`` among the leading options (those of ``zuotang`` itself)."""
    args = list(argv)
    for i, arg in enumerate(args):
        if arg.startswith("--lang="):
            value = arg.partition("=")[2]
            return value if i18n.is_language_tag(value) else None
        if arg == "--lang":
            value = args[i + 1] if i + 1 < len(args) else ""
            return value if i18n.is_language_tag(value) else None
        if not arg.startswith("-") or arg == "--":
            return None
    return None


def _error(message: str) -> None:
    say(sys.stderr, _("error: {message}").format(message=message))


def main(argv: Sequence[str] | None = None) -> None:
    """Run the CLI and exit with an :class:`ExitStatus`.

    Typer (standalone mode) already turns usage errors into exit 2 and Ctrl-C into 130;
    our own exception family is mapped here, the one place errors become exit codes.
    Commands end with ``raise typer.Exit(status)``.
    """
    _hold_standard_descriptors()
    args = sys.argv[1:] if argv is None else list(argv)
    speak(args)
    from zuotang_cli.cli.app import build

    env = Environment()
    try:
        build()(args=args, prog_name="zuotang", obj=env)
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
    _error(reasons.shown(message))  # an engine's reason kept English until shown
    sys.exit(status)
