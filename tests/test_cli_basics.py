import pytest

from tests.helpers import cli
from zuotang_cli import __version__
from zuotang_cli.status import ExitStatus


def test_version_prints_version_on_stdout() -> None:
    proc = cli("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"zuotang {__version__}"


def test_help_lists_commands_and_exit_codes() -> None:
    proc = cli("--help")
    assert proc.returncode == 0
    assert "emulator" in proc.stdout
    assert "Exit codes" in proc.stdout
    assert "130 interrupted (Ctrl-C); 143 stopped by SIGTERM" in " ".join(proc.stdout.split())


def test_unknown_option_is_a_usage_error() -> None:
    proc = cli("--no-such-flag")
    assert proc.returncode == ExitStatus.USAGE
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "command",
    [
        ["enhance"],
        ["watch"],
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
    proc = cli(*command, "--help")
    assert proc.returncode == 0
    examples = proc.stdout.split("Examples:", 1)[1]
    assert examples.count("zuotang ") >= 2


def test_completion_is_offered() -> None:
    assert "--install-completion" in cli("--help").stdout
