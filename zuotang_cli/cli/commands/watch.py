"""``zuotang watch``: a hot folder (docs/watch.md).  Every option of ``enhance`` is shared
as it is declared there (its parameters, read from its signature), and the watch's own
are added; the work is the same session's, its inputs the folders, watched."""

import inspect
from pathlib import Path
from typing import Annotated, Any

import typer

from zuotang_cli.app.options import DEFAULT_SETTLE, WatchOptions
from zuotang_cli.cli.commands import enhance as enhance_cmd
from zuotang_cli.cli.environment import environment
from zuotang_cli.i18n import N_

HELP = N_(
    "Watch folders and enhance every image that lands in them (a hot folder): what is "
    "there at start, then each new or replaced file once it is complete (its size and "
    "mtime unchanged for --settle seconds; partial names such as .part, .crdownload, ~$… "
    "and dotfiles are taken once renamed). The same journal, report, money rules and "
    "options as 'enhance': a copy, a touch or a rename of a done photo pays nothing; "
    "--qps, --paid-retries and --max-calls hold over the watcher's whole life. Ctrl-C or "
    "SIGTERM stop it cleanly, every file taken with its report row."
)
EPILOG = N_(
    "Examples:\n\n\b\n"
    "  zuotang watch inbox/ -o enhanced/                  # until Ctrl-C\n"
    "  zuotang watch inbox/ -o enhanced/ --move-done done/ --max-calls-per-day 500\n"
    "  zuotang watch /mnt/share/in -o out --poll          # a network share\n"
    "  zuotang watch inbox/ -o enhanced/ --once           # from cron"
)
Opt = typer.Option


def _own(
    folders: Annotated[
        list[Path],
        typer.Argument(metavar="DIR", help=N_("Folders to watch."), show_default=False),
    ],
    settle: Annotated[
        float,
        Opt(
            min=0.0,
            help=N_("Seconds a file's size and mtime must stay unchanged before it is taken."),
        ),
    ] = DEFAULT_SETTLE,
    poll: Annotated[
        bool,
        Opt(
            "--poll",
            help=N_(
                "List the folders every 0.3 s instead of waiting for the OS's events (network "
                "shares, where events do not arrive)."
            ),
        ),
    ] = False,
    once: Annotated[
        bool, Opt("--once", help=N_("Take what the folders hold now, then exit (for cron)."))
    ] = False,
    move_done: Annotated[
        Path | None,
        Opt(
            metavar="DIR",
            help=N_(
                "Move each original whose result is saved (or was before) here, out of the inbox."
            ),
            show_default=False,
        ),
    ] = None,
    max_calls_per_day: Annotated[
        int | None,
        Opt(
            min=1,
            help=N_(
                "At most N paid calls a day (local time); once reached, a line says so and "
                "calls wait for the next day while files keep being taken in."
            ),
            show_default=False,
        ),
    ] = None,
) -> None:
    """The parameters ``watch`` adds to those of ``enhance`` (only its signature is used)."""


_OWN = inspect.signature(_own).parameters
_SHARED = [p for name, p in inspect.signature(enhance_cmd.enhance).parameters.items()]
_PARAMETERS = [
    _SHARED[0],  # the Typer context
    *_OWN.values(),
    *(p for p in _SHARED[1:] if p.name != "inputs"),
]


def watch(**given: Any) -> None:
    from zuotang_cli.cli.run import run_enhance

    own = {name: given.pop(name) for name in _OWN}
    ctx = given["ctx"]
    options = enhance_cmd.options_from(
        ctx, {**given, "inputs": [str(folder) for folder in own["folders"]]}
    )
    watching = WatchOptions(
        settle=own["settle"],
        poll=own["poll"],
        once=own["once"],
        move_done=own["move_done"],
        max_calls_per_day=own["max_calls_per_day"],
    )
    env = environment(ctx)
    status = run_enhance(
        options, stdin=env.stdin, stdout=env.stdout, exit_on_signal=True, watch=watching
    )
    raise typer.Exit(status)


# Typer reads a command's parameters from its signature and annotations: these are
# enhance's, with the folders in place of its inputs and the watch's own options added.
watch.__signature__ = inspect.Signature(_PARAMETERS)  # type: ignore[attr-defined]
watch.__annotations__ = {p.name: p.annotation for p in _PARAMETERS}
