"""The Typer application: every command wired together, declared in the language chosen.

Imported by :func:`zuotang_cli.cli.main.main` once the language is active
(:mod:`zuotang_cli.i18n`): the help texts of the commands and options are translated as
they are declared, or (the options' help) when shown (:mod:`zuotang_cli.cli.typer_classes`,
which also has the libraries' own words: docs/i18n.md says how far they allow).
"""

from __future__ import annotations

import typer
import typer.core

from zuotang_cli import __version__
from zuotang_cli.cli.typer_classes import Command, typer_app
from zuotang_cli.i18n import gettext as _


def _version(value: bool) -> None:
    if value:
        typer.echo(f"zuotang {__version__}")
        raise typer.Exit()


def _lang(value: str | None) -> str | None:
    from zuotang_cli.i18n import is_language_tag

    if value is not None and not is_language_tag(value):
        raise typer.BadParameter(_("must be a language such as zh_CN or en"))
    return value  # already applied by main(), before the commands were declared


def build() -> typer.Typer:
    """The ``zuotang`` application, its help in the active language."""
    from zuotang_cli.cli.commands import config as config_cmd
    from zuotang_cli.cli.commands import doctor as doctor_cmd
    from zuotang_cli.cli.commands import emulator as emulator_cmd
    from zuotang_cli.cli.commands import enhance as enhance_cmd
    from zuotang_cli.cli.commands import gallery as gallery_cmd
    from zuotang_cli.cli.commands import report as report_cmd
    from zuotang_cli.cli.commands import watch as watch_cmd
    from zuotang_cli.status import EXIT_CODES_HELP

    app = typer_app(
        name="zuotang",
        help=_(
            "Batch client for the Zuotang (佐糖) photo clarity / upscale API "
            "on the Alibaba Cloud marketplace."
        )
        + "\n\n"
        + _(EXIT_CODES_HELP),
        add_completion=True,
        pretty_exceptions_enable=False,
    )

    @app.callback()
    def _root(
        version: bool = typer.Option(
            False,
            "--version",
            callback=_version,
            is_eager=True,
            help=_("Show the version and exit."),
        ),
        lang: str | None = typer.Option(
            None,
            "--lang",
            callback=_lang,
            metavar="LANG",
            help=_(
                "Language of messages and help: zh_CN or en [default: ZUOTANG_LANG, the config "
                "file's lang, then LC_ALL / LC_MESSAGES / LANG]. Machine output stays English."
            ),
            show_default=False,
        ),
    ) -> None:
        pass

    commands = (enhance_cmd, watch_cmd, report_cmd, emulator_cmd, gallery_cmd, doctor_cmd)
    for module in commands:
        name = module.__name__.rsplit(".", 1)[1]
        help_text = _(module.HELP)
        if module in (enhance_cmd, watch_cmd):
            help_text += "\n\n" + _(EXIT_CODES_HELP)
        command = app.command(name, cls=Command, help=help_text, epilog=_(module.EPILOG))
        command(getattr(module, name))
    app.add_typer(config_cmd.build(), name="config")
    return app
