"""Files written whole or not at all: the config file, the gallery page, the JSON summary.

:func:`write_atomic` writes to a new temporary file beside the target, flushes it to
disk, then renames it over the target, so a reader (or a crash, or a full disk) sees
the old file or the new one, never half of one.  Results are not written here: they are
streamed to disk by :mod:`zuotang_cli.store.download`.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

_DEFAULT_MODE = 0o666
"""What a new file gets when no mode is asked for, less the umask (as ``open`` does)."""


def write_atomic(path: Path, data: str | bytes, *, mode: int | None = None) -> None:
    """Replace ``path`` with ``data`` in one rename (text as UTF-8, newlines as given).

    The temporary file is created beside ``path`` (same folder, so the rename is
    atomic), hidden and randomly named; it is fsynced, renamed over ``path``, and the
    folder is fsynced (POSIX) so the rename itself survives a crash.  ``mode`` (e.g.
    ``0o600``) is set exactly, whatever the umask; without it the file gets ``0o666``
    less the umask.  A symlink at ``path`` is replaced, not followed: resolve it first
    to write through it.  The folder must exist.

    On failure (or an interrupt) the temporary file is removed, ``path`` is left as it
    was, and the error is raised (:class:`OSError` for the file system's).
    """
    payload = data.encode("utf-8") if isinstance(data, str) else data
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    fd = os.open(tmp, flags, _DEFAULT_MODE if mode is None else mode)
    try:
        with os.fdopen(fd, "wb") as stream:
            if mode is not None and hasattr(os, "fchmod"):
                os.fchmod(stream.fileno(), mode)  # exact, whatever the umask
            stream.write(payload)
            stream.flush()
            os.fsync(stream.fileno())
        tmp.replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _sync_folder(path.parent)


def _sync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (POSIX; elsewhere, and on error, a no-op)."""
    if os.name != "posix":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)
