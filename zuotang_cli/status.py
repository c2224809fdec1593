"""The one place exit codes are defined (documented in the README and ``--help``).

A cron job alerts on anything >= 2: 0 and 1 are routine (1 means some images failed for
reasons of their own, or ``--max-calls`` stopped the run; the next run retries)."""

from __future__ import annotations

import enum

from zuotang_cli.i18n import N_


class ExitStatus(enum.IntEnum):
    """Process exit codes of every ``zuotang`` command."""

    SUCCESS = 0
    """Every input is done (skipped because already done counts as done)."""
    SOME_FAILED = 1
    """The batch ran, but some inputs failed for reasons of their own, or --max-calls left
    some not attempted.  Routine: a cron job need not alert."""
    USAGE = 2
    """Usage or input error: bad flag, missing AppCode, an input path that does not exist,
    wrong endpoint path, output directory locked or unusable, emulator port in use."""
    HALTED = 3
    """Halted by the service's account side: AppCode, AppKey or signature refused, quota
    exhausted or expired, arrears."""
    TROUBLE = 4
    """Halted by trouble on the way: endpoint unreachable, disk full or unwritable, journal
    unusable.  Try again later."""
    INTERRUPTED = 130
    """Interrupted by Ctrl-C (SIGINT); the report was written first."""
    TERMINATED = 143
    """Stopped by SIGTERM (128 + 15, what a shell reports for a process SIGTERM killed):
    the calls in flight were cut short and the report written first."""


EXIT_CODES_HELP = N_(
    "Exit codes: 0 all done; 1 some images failed (or --max-calls reached): routine; "
    "2 usage or input error; 3 halted by the account (AppCode, AppKey or signature refused, "
    "quota, arrears); "
    "4 halted by trouble on the way (unreachable, disk, journal): retry later; "
    "130 interrupted (Ctrl-C); 143 stopped by SIGTERM. Alert on 2 or more."
)
"""Translated where shown (``_(EXIT_CODES_HELP)``)."""
