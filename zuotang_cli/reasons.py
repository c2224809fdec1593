"""Reasons the engine writes into report rows, marked for the catalog (docs/i18n.md).

A report row keeps them in English (machine text); where a person reads one (a problem
line, the summary) :func:`shown` gives it in the active language, filled in again with the
values the row's English carries.  A server's words match none of them and are shown as
they came.
"""

from __future__ import annotations

from zuotang_cli.i18n import N_, gettext, known

NOT_ATTEMPTED_MAX_CALLS = N_("not attempted (max-calls {limit} reached)")
MAX_CALLS_NOTE = N_("--max-calls {limit} reached")
HALTED = N_("halted: {reason}")
INTERRUPTED = N_("interrupted")
INTERRUPTED_PAID = N_("interrupted: paid, not saved yet; the next run fetches it")
INTERRUPTED_WENT_OUT = N_(
    "interrupted after the call went out (possibly paid): the next run calls it again, "
    "within --paid-retries"
)
INTERRUPTED_BEFORE = N_("interrupted before its call went out: the next run calls it")
REPORT_LOST = N_("the report could not be written")

TEMPLATES = (NOT_ATTEMPTED_MAX_CALLS, MAX_CALLS_NOTE, HALTED)
"""The reasons with values in them."""


def shown(reason: str) -> str:
    """``reason`` (from a report row) in the active language."""
    return known(reason, TEMPLATES) if reason else gettext(reason)
