"""What every command shares: the standard streams and how much to say, made once by
:func:`zuotang_cli.cli.main.main` and handed to the commands through Typer's context (as
httpie's ``Environment``), so that no module sets another's state and tests can give a
command streams of their own."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import BinaryIO, TextIO

import typer


def _stdin() -> BinaryIO:
    return sys.stdin.buffer


@dataclass
class Environment:
    stdin: BinaryIO = field(default_factory=_stdin)
    stdout: TextIO = field(default_factory=lambda: sys.stdout)
    stderr: TextIO | None = field(default_factory=lambda: sys.stderr)
    """None when the process started with stderr closed."""
    verbose: bool = False
    """Set by a command given ``--verbose``: an error then shows its traceback too."""


def environment(ctx: typer.Context) -> Environment:
    """The run's environment (a fresh one when a command is invoked on its own)."""
    env = ctx.ensure_object(Environment)
    assert isinstance(env, Environment)
    return env
