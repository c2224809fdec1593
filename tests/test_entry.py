"""A stop signal while the command line is still importing (zuotang_cli/cli/entry.py).

The signal is sent by the process to itself from inside the import machinery, the
moment it looks for ``typer`` (the first of the CLI's own imports): the window where a
Ctrl-C used to be swallowed by CPython and the run went ahead and paid.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.helpers import cli, enhance_env, write_list
from zuotang_cli.status import ExitStatus

SIGNAL_DURING_IMPORT = """
import importlib.abc, os, signal, sys

SENT = {"typer": FIRST, "zuotang_cli.engine.batch": THEN}

class SignalOnImport(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if SENT.get(name):
            os.kill(os.getpid(), SENT.pop(name))
        return None

sys.meta_path.insert(0, SignalOnImport())
from zuotang_cli.cli.entry import main
main()
"""


@pytest.mark.parametrize(
    ("first", "then", "expected"),
    [
        ("signal.SIGINT", "0", ExitStatus.INTERRUPTED),
        ("signal.SIGTERM", "0", ExitStatus.TERMINATED),
        ("signal.SIGINT", "signal.SIGTERM", ExitStatus.TERMINATED),  # a second one: still ours
        ("0", "signal.SIGTERM", ExitStatus.TERMINATED),  # in the batch's own imports
    ],
)
def test_a_stop_signal_during_the_imports_ends_the_run_before_any_call(
    emulator: Any, tmp_path: Path, first: str, then: str, expected: ExitStatus
) -> None:
    emu = emulator()
    listed = write_list(tmp_path / "urls.txt", [emu.file_url(f"f{i}.png") for i in range(5)])
    out = tmp_path / "out"
    proc = cli(
        *("enhance", str(listed), "-o", str(out)),
        env=enhance_env(emu.endpoint, "code"),
        entry=("-c", SIGNAL_DURING_IMPORT.replace("FIRST", first).replace("THEN", then)),
    )
    assert proc.returncode == expected, proc.stderr
    assert "Traceback" not in proc.stderr
    assert emu.stats()["calls"] == 0 and emu.stats()["billed"] == 0
    assert not out.exists()


def test_without_a_signal_the_entry_runs_the_command() -> None:
    proc = cli("--version", entry=("-c", "from zuotang_cli.cli.entry import main; main()"))
    assert proc.returncode == 0 and proc.stdout.startswith("zuotang ")
