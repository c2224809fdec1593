"""``zuotang config``: show the settings and their sources, save the AppCode, print the path.

The work is done by :mod:`zuotang_cli.app.settings`; this module parses and prints.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

import typer

from zuotang_cli.app import settings
from zuotang_cli.errors import UsageError
from zuotang_cli.i18n import N_
from zuotang_cli.i18n import gettext as _

HELP = N_(
    "The config file and the settings zuotang enhance uses. Each setting comes from, in "
    "order: its flag, its environment variable (ZUOTANG_APPCODE, ZUOTANG_APP_KEY, "
    "ZUOTANG_APP_SECRET, ZUOTANG_AUTH, ZUOTANG_ENDPOINT, ZUOTANG_QPS, ZUOTANG_TYPE, "
    "ZUOTANG_SCALE, ZUOTANG_OUTPUT_DIR, ZUOTANG_LANG), the config file (flat TOML: appcode, "
    "app_key, app_secret, auth, endpoint, qps, type, scale, output_dir, lang), its default. "
    "The AppSecret "
    "has no flag. ZUOTANG_CONFIG names another config file."
)
EPILOG = N_(
    "Examples:\n\n\b\n"
    "  zuotang config set-appcode          # asks for the AppCode, input hidden\n"
    "  zuotang config set app_key 2034...  # signed requests: the AppKey,\n"
    "  zuotang config set-app-secret       # and the AppSecret, input hidden\n"
    "  zuotang config set qps 5\n"
    "  zuotang config show\n"
    '  $EDITOR "$(zuotang config path)"'
)
SHOW_HELP = N_(
    "Show every setting zuotang enhance would use, its value and its source (flag, env, "
    "file or default), and the config file. The AppCode is masked, the AppSecret never "
    "shown. Give enhance's flags "
    "to see what they change."
)
SHOW_EPILOG = N_(
    "Examples:\n\n\b\n"
    "  zuotang config show\n"
    "  ZUOTANG_QPS=5 zuotang config show --scale 2\n"
    "  zuotang config show --json | jq -r .settings.qps.source"
)
SET_APPCODE_HELP = N_(
    "Save the AppCode in the config file (created 0600, other keys kept). It is read "
    "without echo from the terminal, or from stdin when stdin is not a terminal."
)
SET_APPCODE_EPILOG = N_(
    "Examples:\n\n\b\n"
    "  zuotang config set-appcode\n"
    "  pass show zuotang/appcode | zuotang config set-appcode\n"
    "  ZUOTANG_CONFIG=./ci.toml zuotang config set-appcode < appcode.txt"
)
SET_APP_SECRET_HELP = N_(
    "Save the AppSecret (signed requests, with the AppKey) in the config file (created "
    "0600, other keys kept). It is read without echo from the terminal, or from stdin "
    "when stdin is not a terminal; there is no flag for it."
)
SET_APP_SECRET_EPILOG = N_(
    "Examples:\n\n\b\n"
    "  zuotang config set app_key 203xxxxx\n"
    "  zuotang config set-app-secret\n"
    "  pass show zuotang/app-secret | zuotang config set-app-secret"
)
SET_HELP = N_(
    "Save one setting in the config file (created 0600, other keys kept): endpoint, qps, "
    "type, scale, output_dir, billing, body or lang, checked as the file's keys are. The "
    "AppCode has its own command, set-appcode, which does not echo it."
)
SET_EPILOG = N_(
    "Examples:\n\n\b\n"
    "  zuotang config set qps 5\n"
    "  zuotang config set output_dir ~/enhanced\n"
    "  zuotang config set endpoint http://127.0.0.1:8080/tasks/visual/scale"
)
ENV_WINS = N_("{variable} is set in this environment and takes precedence over the file")
PATH_HELP = N_("Print the path of the config file (it may not exist yet).")
PATH_EPILOG = N_('Examples:\n\n\b\n  zuotang config path\n  $EDITOR "$(zuotang config path)"')


def show(
    json_out: bool = typer.Option(False, "--json", help=N_("Print one JSON object.")),
    appcode: str | None = typer.Option(
        None, help=N_("As enhance --appcode (prefer ZUOTANG_APPCODE)."), show_default=False
    ),
    app_key: str | None = typer.Option(None, help=N_("As enhance --app-key."), show_default=False),
    auth: str | None = typer.Option(None, help=N_("As enhance --auth."), show_default=False),
    endpoint: str | None = typer.Option(None, help=N_("As enhance --endpoint.")),
    qps: float | None = typer.Option(None, help=N_("As enhance --qps.")),
    type_: str | None = typer.Option(None, "--type", "-t", help=N_("As enhance --type.")),
    scale: str | None = typer.Option(None, "--scale", "-s", help=N_("As enhance --scale.")),
    output_dir: Path | None = typer.Option(
        None, "--output-dir", "-o", help=N_("As enhance --output-dir.")
    ),
) -> None:
    flags = {
        "appcode": appcode,
        "app_key": app_key,
        "auth": auth,
        "endpoint": endpoint,
        "qps": qps,
        "type": type_,
        "scale": scale,
        "output_dir": output_dir,
    }
    resolved = settings.load(flags)
    warn(resolved.warnings)
    if json_out:
        document = settings.describe(resolved.settings, resolved.file)
        typer.echo(json.dumps(document, ensure_ascii=False, indent=2))
    else:
        typer.echo(render(resolved.settings, resolved.file), nl=False)
    raise typer.Exit(0)


_NAMED = (settings.Source.FLAG, settings.Source.ENV)  # sources whose name adds something


def render(values: Mapping[str, settings.Setting], file: settings.ConfigFile) -> str:
    """The settings as an aligned table under the config file's path."""
    state = _("exists") if file.exists else _("not found")
    lines = [_("config file: {path} ({state})").format(path=file.path, state=state)]
    width = max(len(setting.shown()) for setting in values.values())
    for name, setting in values.items():
        origin = f" ({setting.origin})" if setting.source in _NAMED else ""
        shown = setting.shown().ljust(width)
        lines.append(f"{name:<11} {shown}  {setting.source.value}{origin}".rstrip())
    return "\n".join(lines) + "\n"


def set_appcode() -> None:
    code = read_appcode(sys.stdin)
    path = settings.save_appcode(settings.config_path(), code)
    typer.echo(_("AppCode saved to {path}").format(path=path))
    if os.environ.get(settings.ENV_VARS["appcode"]):
        warn([_(ENV_WINS).format(variable="ZUOTANG_APPCODE")])
    raise typer.Exit(0)


def read_appcode(stdin: TextIO | None) -> str:
    """The AppCode typed without echo on a terminal, else the text of stdin, trimmed."""
    return read_secret(stdin, "AppCode")


def read_secret(stdin: TextIO | None, what: str) -> str:
    """A secret typed without echo on a terminal, else the text of stdin, trimmed."""
    if stdin is not None and not stdin.isatty():
        code = stdin.read().strip()
    else:
        code = getpass.getpass(f"{what} (input hidden): ").strip()
    if not code:
        raise UsageError(_("empty {what}: nothing was written").format(what=what))
    return code


def set_app_secret() -> None:
    secret = read_secret(sys.stdin, "AppSecret")
    path = settings.save_app_secret(settings.config_path(), secret)
    typer.echo(_("AppSecret saved to {path}").format(path=path))
    if os.environ.get(settings.ENV_VARS["app_secret"]):
        warn([_(ENV_WINS).format(variable="ZUOTANG_APP_SECRET")])
    raise typer.Exit(0)


def set_(
    key: str = typer.Argument(..., metavar="KEY", help=N_("Setting name, as in the config file.")),
    value: str = typer.Argument(..., metavar="VALUE", help=N_("Its value.")),
) -> None:
    name = key.replace("-", "_")
    path, setting = settings.save_setting(settings.config_path(), name, value)
    typer.echo(
        _("{name} = {value} saved to {path}").format(name=name, value=setting.shown(), path=path)
    )
    variable = settings.ENV_VARS.get(name, "")
    if variable and os.environ.get(variable):
        warn([_(ENV_WINS).format(variable=variable)])
    raise typer.Exit(0)


def path() -> None:
    typer.echo(str(settings.config_path()))
    raise typer.Exit(0)


def build() -> typer.Typer:
    """``zuotang config`` and its commands, their help in the active language."""
    from zuotang_cli.cli.typer_classes import Command, typer_app

    app = typer_app(name="config", help=_(HELP), epilog=_(EPILOG))
    commands = (
        ("show", show, SHOW_HELP, SHOW_EPILOG),
        ("set-appcode", set_appcode, SET_APPCODE_HELP, SET_APPCODE_EPILOG),
        ("set-app-secret", set_app_secret, SET_APP_SECRET_HELP, SET_APP_SECRET_EPILOG),
        ("set", set_, SET_HELP, SET_EPILOG),
        ("path", path, PATH_HELP, PATH_EPILOG),
    )
    for name, function, help_text, epilog in commands:
        app.command(name, cls=Command, help=_(help_text), epilog=_(epilog))(function)
    return app


def warn(messages: tuple[str, ...] | list[str]) -> None:
    from zuotang_cli.cli.progress import say

    for message in messages:
        say(sys.stderr, _("warning: {warning}").format(warning=message))
