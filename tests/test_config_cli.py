"""``zuotang config show | set-appcode | path`` through the real entry point (subprocess),
with the config file, HOME and XDG pointed at tmp_path; and the AppCode never printed."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from tests.helpers import cli
from zuotang_cli.app import settings
from zuotang_cli.cli.commands import config as config_cmd
from zuotang_cli.errors import UsageError
from zuotang_cli.status import ExitStatus

CODE = "5ec2e7c0de0123456789abcdefa1b2c3"


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """This process's and the children's environment: no real user config, no ZUOTANG_*."""
    for name in [*settings.ENV_VARS.values(), settings.CONFIG_ENV_VAR]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv(settings.CONFIG_ENV_VAR, str(tmp_path / "cfg" / "config.toml"))
    return dict(os.environ)


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    return tmp_path / "cfg" / "config.toml"


def test_path_prints_zuotang_config(config_file: Path) -> None:
    proc = cli("config", "path")
    assert proc.returncode == 0
    assert proc.stdout == f"{config_file}\n"


def test_path_follows_xdg_without_zuotang_config(tmp_path: Path) -> None:
    proc = cli("config", "path", env={settings.CONFIG_ENV_VAR: None})
    expected = tmp_path / "xdg" / "zuotang" / "config.toml"
    assert proc.stdout == f"{expected}\n"


def test_show_defaults_without_a_file(config_file: Path) -> None:
    proc = cli("config", "show")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == f"config file: {config_file} (not found)"
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert list(rows) == list(settings.NAMES)
    assert rows["appcode"][1:] == ["(not", "set)", "default"]
    assert rows["qps"][1:] == ["2", "default"]
    assert rows["scale"][1:] == ["auto", "default"]
    assert proc.stderr == ""


def test_show_names_every_source(config_file: Path) -> None:
    config_file.parent.mkdir(parents=True)
    config_file.write_text(f'appcode = "{CODE}"\nqps = 5\n', encoding="utf-8")
    config_file.chmod(0o600)
    proc = cli("config", "show", "--type", "face", env={"ZUOTANG_SCALE": "2"})
    assert proc.returncode == 0, proc.stderr
    rows = {line.split()[0]: line.split()[1:] for line in proc.stdout.splitlines()[1:]}
    assert rows["appcode"] == ["5e…c3", "file"]
    assert rows["qps"] == ["5", "file"]
    assert rows["type"] == ["face", "flag", "(--type)"]
    assert rows["scale"] == ["2", "env", "(ZUOTANG_SCALE)"]
    assert rows["endpoint"] == [settings.rules.DEFAULT_ENDPOINT, "default"]
    assert "(exists)" in proc.stdout
    assert CODE not in proc.stdout + proc.stderr


def test_show_json(config_file: Path) -> None:
    proc = cli("config", "show", "--json", env={"ZUOTANG_APPCODE": CODE})
    assert proc.returncode == 0, proc.stderr
    document = json.loads(proc.stdout)
    assert document["config_file"] == {"path": str(config_file), "exists": False}
    assert document["settings"]["appcode"] == {
        "value": "5e…c3", "source": "env", "origin": "ZUOTANG_APPCODE"
    }  # fmt: skip
    assert document["settings"]["qps"] == {"value": 2.0, "source": "default", "origin": ""}
    assert document["warnings"] == []
    assert CODE not in proc.stdout


def test_show_warns_about_unknown_keys_on_stderr(config_file: Path) -> None:
    config_file.parent.mkdir(parents=True)
    config_file.write_text("colour = 'red'\n", encoding="utf-8")
    proc = cli("config", "show", "--json")
    assert proc.returncode == 0
    assert (
        proc.stderr
        == f"zuotang: warning: config file {config_file}: unknown key 'colour' ignored\n"
    )
    assert json.loads(proc.stdout)["warnings"] == [
        f"config file {config_file}: unknown key 'colour' ignored"
    ]


def test_show_with_a_bad_file_is_a_one_line_usage_error(config_file: Path) -> None:
    config_file.parent.mkdir(parents=True)
    config_file.write_text("qps = 'fast'\n", encoding="utf-8")
    proc = cli("config", "show")
    assert proc.returncode == ExitStatus.USAGE
    assert proc.stdout == ""
    assert proc.stderr == (
        f"zuotang: error: config file {config_file}: key 'qps': "
        "must be a number of at least 0.01, not 'fast'\n"
    )


def test_set_appcode_from_stdin(config_file: Path) -> None:
    proc = cli("config", "set-appcode", stdin=f"  {CODE}\n")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"AppCode saved to {config_file}\n"
    assert stat.S_IMODE(config_file.stat().st_mode) == 0o600
    assert settings.read_config(config_file).values["appcode"].value == CODE
    shown = cli("config", "show")
    assert "5e…c3" in shown.stdout
    for text in (proc.stdout, proc.stderr, shown.stdout, shown.stderr):
        assert CODE not in text


def test_set_appcode_keeps_the_other_keys(config_file: Path) -> None:
    config_file.parent.mkdir(parents=True)
    config_file.write_text('# mine\nqps = 4\nappcode = "old-code-1"\n', encoding="utf-8")
    assert cli("config", "set-appcode", stdin=CODE).returncode == 0
    assert config_file.read_text(encoding="utf-8") == f'# mine\nqps = 4\nappcode = "{CODE}"\n'


MY_CONFIG = """\
# zuotang for the studio (edited by hand)

endpoint = "http://127.0.0.1:9/tasks/visual/scale"  # the emulator, for now
qps = 3   # what we paid for
# products are clean, portraits are face
type = "face"

[studio]   # our own notes, not zuotang's
owner = "王"
"""


def test_set_and_set_appcode_keep_the_users_comments_keys_and_layout(config_file: Path) -> None:
    config_file.parent.mkdir(parents=True)
    config_file.write_text(MY_CONFIG, encoding="utf-8")

    assert cli("config", "set", "qps", "5").returncode == 0
    assert cli("config", "set", "scale", "2").returncode == 0
    assert cli("config", "set-appcode", stdin=CODE).returncode == 0
    assert cli("config", "set-appcode", stdin=CODE[::-1]).returncode == 0  # replaced

    assert config_file.read_text(encoding="utf-8") == (
        "# zuotang for the studio (edited by hand)\n"
        "\n"
        f'appcode = "{CODE[::-1]}"\n'
        'scale = "2"\n'
        'endpoint = "http://127.0.0.1:9/tasks/visual/scale"  # the emulator, for now\n'
        "qps = 5.0   # what we paid for\n"
        "# products are clean, portraits are face\n"
        'type = "face"\n'
        "\n"
        "[studio]   # our own notes, not zuotang's\n"
        'owner = "王"\n'
    )
    assert stat.S_IMODE(config_file.stat().st_mode) == 0o600
    shown = cli("config", "show", "--json")
    qps = json.loads(shown.stdout)["settings"]["qps"]
    assert qps == {"value": 5.0, "source": "file", "origin": str(config_file)}
    assert shown.stderr.endswith(f"config file {config_file}: unknown key 'studio' ignored\n")


def test_set_appcode_refuses_an_empty_code(config_file: Path) -> None:
    proc = cli("config", "set-appcode", stdin="  \n")
    assert proc.returncode == ExitStatus.USAGE
    assert proc.stderr == "zuotang: error: empty AppCode: nothing was written\n"
    assert not config_file.exists()


def test_set_appcode_refuses_a_malformed_code_without_echoing_it(config_file: Path) -> None:
    secret = "two words-secret"
    proc = cli("config", "set-appcode", stdin=secret)
    assert proc.returncode == ExitStatus.USAGE
    assert "AppCode" in proc.stderr
    assert "secret" not in proc.stdout + proc.stderr
    assert not config_file.exists()


def test_set_appcode_warns_when_the_environment_overrides_it() -> None:
    proc = cli("config", "set-appcode", stdin=CODE, env={"ZUOTANG_APPCODE": "env-code-9"})
    assert proc.returncode == 0
    assert "ZUOTANG_APPCODE is set" in proc.stderr
    assert "env-code-9" not in proc.stdout + proc.stderr


class FakeTerminal:
    def isatty(self) -> bool:
        return True

    def read(self) -> str:
        raise AssertionError("a terminal is not read: getpass is used")


def test_read_appcode_uses_getpass_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    prompts: list[str] = []

    def fake_getpass(prompt: str) -> str:
        prompts.append(prompt)
        return f" {CODE} "

    monkeypatch.setattr(config_cmd.getpass, "getpass", fake_getpass)
    assert config_cmd.read_appcode(FakeTerminal()) == CODE  # type: ignore[arg-type]
    assert prompts == ["AppCode (input hidden): "]
    monkeypatch.setattr(config_cmd.getpass, "getpass", lambda prompt: "")
    with pytest.raises(UsageError, match="empty AppCode"):
        config_cmd.read_appcode(FakeTerminal())  # type: ignore[arg-type]


def test_the_appcode_is_never_printed_by_any_config_command(config_file: Path) -> None:
    config_file.parent.mkdir(parents=True)
    config_file.write_text(f'appcode = "{CODE}"\ncolour = 1\n', encoding="utf-8")
    config_file.chmod(0o644)  # also triggers the "readable by others" warning
    runs = [
        cli("config", "show"),
        cli("config", "show", "--json"),
        cli("config", "show", "--appcode", CODE),
        cli("config", "show", env={"ZUOTANG_APPCODE": CODE}),
        cli("config", "show", "--appcode", CODE + " x"),  # invalid: an error
        cli("config", "show", "--qps", "0", env={"ZUOTANG_APPCODE": CODE}),
        cli("config", "set-appcode", stdin=CODE),
        cli("config", "path"),
    ]
    assert runs[4].returncode == ExitStatus.USAGE
    assert runs[5].returncode == ExitStatus.USAGE
    for proc in runs:
        assert CODE not in proc.stdout + proc.stderr, proc.args


@pytest.mark.parametrize(
    ("args", "example"),
    [
        (("config",), "zuotang config set-appcode"),
        (("config", "show"), "zuotang config show --json"),
        (("config", "set-appcode"), "| zuotang config set-appcode"),
        (("config", "path"), '"$(zuotang config path)"'),
    ],
)
def test_help_shows_examples(args: tuple[str, ...], example: str) -> None:
    proc = cli(*args, "--help")
    assert proc.returncode == 0
    assert "Examples:" in proc.stdout
    assert example in proc.stdout


def test_config_without_a_subcommand_shows_help() -> None:
    proc = cli("config")
    assert "show" in proc.stdout + proc.stderr
    assert "set-appcode" in proc.stdout + proc.stderr
