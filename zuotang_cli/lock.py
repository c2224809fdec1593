"""One run per output directory: an advisory lock held for the whole run.

``flock`` locks belong to the open file: the kernel drops them when the process dies, so a
lock left by a killed run (``kill -9``, a reboot) is recovered by the next run with no
stale-lock guessing.  The lock file also names the holder's pid for the message.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from zuotang_cli.errors import UsageError

LOCK_NAME = ".zuotang/lock"


@contextlib.contextmanager
def output_lock(output_dir: Path, *, wait: bool = False) -> Iterator[None]:
    """Hold the output directory's lock; raise UsageError if another run holds it."""
    path = output_dir / LOCK_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
            raise UsageError(
                f"{output_dir} is in use by another zuotang run (pid {holder}); "
                "wait for it, pass --wait-lock, or use another --output-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)
