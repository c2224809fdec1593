"""One run per output directory: an OS file lock held for the whole run.

:mod:`filelock` takes ``flock`` on POSIX and ``LockFileEx`` on Windows.  Both belong to
the open file: the kernel drops them when the process dies, so a lock left by a killed run
(``kill -9``, a reboot) is recovered by the next run with no stale-lock guessing.  The
holder's pid goes in a file beside the lock (the lock file itself may be truncated by a
waiter opening it, and cannot be read while locked on Windows), for the message.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import filelock

from zuotang_cli.errors import UsageError
from zuotang_cli.i18n import gettext as _
from zuotang_cli.store.layout import Layout


@contextlib.contextmanager
def output_lock(output_dir: Path, *, wait: bool = False) -> Iterator[None]:
    """Hold the output directory's lock; raise UsageError if another run holds it."""
    path = Layout(output_dir).lock
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(str(path))
    try:
        lock.acquire(timeout=-1 if wait else 0)
    except filelock.Timeout:
        raise UsageError(
            _(
                "{output_dir} is in use by another zuotang run (pid {value}); wait for "
                "it, pass --wait-lock, or use another --output-dir"
            ).format(output_dir=output_dir, value=_holder(output_dir))
        ) from None
    try:
        with contextlib.suppress(OSError):
            Layout(output_dir).lock_holder.write_text(f"{os.getpid()}\n", encoding="ascii")
        yield
    finally:
        lock.release()


def in_use(output_dir: Path) -> bool:
    """Whether a run holds ``output_dir`` now (its lock taken and let go at once if not)."""
    path = Layout(output_dir).lock
    if not path.exists():
        return False
    lock = filelock.FileLock(str(path))
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        return True
    except OSError:  # cannot even open it (read-only copy): nobody runs there from here
        return False
    lock.release()
    return False


def _holder(output_dir: Path) -> str:
    try:
        text = Layout(output_dir).lock_holder.read_text(encoding="ascii", errors="replace")
    except OSError:
        return "?"
    return text.strip()[:16] or "?"
