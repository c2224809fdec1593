"""Settings: precedence, sources, validation, masking, paths, TOML reading and the
0600 atomic write of the AppCode (zuotang_cli.app.settings, no CLI)."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path
from typing import Any

import platformdirs
import pytest

from zuotang_cli.app import settings
from zuotang_cli.app.settings import ConfigFile, Setting, Source
from zuotang_cli.errors import UsageError
from zuotang_cli.protocol import rules

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

CODE = "c0ffee00deadbeef1234567890abcdef"


@pytest.fixture(autouse=True)
def isolated_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No test reads the real user config or the caller's ZUOTANG_* variables."""
    for name in [*settings.ENV_VARS.values(), settings.CONFIG_ENV_VAR]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    path = tmp_path / "config" / "config.toml"
    monkeypatch.setenv(settings.CONFIG_ENV_VAR, str(path))
    return path


def file_with(path: Path, **values: Any) -> ConfigFile:
    """A ConfigFile as read from disk with ``values``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"{key} = {_toml(value)}" for key, value in values.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    path.chmod(0o600)
    return settings.read_config(path)


def _toml(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else str(value)


# ---------------------------------------------------------------------------------------
# Precedence

# name -> (flag value, env text, file value, default) and the value each one resolves to.
SAMPLES: dict[str, tuple[Any, str, Any, Any]] = {
    "appcode": ("flagcode-1234", "envcode-12345", "filecode-1234", None),
    "endpoint": ("http://flag.test/s", "http://env.test/s", "http://file.test/s", None),
    "qps": (7.0, "3.5", 4, None),
    "type": ("face", "face", "face", None),
    "scale": ("4", "2", 1, None),
    "output_dir": (Path("flag-out"), "env-out", "file-out", None),
    "billing": ("success-only", "success-only", "success-only", None),
    "body": ("multipart", "form", "multipart", None),
    "app_key": ("flag-key-1", "env-key-1", "file-key-1", None),
    "app_secret": ("flag-secret-1", "env-secret-1", "file-secret-1", None),
    "auth": ("signature", "appcode", "signature", None),
    "lang": ("zh_CN", "en", "zh-CN", None),
    "send_files": ("bucket", "base64", "multipart", None),
    "upload_to": ("s3://flag/p", "s3://env/p", "s3://file/p", None),
    "upload_endpoint": ("http://flag.test", "http://env.test", "http://file.test", None),
}
EXPECTED: dict[str, dict[Source, object | None]] = {
    "appcode": {Source.FLAG: "flagcode-1234", Source.ENV: "envcode-12345",
                Source.FILE: "filecode-1234", Source.DEFAULT: None},
    "endpoint": {Source.FLAG: "http://flag.test/s", Source.ENV: "http://env.test/s",
                 Source.FILE: "http://file.test/s", Source.DEFAULT: rules.DEFAULT_ENDPOINT},
    "qps": {Source.FLAG: 7.0, Source.ENV: 3.5, Source.FILE: 4.0, Source.DEFAULT: 2.0},
    "type": {Source.FLAG: "face", Source.ENV: "face", Source.FILE: "face",
             Source.DEFAULT: "clean"},
    "scale": {Source.FLAG: "4", Source.ENV: "2", Source.FILE: "1", Source.DEFAULT: "auto"},
    "output_dir": {Source.FLAG: Path("flag-out"), Source.ENV: Path("env-out"),
                   Source.FILE: Path("file-out"), Source.DEFAULT: Path("out")},
    "billing": {Source.FLAG: "success-only", Source.ENV: "success-only",
                Source.FILE: "success-only", Source.DEFAULT: "every-200"},
    "body": {Source.FLAG: "multipart", Source.ENV: "form", Source.FILE: "multipart",
             Source.DEFAULT: None},
    "app_key": {Source.FLAG: "flag-key-1", Source.ENV: "env-key-1",
                Source.FILE: "file-key-1", Source.DEFAULT: None},
    "app_secret": {Source.FLAG: "flag-secret-1", Source.ENV: "env-secret-1",
                   Source.FILE: "file-secret-1", Source.DEFAULT: None},
    "auth": {Source.FLAG: "signature", Source.ENV: "appcode", Source.FILE: "signature",
             Source.DEFAULT: None},
    "lang": {Source.FLAG: "zh_CN", Source.ENV: "en", Source.FILE: "zh-CN", Source.DEFAULT: None},
    "send_files": {Source.FLAG: "bucket", Source.ENV: "base64", Source.FILE: "multipart",
                   Source.DEFAULT: None},
    "upload_to": {Source.FLAG: "s3://flag/p", Source.ENV: "s3://env/p",
                  Source.FILE: "s3://file/p", Source.DEFAULT: None},
    "upload_endpoint": {Source.FLAG: "http://flag.test", Source.ENV: "http://env.test",
                        Source.FILE: "http://file.test", Source.DEFAULT: None},
}  # fmt: skip

# (flag given, env given, file given) -> the source that wins
PRECEDENCE = [
    ((True, True, True), Source.FLAG),
    ((True, False, False), Source.FLAG),
    ((True, True, False), Source.FLAG),
    ((True, False, True), Source.FLAG),
    ((False, True, True), Source.ENV),
    ((False, True, False), Source.ENV),
    ((False, False, True), Source.FILE),
    ((False, False, False), Source.DEFAULT),
]


@pytest.mark.parametrize("name", settings.NAMES)
@pytest.mark.parametrize(("given_", "winner"), PRECEDENCE)
def test_precedence_flag_env_file_default(
    name: str, given_: tuple[bool, bool, bool], winner: Source, isolated_config: Path
) -> None:
    flag, env_text, file_value, _ = SAMPLES[name]
    has_flag, has_env, has_file = given_
    flags = {name: flag} if has_flag else {}
    env = {settings.ENV_VARS[name]: env_text} if has_env else {}
    file = file_with(isolated_config, **({name: file_value} if has_file else {}))

    setting = settings.resolve(flags, env, file)[name]

    assert setting.source is winner
    assert setting.value == EXPECTED[name][winner]


def test_resolve_returns_every_setting_in_order() -> None:
    resolved = settings.resolve({}, {}, None)
    assert list(resolved) == list(settings.NAMES)
    assert {s.source for s in resolved.values()} == {Source.DEFAULT}


def test_origins_name_the_flag_variable_and_file(isolated_config: Path) -> None:
    file = file_with(isolated_config, type="face")
    resolved = settings.resolve({"qps": 3.0}, {"ZUOTANG_SCALE": "2"}, file)
    assert resolved["qps"].origin == "--qps"
    assert resolved["scale"].origin == "ZUOTANG_SCALE"
    assert resolved["type"].origin == str(isolated_config)
    assert resolved["endpoint"].origin == ""


def test_none_flag_and_empty_env_count_as_not_given(isolated_config: Path) -> None:
    file = file_with(isolated_config, qps=5)
    resolved = settings.resolve({"qps": None}, {"ZUOTANG_QPS": ""}, file)
    assert resolved["qps"] == Setting(5.0, Source.FILE, str(isolated_config))


def test_unknown_flag_name_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown settings"):
        settings.resolve({"colour": "red"}, {}, None)


def test_enum_flags_are_taken_by_value() -> None:
    import enum

    class Kind(str, enum.Enum):
        face = "face"

    assert settings.resolve({"type": Kind.face}, {}, None)["type"].value == "face"


def test_load_reads_the_file_and_the_environment(isolated_config: Path) -> None:
    file_with(isolated_config, appcode=CODE, scale=4, output_dir="~/pics")
    resolved = settings.load({"qps": 1.5}, env={**os.environ, "ZUOTANG_TYPE": "face"})
    assert resolved.appcode == CODE
    assert resolved.qps == 1.5
    assert resolved.type == "face"
    assert resolved.scale == "4"
    assert resolved.scale_factor == 4
    assert resolved.endpoint == rules.DEFAULT_ENDPOINT
    assert resolved.output_dir == Path(os.environ["HOME"]) / "pics"
    assert resolved.file.exists
    assert resolved.warnings == ()


def test_load_without_a_file_gives_the_defaults(isolated_config: Path) -> None:
    resolved = settings.load()
    assert not resolved.file.exists
    assert resolved.file.path == isolated_config
    assert resolved.appcode is None
    assert resolved.scale_factor is None
    assert resolved.qps == rules.DEFAULT_QPS
    assert resolved.output_dir == Path("out")


# ---------------------------------------------------------------------------------------
# Validation


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("qps", '"2"', "number"),
        ("qps", "0", "at least"),
        ("qps", "-1.5", "at least"),
        ("qps", "nan", "number"),
        ("qps", "inf", "number"),
        ("qps", "true", "number"),
        ("type", '"portrait"', "clean, face"),
        ("scale", "3", "auto, 1, 2, 4"),
        ("scale", "2.0", "auto, 1, 2, 4"),
        ("scale", "true", "auto, 1, 2, 4"),
        ("endpoint", '"ftp://example.com/x"', "http(s) URL"),
        ("endpoint", '"not a url"', "http(s) URL"),
        ("endpoint", "443", "http(s) URL"),
        ("output_dir", '""', "folder"),
        ("output_dir", "5", "folder"),
        ("appcode", '""', "AppCode"),
        ("appcode", "12345678", "AppCode"),
    ],
)
def test_bad_file_value_names_the_file_and_key(
    isolated_config: Path, name: str, value: str, problem: str
) -> None:
    isolated_config.parent.mkdir(parents=True)
    isolated_config.write_text(f"{name} = {value}\n", encoding="utf-8")
    with pytest.raises(UsageError) as caught:
        settings.read_config(isolated_config)
    message = str(caught.value)
    assert str(isolated_config) in message
    assert f"key {name!r}" in message
    assert problem in message


@pytest.mark.parametrize(
    ("name", "text"),
    [("qps", "fast"), ("qps", "0"), ("type", "Face"), ("scale", "8"), ("endpoint", "x")],
)
def test_bad_env_value_names_the_variable(name: str, text: str) -> None:
    variable = settings.ENV_VARS[name]
    with pytest.raises(UsageError, match=f"environment variable {variable}"):
        settings.resolve({}, {variable: text}, None)


def test_env_numbers_are_parsed_from_text() -> None:
    resolved = settings.resolve({}, {"ZUOTANG_QPS": "0.5", "ZUOTANG_SCALE": "1"}, None)
    assert resolved["qps"].value == 0.5
    assert resolved["scale"].value == "1"


def test_bad_flag_value_names_the_flag() -> None:
    with pytest.raises(UsageError, match="--endpoint: must be an http"):
        settings.resolve({"endpoint": "file:///etc/passwd"}, {}, None)
    with pytest.raises(UsageError, match="--output-dir"):
        settings.resolve({"output_dir": ""}, {}, None)


@pytest.mark.parametrize("bad", ["with space", "tab\there", "", "ünïcode-code", "new\nline"])
def test_a_bad_appcode_is_refused_without_echoing_it(bad: str) -> None:
    for flags, env in (({"appcode": bad}, {}), ({}, {"ZUOTANG_APPCODE": bad})):
        if not bad and env:
            continue  # an empty variable is unset
        with pytest.raises(UsageError) as caught:
            settings.resolve(flags, env, None)
        assert "AppCode" in str(caught.value)
        if bad:
            assert bad not in str(caught.value)


def test_unknown_keys_are_warnings(isolated_config: Path) -> None:
    file = file_with(isolated_config, qps=3, colour="red")
    assert file.warnings == (f"config file {isolated_config}: unknown key 'colour' ignored",)
    assert set(file.values) == {"qps"}


def test_a_table_is_an_unknown_key(isolated_config: Path) -> None:
    isolated_config.parent.mkdir(parents=True)
    isolated_config.write_text("qps = 3\n[profile]\nqps = 9\n", encoding="utf-8")
    file = settings.read_config(isolated_config)
    assert file.values["qps"].value == 3.0
    assert "unknown key 'profile'" in file.warnings[0]


def test_output_dir_from_env_and_file_expands_the_home() -> None:
    resolved = settings.resolve({}, {"ZUOTANG_OUTPUT_DIR": "~/x"}, None)
    assert resolved["output_dir"].value == Path.home() / "x"


def test_missing_file_is_an_empty_config(isolated_config: Path) -> None:
    file = settings.read_config(isolated_config)
    assert file == ConfigFile(isolated_config)
    assert not file.exists


def test_malformed_toml_names_the_file(isolated_config: Path) -> None:
    isolated_config.parent.mkdir(parents=True)
    isolated_config.write_text("qps = = 3\n", encoding="utf-8")
    with pytest.raises(UsageError, match=f"config file {isolated_config}: "):
        settings.read_config(isolated_config)


def test_non_utf8_file_is_a_usage_error(isolated_config: Path) -> None:
    isolated_config.parent.mkdir(parents=True)
    isolated_config.write_bytes(b'type = "\xff"\n')
    with pytest.raises(UsageError, match="not UTF-8"):
        settings.read_config(isolated_config)


def test_unreadable_path_is_a_usage_error(isolated_config: Path) -> None:
    isolated_config.mkdir(parents=True)  # a folder where the file should be
    with pytest.raises(UsageError, match="cannot read config file"):
        settings.read_config(isolated_config)


@pytest.mark.skipif(os.name != "posix", reason="POSIX modes")
def test_an_appcode_readable_by_others_is_warned_about(isolated_config: Path) -> None:
    file_with(isolated_config, appcode=CODE)
    isolated_config.chmod(0o644)
    file = settings.read_config(isolated_config)
    assert any("readable by others" in warning for warning in file.warnings)
    assert all(CODE not in warning for warning in file.warnings)


# ---------------------------------------------------------------------------------------
# Masking


@pytest.mark.parametrize(
    ("secret", "shown"),
    [
        (CODE, "c0…ef"),
        ("abcdefgh", "ab…gh"),
        ("abcdefg", "********"),
        ("ab", "********"),
        ("", "********"),
    ],
)
def test_mask(secret: str, shown: str) -> None:
    assert settings.mask(secret) == shown


def test_the_appcode_is_masked_in_every_representation(isolated_config: Path) -> None:
    file = file_with(isolated_config, appcode=CODE)
    resolved = settings.load()
    texts = [
        repr(file),
        str(file),
        repr(resolved),
        repr(resolved.settings),
        resolved.settings["appcode"].shown(),
        str(settings.describe(resolved.settings, resolved.file)),
    ]
    for text in texts:
        assert CODE not in text
    assert resolved.settings["appcode"].shown() == "c0…ef"
    assert resolved.appcode == CODE  # the value itself is there for the caller


def test_describe_is_json_ready() -> None:
    import json

    resolved = settings.resolve({"appcode": CODE}, {}, None)
    document = settings.describe(resolved, ConfigFile(Path("/x/config.toml")))
    text = json.dumps(document)
    assert CODE not in text
    assert document["settings"]["appcode"] == {"value": "c0…ef", "source": "flag",
                                               "origin": "--appcode"}  # fmt: skip
    assert document["settings"]["qps"]["value"] == 2.0
    assert document["settings"]["output_dir"]["value"] == "out"
    assert document["config_file"] == {"path": "/x/config.toml", "exists": False}


# ---------------------------------------------------------------------------------------
# Where the config file is


def test_zuotang_config_wins(tmp_path: Path) -> None:
    env = {"ZUOTANG_CONFIG": "~/my.toml", "HOME": str(tmp_path), "XDG_CONFIG_HOME": "/xdg"}
    assert settings.config_path(env) == tmp_path / "my.toml"


def test_the_default_config_path_is_platformdirs_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(settings.CONFIG_ENV_VAR)
    expected = platformdirs.user_config_path("zuotang", appauthor=False, roaming=True)
    assert settings.config_path() == expected / "config.toml"


@pytest.mark.skipif(sys.platform in ("win32", "darwin"), reason="XDG is for Linux and BSD")
@pytest.mark.parametrize(
    ("xdg", "expected"),
    [
        ("{tmp}/cfg", "{tmp}/cfg/zuotang/config.toml"),
        ("", "{tmp}/home/.config/zuotang/config.toml"),
    ],
)
def test_xdg_config_home_is_honoured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, xdg: str, expected: str
) -> None:
    monkeypatch.delenv(settings.CONFIG_ENV_VAR)
    monkeypatch.setenv("XDG_CONFIG_HOME", xdg.format(tmp=tmp_path))
    assert settings.config_path() == Path(expected.format(tmp=tmp_path))


# ---------------------------------------------------------------------------------------
# Saving the AppCode


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX modes")


@posix_only
def test_save_creates_the_file_0600_and_its_folders(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "config.toml"
    assert settings.save_appcode(path, CODE) == path
    assert mode(path) == 0o600
    assert settings.read_config(path).values["appcode"].value == CODE
    assert settings.read_config(path).warnings == ()


@posix_only
def test_save_fixes_the_mode_of_an_existing_file(isolated_config: Path) -> None:
    file_with(isolated_config, qps=3)
    isolated_config.chmod(0o644)
    settings.save_appcode(isolated_config, CODE)
    assert mode(isolated_config) == 0o600


@posix_only
def test_save_is_0600_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o000)
    try:
        settings.save_appcode(tmp_path / "c.toml", CODE)
    finally:
        os.umask(old)
    assert mode(tmp_path / "c.toml") == 0o600


def test_save_keeps_other_keys_comments_and_tables(isolated_config: Path) -> None:
    original = (
        "# my zuotang settings\n"
        "\n"
        'endpoint = "http://127.0.0.1:9/tasks/visual/scale"  # the emulator\n'
        "qps = 5\n"
        "[later]\n"
        'appcode = "not-top-level"\n'
    )
    isolated_config.parent.mkdir(parents=True)
    isolated_config.write_text(original, encoding="utf-8")

    settings.save_appcode(isolated_config, CODE)

    text = isolated_config.read_text(encoding="utf-8")
    assert text.startswith("# my zuotang settings\n\n" + f'appcode = "{CODE}"\n')
    assert text.endswith(original.split("\n", 2)[2])
    data = tomllib.loads(text)
    assert data == {
        "appcode": CODE,
        "endpoint": "http://127.0.0.1:9/tasks/visual/scale",
        "qps": 5,
        "later": {"appcode": "not-top-level"},
    }


def test_save_replaces_the_appcode_line_in_place(isolated_config: Path) -> None:
    isolated_config.parent.mkdir(parents=True)
    isolated_config.write_text(
        'qps = 3\n  "appcode" = "old-code-123"   # old\ntype = "face"\n', encoding="utf-8"
    )
    settings.save_appcode(isolated_config, "new-code-456")
    assert isolated_config.read_text(encoding="utf-8") == (
        'qps = 3\n  "appcode" = "new-code-456"   # old\ntype = "face"\n'
    )  # the key as the user spelled it, its indentation and its comment kept


def test_save_keeps_crlf_and_a_missing_final_newline(isolated_config: Path) -> None:
    isolated_config.parent.mkdir(parents=True)
    isolated_config.write_bytes(b'qps = 3\r\ntype = "face"')
    settings.save_appcode(isolated_config, CODE)
    assert isolated_config.read_bytes() == (
        f'appcode = "{CODE}"\r\nqps = 3\r\ntype = "face"\n'.encode()
    )


@pytest.mark.parametrize("code", ['quo"te-code', "back\\slash-code", "#hash#-code"])
def test_save_escapes_the_code(isolated_config: Path, code: str) -> None:
    settings.save_appcode(isolated_config, code)
    assert settings.read_config(isolated_config).values["appcode"].value == code


def test_save_twice_updates(isolated_config: Path) -> None:
    settings.save_appcode(isolated_config, "first-code-1")
    settings.save_appcode(isolated_config, "second-code-2")
    text = isolated_config.read_text(encoding="utf-8")
    assert "first-code-1" not in text
    assert tomllib.loads(text) == {"appcode": "second-code-2"}


def test_save_follows_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "dotfiles" / "zuotang.toml"
    real.parent.mkdir()
    real.write_text("qps = 3\n", encoding="utf-8")
    link = tmp_path / "config.toml"
    link.symlink_to(real)
    assert settings.save_appcode(link, CODE) == real
    assert link.is_symlink()
    assert tomllib.loads(real.read_text(encoding="utf-8")) == {"appcode": CODE, "qps": 3}


def test_save_leaves_no_temporary_file(isolated_config: Path) -> None:
    settings.save_appcode(isolated_config, CODE)
    assert [p.name for p in isolated_config.parent.iterdir()] == ["config.toml"]


def test_a_failed_write_leaves_the_old_file_whole(
    isolated_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file_with(isolated_config, qps=3)
    before = isolated_config.read_bytes()

    def refuse(self: Path, target: Any) -> Path:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "replace", refuse)
    with pytest.raises(UsageError, match=r"cannot write config file .*No space left"):
        settings.save_appcode(isolated_config, CODE)
    assert isolated_config.read_bytes() == before
    assert [p.name for p in isolated_config.parent.iterdir()] == ["config.toml"]


@pytest.mark.parametrize(
    "original",
    [
        "[appcode]\nx = 1\n",  # a table where the code belongs: its content would go
        'appcode = ["a", "b"]\n',  # an array, likewise
        "qps = = 3\n",  # not TOML at all
    ],
)
def test_save_refuses_a_file_it_cannot_update_safely(isolated_config: Path, original: str) -> None:
    isolated_config.parent.mkdir(parents=True)
    isolated_config.write_text(original, encoding="utf-8")
    with pytest.raises(UsageError, match=str(isolated_config)):
        settings.save_appcode(isolated_config, CODE)
    assert isolated_config.read_text(encoding="utf-8") == original


def test_save_replaces_a_multi_line_value_whole(isolated_config: Path) -> None:
    isolated_config.parent.mkdir(parents=True)
    isolated_config.write_text('appcode = """\nold-code"""\n# after\nqps = 3\n', encoding="utf-8")
    settings.save_appcode(isolated_config, CODE)
    assert isolated_config.read_text(encoding="utf-8") == f'appcode = "{CODE}"\n# after\nqps = 3\n'


COMMENTED = (
    "# zuotang, for the shop's camera\r\n"
    "\r\n"
    'endpoint   =   "http://127.0.0.1:9/tasks/visual/scale"   # the emulator\r\n'
    "qps    = 3          # what we paid for\r\n"
    "# type: clean for products\r\n"
    'type = "clean"\r\n'
    "\r\n"
    "[team]  # not zuotang's\r\n"
    "qps = 99\r\n"
)
"""A config file as a person writes it: comments, alignment, CRLF, a table of their own."""


def test_save_setting_changes_one_value_and_keeps_every_other_byte(isolated_config: Path) -> None:
    isolated_config.parent.mkdir(parents=True)
    isolated_config.write_bytes(COMMENTED.encode())

    settings.save_setting(isolated_config, "qps", "5")
    settings.save_setting(isolated_config, "endpoint", "http://127.0.0.1:8/tasks/visual/scale")

    expected = COMMENTED.replace("qps    = 3 ", "qps    = 5.0 ").replace(":9/", ":8/")
    assert isolated_config.read_bytes() == expected.encode()
    values = settings.read_config(isolated_config).values
    assert values["qps"].value == 5.0
    assert values["endpoint"].value == "http://127.0.0.1:8/tasks/visual/scale"


def test_save_setting_adds_a_new_key_after_the_opening_comments(isolated_config: Path) -> None:
    isolated_config.parent.mkdir(parents=True)
    isolated_config.write_bytes(COMMENTED.encode())
    settings.save_setting(isolated_config, "scale", "2")
    lines = COMMENTED.split("\r\n")
    expected = "\r\n".join([*lines[:2], 'scale = "2"', *lines[2:]])
    assert isolated_config.read_bytes() == expected.encode()
    assert tomllib.loads(expected)["team"] == {"qps": 99}


@pytest.mark.parametrize("folder", ['my "photos"\\2024', "it's/图片", "tab\there", "x''' y"])
def test_save_setting_writes_any_folder_name_as_valid_toml(
    isolated_config: Path, folder: str
) -> None:
    isolated_config.parent.mkdir(parents=True)
    isolated_config.write_text("output_dir = 'old'  # mine\n", encoding="utf-8")
    settings.save_setting(isolated_config, "output_dir", folder)
    assert settings.read_config(isolated_config).values["output_dir"].value == Path(folder)
    assert isolated_config.read_text(encoding="utf-8").endswith("  # mine\n")


@pytest.mark.parametrize("bad", ["", "two words", "tab\tcode"])
def test_save_refuses_a_bad_code(isolated_config: Path, bad: str) -> None:
    with pytest.raises(UsageError, match="AppCode"):
        settings.save_appcode(isolated_config, bad)
    assert not isolated_config.exists()
