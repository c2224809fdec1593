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


class LocalError(ZuotangError):
    """The local disk failed us (full, read-only, gone): nothing more can be saved."""

    exit_status = ExitStatus.TROUBLE
