import subprocess
import sys

import pytest

from zuotang_cli import __version__
from zuotang_cli.status import ExitStatus


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "zuotang_cli", *args], capture_output=True, text=True, timeout=60
    )


def test_version_prints_version_on_stdout() -> None:
    proc = run("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"zuotang {__version__}"


def test_help_lists_commands_and_exit_codes() -> None:
    proc = run("--help")
    assert proc.returncode == 0
    assert "emulator" in proc.stdout
    assert "Exit codes" in proc.stdout
    assert "130 interrupted (Ctrl-C); 143 stopped by SIGTERM" in " ".join(proc.stdout.split())


def test_unknown_option_is_a_usage_error() -> None:
    proc = run("--no-such-flag")
    assert proc.returncode == ExitStatus.USAGE
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "command",
    [
        ["enhance"],
        ["report"],
        ["emulator"],
        ["gallery"],
        ["config"],
        ["config", "show"],
        ["config", "set-appcode"],
        ["config", "path"],
    ],
)
def test_every_command_help_shows_real_examples(command: list[str]) -> None:
    proc = run(*command, "--help")
    assert proc.returncode == 0
    examples = proc.stdout.split("Examples:", 1)[1]
    assert examples.count("zuotang ") >= 2


def test_completion_is_offered() -> None:
    assert "--install-completion" in run("--help").stdout
