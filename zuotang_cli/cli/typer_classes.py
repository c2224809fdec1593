"""Typer's command classes with the libraries' own words in the active language.

Typer's help panels, "Error" and "[default: ...]" call the standard ``gettext`` and read
zuotang's catalog once :func:`zuotang_cli.i18n.share_with_libraries` has run.  click's
"Usage:" and the help texts the libraries give the options they add (``--help``,
``--install-completion``) are written without gettext: these classes, given to Typer
through its documented ``cls`` parameter, translate them, and the help of every option
(marked with ``N_`` where declared) when it is shown.  What remains English is said in
docs/i18n.md.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer
import typer.core

from zuotang_cli.i18n import N_
from zuotang_cli.i18n import gettext as _

_T = TypeVar("_T")

LIBRARY_HELP = (
    N_("Show this message and exit."),
    N_("Install completion for the current shell."),
    N_("Show completion for the current shell, to copy it or customize the installation."),
)
"""The help texts click and Typer give the options they add themselves."""
LIBRARY_WORDS = (
    N_("Try '{command} {option}' for help."),
    N_("Error: {message}"),
    N_("Arguments"),
    N_("Options"),
    N_("Commands"),
    N_("Error"),
    N_("[default: {}]"),
    N_("[env var: {}]"),
    N_("[required]"),
    N_("(deprecated) "),
    N_("Aborted."),
    N_("Aborted!"),
    N_("Try [blue]'{command_path} {help_option}'[/] for help."),
    N_("default: {default}"),
    N_("env var: {var}"),
    N_("required"),
    N_("(dynamic)"),
    N_("Missing command."),
    N_("No such command {name!r}."),
)
"""What Typer itself passes through the standard ``gettext``: listed here so that the
catalog has them (docs/i18n.md, "Typer's and click's own words")."""


def _translated(params: list[Any]) -> list[Any]:
    """The parameters, their help (marked with ``N_`` where declared, or given by the
    libraries) in the active language: translated when shown, not when declared."""
    for param in params:
        help_text = getattr(param, "help", None)
        if help_text:
            param.help = _(help_text)
    return params


def short_help(help_text: str | None, limit: int) -> str:
    """The first sentence of ``help_text`` up to ``limit`` characters: click shortens by
    words, and Chinese has no spaces between them (it would show only "...")."""
    first = re.split(r"[。：:]", (help_text or "").strip(), maxsplit=1)[0]
    return first if len(first) <= limit else first[: limit - 1] + "…"


class TranslatedUsageError(typer.BadParameter):
    """A usage error (exit 2) shown in the active language: the usage line, "Try ... for
    help." and "Error: ..." around the message.  click's own message ("No such option",
    "Missing argument") comes as click wrote it; Typer, with ``rich_markup_mode=None``,
    shows usage errors through this ``show()``."""

    def __init__(self, message: str, ctx: Any = None, exit_code: int = 2) -> None:
        super().__init__(message, ctx=ctx)
        self.exit_code = exit_code

    def format_message(self) -> str:
        return self.message

    def show(self, file: Any = None) -> None:
        stream = file if file is not None else sys.stderr
        lines = []
        ctx = self.ctx
        if ctx is not None:
            lines.append(ctx.get_usage())
            if ctx.command.get_help_option(ctx) is not None:
                option = ctx.help_option_names[0]
                try_help = _("Try '{command} {option}' for help.")
                lines.append(try_help.format(command=ctx.command_path, option=option))
            lines.append("")
        lines.append(_("Error: {message}").format(message=self.format_message()))
        stream.write("\n".join(lines) + "\n")


def _translated_errors(call: Callable[[], _T]) -> _T:
    """``call()``, a usage error click raises on the way shown by
    :class:`TranslatedUsageError` (the same message and exit code)."""
    try:
        return call()
    except typer.TyperException as exc:  # the public base of click's exceptions in Typer
        usage = getattr(exc, "exit_code", None) == 2 and hasattr(exc, "format_message")
        if not usage or isinstance(exc, TranslatedUsageError):
            raise
        ctx = getattr(exc, "ctx", None)
        raise TranslatedUsageError(exc.format_message(), ctx=ctx) from exc


class _Translated:
    """What Typer's command and group classes both get: usage errors framed in the active
    language, "Usage:" translated, and the option help made by the library."""

    help: str | None

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        parent = super()
        return _translated_errors(lambda: parent.parse_args(ctx, args))  # type: ignore[attr-defined]

    def get_short_help_str(self, limit: int = 45) -> str:
        shown: str = super().get_short_help_str(limit)  # type: ignore[misc]
        if shown.endswith("...") and len(shown) <= 3 + limit // 2:
            return short_help(self.help, limit)
        return shown

    def format_usage(self, ctx: Any, formatter: Any) -> None:
        pieces = " ".join(self.collect_usage_pieces(ctx))  # type: ignore[attr-defined]
        formatter.write_usage(ctx.command_path, pieces, prefix=_("Usage: "))

    def get_params(self, ctx: Any) -> list[Any]:
        return _translated(super().get_params(ctx))  # type: ignore[misc]


class Command(_Translated, typer.core.TyperCommand):
    """A Typer command whose "Usage:" and library-made option help are translated."""


class Group(_Translated, typer.core.TyperGroup):
    """The same for a group of commands (``zuotang``, ``zuotang config``)."""

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        return _translated_errors(lambda: super(Group, self).resolve_command(ctx, args))


def typer_app(**settings: Any) -> typer.Typer:
    """A Typer application with zuotang's defaults and translated command classes."""
    return typer.Typer(
        cls=Group,
        no_args_is_help=True,
        rich_markup_mode=None,
        context_settings={"help_option_names": ["-h", "--help"]},
        **settings,
    )
