"""Open files: a run never needs more file descriptors than the process may open.

Every call in flight holds a socket; every download a socket and a file; the journal,
reports, stdio and the event loop hold some more.  At start the soft limit is raised
toward the hard one (``resource``, where it exists: POSIX).  When even the hard limit is
too low (``ulimit -n 128``, or macOS's default of 256 at high ``--qps``), the calls and
downloads in flight are capped to fit, and the run says so once on stderr.  Without
``resource`` (Windows) nothing is capped: sockets there are not counted against the C
runtime's file limit.
"""

from __future__ import annotations

from dataclasses import dataclass

from zuotang_cli.i18n import gettext as _

RESERVED = 40
"""Descriptors kept for everything but sockets and results: stdio, the journal (SQLite and
its WAL), reports, the lock, the event loop, threads' files, Pillow."""
PER_DOWNLOAD = 2
"""A download holds its connection and its ``.part`` file."""
MAX_RAISED = 65536
"""The soft limit is raised at most this far (a full run at 100 QPS needs about 3,400)."""
MIN_CALLS = 2
MIN_DOWNLOADS = 1


def open_file_limit() -> int | None:
    """The soft limit on open files after raising it toward the hard one (to at most
    MAX_RAISED); None when unknown or unlimited."""
    try:
        import resource
    except ImportError:
        return None
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (OSError, ValueError):
        return None
    if soft == resource.RLIM_INFINITY:
        return None
    target = MAX_RAISED if hard == resource.RLIM_INFINITY else min(hard, MAX_RAISED)
    for wanted in (target, 10240):  # macOS refuses more than OPEN_MAX (10240)
        if wanted <= soft:
            break
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (OSError, ValueError):
            continue
        soft = wanted
        break
    return soft


@dataclass(frozen=True)
class Fit:
    calls: int
    downloads: int
    note: str | None = None
    """Set when the limit cut either number down: say it once."""


def fit(calls: int, downloads: int, limit: int | None) -> Fit:
    """``calls`` in flight and ``downloads`` at once, cut down to fit ``limit`` open files."""
    if limit is None or RESERVED + calls + PER_DOWNLOAD * downloads <= limit:
        return Fit(calls, downloads)
    room = max(limit - RESERVED, MIN_CALLS + PER_DOWNLOAD * MIN_DOWNLOADS)
    new_downloads = max(MIN_DOWNLOADS, min(downloads, room // (4 * PER_DOWNLOAD)))
    new_calls = max(MIN_CALLS, min(calls, room - PER_DOWNLOAD * new_downloads))
    note = _(
        "the open-file limit is {limit}: at most {new_calls} calls in flight (not {calls}) "
        "and {new_downloads} downloads at once (not {downloads}); raise it (ulimit -n) for "
        "the full rate"
    ).format(
        limit=limit,
        new_calls=new_calls,
        calls=calls,
        new_downloads=new_downloads,
        downloads=downloads,
    )
    return Fit(new_calls, new_downloads, note)
