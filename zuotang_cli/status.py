"""The one place exit codes are defined (documented in the README and ``--help``)."""

from __future__ import annotations

import enum


class ExitStatus(enum.IntEnum):
    """Process exit codes of every ``zuotang`` command."""

    SUCCESS = 0
    """Every input is done (skipped because already done counts as done)."""
    SOME_FAILED = 1
    """The batch ran, but at least one input failed or was not attempted."""
    USAGE = 2
    """Bad flag, bad input, missing AppCode, output directory locked or unusable."""
    HALTED = 3
    """Halted by the service: invalid AppCode, quota exhausted or expired, arrears."""
    INTERRUPTED = 130
    """Interrupted by Ctrl-C (SIGINT) or SIGTERM; the report was written first."""


EXIT_CODES_HELP = (
    "Exit codes: 0 all done; 1 some images failed or were not attempted; "
    "2 usage or input error; 3 halted by auth / quota / subscription; 130 interrupted."
)
