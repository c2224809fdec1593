"""The one exception family of zuotang; the CLI maps each class to an exit code."""

from __future__ import annotations

from zuotang_cli.status import ExitStatus


class ZuotangError(Exception):
    """Base of every error zuotang raises on purpose; its text is safe to show a user."""

    exit_status: ExitStatus = ExitStatus.SOME_FAILED


class UsageError(ZuotangError):
    """The user asked for something that cannot work (bad flag, input or setting)."""

    exit_status = ExitStatus.USAGE


class HaltError(ZuotangError):
    """The service refuses the account (auth, quota, arrears): no further call can succeed."""

    exit_status = ExitStatus.HALTED


class TroubleError(ZuotangError):
    """Something on the way does not answer (a bucket's endpoint): try again later."""

    exit_status = ExitStatus.TROUBLE


class LocalError(ZuotangError):
    """The local disk failed us (full, read-only, gone): nothing more can be saved."""

    exit_status = ExitStatus.TROUBLE


MAX_CAUSE_CHARS = 200
"""How much of a library's exception text a report row or a stderr line shows."""


def one_line(exc: BaseException) -> str:
    """``Type: text`` of an exception from a library (an HTTP stack may put the bytes it
    choked on and a caret line in it), as one line a report cell and stderr can hold."""
    lines = str(exc).strip().splitlines()
    text = lines[0].strip() if lines else ""
    if len(text) > MAX_CAUSE_CHARS:
        text = text[: MAX_CAUSE_CHARS - 1] + "…"
    name = type(exc).__name__
    return f"{name}: {text}" if text else name
