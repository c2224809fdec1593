"""Settings of ``zuotang enhance`` resolved from flags, environment, config file, defaults.

Precedence: a flag beats its environment variable (``ZUOTANG_QPS``...), which beats the
config file (TOML, see :func:`config_path`), which beats the default.  Every value
is validated where it comes from, and a bad one is a :class:`UsageError` naming that
place (the flag, the variable, or the file and key).  The AppCode is never shown: errors
leave it out and :func:`mask` hides all but its first and last two characters.

The file is read with tomllib (tomli on 3.10): the strict reference parser, giving plain
values to validate.  ``config set`` and ``config set-appcode`` edit it with tomlkit, which
keeps the user's comments, order and layout, and their result is read back with tomllib
before it replaces the file: two parsers must agree on what was written.

No Typer here: :mod:`zuotang_cli.cli.commands.config` parses and prints.
"""

from __future__ import annotations

import enum
import math
import os
import re
import sys
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs

from zuotang_cli import i18n
from zuotang_cli.app import options
from zuotang_cli.atomic import write_atomic
from zuotang_cli.errors import UsageError
from zuotang_cli.i18n import gettext as _
from zuotang_cli.protocol import rules

if sys.version_info >= (3, 11):
    import tomllib
else:  # the same parser, published for 3.10
    import tomli as tomllib

NAMES = (
    "appcode",
    "app_key",
    "app_secret",
    "auth",
    "endpoint",
    "qps",
    "type",
    "scale",
    "output_dir",
    "billing",
    "body",
    "lang",
    "send_files",
    "upload_to",
    "upload_endpoint",
)
"""The settings, in display order; also the keys the config file may hold."""
ENV_VARS = {name: f"ZUOTANG_{name.upper()}" for name in NAMES}
FLAGS = {name: "--" + name.replace("_", "-") for name in NAMES}
DEFAULTS: dict[str, object | None] = {
    "appcode": None,
    "app_key": None,
    "app_secret": None,
    "auth": None,
    "endpoint": rules.DEFAULT_ENDPOINT,
    "qps": rules.DEFAULT_QPS,
    "type": "clean",
    "scale": "auto",
    "output_dir": Path("out"),
    "billing": "every-200",
    "body": None,
    "lang": None,
    "send_files": None,
    "upload_to": None,
    "upload_endpoint": None,
}
CONFIG_ENV_VAR = "ZUOTANG_CONFIG"
CONFIG_NAME = "config.toml"
MIN_QPS = options.MIN_QPS
SECRET = "appcode"
SECRETS = frozenset({SECRET, "app_secret"})
"""Settings never shown, nor taken from a flag (``app_secret``) or by ``config set``."""
AUTH_SCHEMES = ("appcode", "signature")


class Source(str, enum.Enum):
    FLAG = "flag"
    ENV = "env"
    FILE = "file"
    DEFAULT = "default"


def mask(secret: str) -> str:
    """``ab…yz`` for a secret of 8 characters or more, else ``********``: never the
    secret.  An AppSecret is never shown even so: :func:`_shown` gives it ``********``."""
    if len(secret) < 8:
        return "********"
    return f"{secret[:2]}…{secret[-2:]}"


@dataclass(frozen=True)
class Setting:
    """One resolved value and where it came from (``origin``: the flag, variable or file)."""

    value: object | None
    source: Source
    origin: str = ""
    secret: bool = False

    def shown(self) -> str:
        """The value as text for people: masked when secret, ``(not set)`` when None."""
        return _shown(self.value, self.secret)

    def __repr__(self) -> str:
        return f"Setting({self.shown()!r}, {self.source.value}, {self.origin!r})"


def _shown(value: object | None, secret: bool) -> str:
    if value is None:
        return "(not set)"
    if secret:
        return mask(str(value)) if not isinstance(value, _Hidden) else "********"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


# ---------------------------------------------------------------------------------------
# Where the config file is


def config_path(env: Mapping[str, str] | None = None) -> Path:
    """The config file: ``$ZUOTANG_CONFIG``, else the platform's per-user config folder
    as :mod:`platformdirs` finds it (from the process environment).

    Linux and others: ``$XDG_CONFIG_HOME/zuotang/config.toml`` (default ``~/.config``);
    macOS: ``~/Library/Application Support/zuotang/config.toml``;
    Windows: ``%APPDATA%\\zuotang\\config.toml``.
    """
    env = os.environ if env is None else env
    if env.get(CONFIG_ENV_VAR):
        return _expand_home(env[CONFIG_ENV_VAR], env)
    folder = platformdirs.user_config_path("zuotang", appauthor=False, roaming=True)
    return folder / CONFIG_NAME


def _home(env: Mapping[str, str]) -> Path:
    return Path(env["HOME"]) if env.get("HOME") else Path.home()


def _expand_home(text: str, env: Mapping[str, str]) -> Path:
    if text == "~" or text.startswith(("~/", "~\\")):
        return _home(env) / text[2:]
    return Path(text).expanduser()  # ~user, or no tilde


# ---------------------------------------------------------------------------------------
# Validation: one checker per setting, each given the raw value and where it came from


@dataclass(frozen=True)
class _Place:
    """Where a raw value came from, for messages; ``text`` is True for env (all strings)."""

    label: str
    source: Source
    origin: str

    @property
    def text(self) -> bool:
        return self.source is Source.ENV


def _bad(place: _Place, problem: str) -> UsageError:
    return UsageError(_("{label}: {problem}").format(label=place.label, problem=problem))


_APPCODE_RE = re.compile(r"[\x21-\x7e]+")


def _check_appcode(raw: object, place: _Place) -> str:
    # Never put the value in the message: it is a secret.
    if not isinstance(raw, str) or not _APPCODE_RE.fullmatch(raw):
        raise _bad(place, _("the AppCode must be non-empty printable ASCII without spaces"))
    return raw


class _Hidden(str):
    """An AppSecret: shown as ``********`` whole, not even its ends."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "'********'"


def _check_app_key(raw: object, place: _Place) -> str:
    if not isinstance(raw, str) or not _APPCODE_RE.fullmatch(raw):
        raise _bad(place, _("the AppKey must be non-empty printable ASCII without spaces"))
    return raw


def _check_app_secret(raw: object, place: _Place) -> str:
    # Never put the value in the message: it is a secret.
    if not isinstance(raw, str) or not _APPCODE_RE.fullmatch(raw):
        raise _bad(place, _("the AppSecret must be non-empty printable ASCII without spaces"))
    return _Hidden(raw)


def _check_endpoint(raw: object, place: _Place) -> str:
    if isinstance(raw, str):
        parts = urllib.parse.urlsplit(raw)
        if parts.scheme in ("http", "https") and parts.hostname:
            return raw
    raise _bad(place, _("must be an http(s) URL, not {raw!r}").format(raw=raw))


def _check_qps(raw: object, place: _Place) -> float:
    value: float | None = None
    if isinstance(raw, str) and place.text:
        try:
            value = float(raw)
        except ValueError:
            value = None
    elif isinstance(raw, int | float) and not isinstance(raw, bool):
        value = float(raw)
    if value is None or not math.isfinite(value) or value < MIN_QPS:
        raise _bad(
            place,
            _("must be a number of at least {MIN_QPS:g}, not {raw!r}").format(
                MIN_QPS=MIN_QPS, raw=raw
            ),
        )
    return value


def _check_upload_to(raw: object, place: _Place) -> str:
    """``s3://BUCKET/PREFIX`` (docs/uploads.md)."""
    if isinstance(raw, str):
        parts = urllib.parse.urlsplit(raw)
        if parts.scheme == "s3" and parts.netloc and not parts.query and not parts.fragment:
            return raw
    raise _bad(place, _("must be s3://BUCKET/PREFIX, not {raw!r}").format(raw=raw))


def _check_choice(choices: tuple[str, ...]) -> Callable[[object, _Place], str]:
    def check(raw: object, place: _Place) -> str:
        value = raw.value if isinstance(raw, enum.Enum) else raw
        if isinstance(value, int) and not isinstance(value, bool) and not place.text:
            value = str(value)  # scale = 2 in the file, or an int flag
        if isinstance(value, str) and value in choices:
            return value
        raise _bad(
            place,
            _("must be one of {value}, not {raw!r}").format(value=", ".join(choices), raw=raw),
        )

    return check


def _check_output_dir(raw: object, place: _Place) -> Path:
    if isinstance(raw, os.PathLike) and not isinstance(raw, str):
        raw = os.fspath(raw)
    if not isinstance(raw, str) or not raw.strip() or "\x00" in raw:
        raise _bad(place, _("must be a folder path, not {raw!r}").format(raw=raw))
    path = Path(raw)
    return path if place.source is Source.FLAG else path.expanduser()


def _check_lang(raw: object, place: _Place) -> str:
    if isinstance(raw, str) and i18n.is_language_tag(raw):
        return raw
    raise _bad(place, _("must be a language such as zh_CN or en, not {raw!r}").format(raw=raw))


_CHECKS: dict[str, Callable[[object, _Place], object]] = {
    "appcode": _check_appcode,
    "app_key": _check_app_key,
    "app_secret": _check_app_secret,
    "auth": _check_choice(AUTH_SCHEMES),
    "endpoint": _check_endpoint,
    "qps": _check_qps,
    "type": _check_choice(rules.TYPES),
    "scale": _check_choice(rules.SCALES),
    "output_dir": _check_output_dir,
    "billing": _check_choice(("every-200", "success-only")),
    "body": _check_choice(("form", "multipart")),
    "lang": _check_lang,
    "send_files": _check_choice(tuple(choice.value for choice in rules.FileTransport)),
    "upload_to": _check_upload_to,
    "upload_endpoint": _check_endpoint,
}


def check(name: str, raw: object, place: _Place) -> Setting:
    """The validated setting ``name`` from ``raw``, or :class:`UsageError` naming ``place``."""
    value = _CHECKS[name](raw, place)
    return Setting(value, place.source, place.origin, secret=name in SECRETS)


# ---------------------------------------------------------------------------------------
# The config file


@dataclass(frozen=True)
class ConfigFile:
    """The config file as read: its validated values, and warnings to show on stderr."""

    path: Path
    exists: bool = False
    values: Mapping[str, Setting] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    def __repr__(self) -> str:  # values hold the AppCode
        return f"ConfigFile({str(self.path)!r}, exists={self.exists}, keys={list(self.values)})"


def read_config(path: Path) -> ConfigFile:
    """Read and validate the config file at ``path``; a missing file is an empty config.

    Unknown keys are warnings; an unreadable file, bad TOML or a bad value is a
    :class:`UsageError` naming the file (and the key).
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return ConfigFile(path)
    except OSError as exc:
        raise UsageError(
            _("cannot read config file {path}: {reason}").format(
                path=path, reason=exc.strerror or exc
            )
        ) from exc
    raw = parse_toml(_decode(data, path), path)
    values, warnings = _validate(raw, path)
    if SECRETS & set(values):
        warnings.extend(_exposure_warning(path))
    return ConfigFile(path, True, values, tuple(warnings))


def _decode(data: bytes, path: Path) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(_("config file {path}: not UTF-8 text").format(path=path)) from None


def _validate(raw: Mapping[str, Any], path: Path) -> tuple[dict[str, Setting], list[str]]:
    values: dict[str, Setting] = {}
    warnings: list[str] = []
    for key, value in raw.items():
        if key not in _CHECKS:
            warnings.append(
                _("config file {path}: unknown key {key!r} ignored").format(path=path, key=key)
            )
            continue
        place = _Place(
            _("config file {path}: key {key!r}").format(path=path, key=key), Source.FILE, str(path)
        )
        values[key] = check(key, value, place)
    return values, warnings


def _exposure_warning(path: Path) -> list[str]:
    """A warning when the file holding the AppCode is readable by others (POSIX)."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return []
    if os.name == "posix" and mode & 0o077:
        return [
            _("config file {path} holds a secret and is readable by others: chmod 600 it").format(
                path=path
            )
        ]
    return []


# ---------------------------------------------------------------------------------------
# Resolution


def resolve(
    flags: Mapping[str, object | None],
    env: Mapping[str, str],
    file: ConfigFile | None = None,
) -> dict[str, Setting]:
    """Every setting, from the first source that has it: flag, env, file, default.

    ``flags`` maps setting names to the values given on the command line (None or absent:
    not given); ``env`` is the environment (an empty variable counts as unset).  Pure:
    it reads nothing but its arguments (and the home folder, for a ``~`` in an output
    folder from the environment).  Raises :class:`UsageError` for a bad value.
    """
    unknown = set(flags) - set(NAMES)
    if unknown:
        raise ValueError(f"unknown settings: {sorted(unknown)}")
    file_values = file.values if file is not None else {}
    return {name: _resolve_one(name, flags.get(name), env, file_values) for name in NAMES}


def _resolve_one(
    name: str, flag: object | None, env: Mapping[str, str], file_values: Mapping[str, Setting]
) -> Setting:
    if flag is not None:
        return check(name, flag, _Place(FLAGS[name], Source.FLAG, FLAGS[name]))
    variable = ENV_VARS[name]
    if env.get(variable):
        place = _Place(
            _("environment variable {variable}").format(variable=variable), Source.ENV, variable
        )
        return check(name, env[variable], place)
    if name in file_values:
        return file_values[name]
    return Setting(DEFAULTS[name], Source.DEFAULT, "", secret=name in SECRETS)


@dataclass(frozen=True)
class Resolved:
    """The resolved settings with typed access, the config file they read, its warnings."""

    settings: Mapping[str, Setting]
    file: ConfigFile

    @property
    def appcode(self) -> str | None:
        value = self.settings["appcode"].value
        return value if isinstance(value, str) else None

    @property
    def app_key(self) -> str | None:
        value = self.settings["app_key"].value
        return value if isinstance(value, str) else None

    @property
    def app_secret(self) -> str | None:
        value = self.settings["app_secret"].value
        return value if isinstance(value, str) else None

    @property
    def auth(self) -> str | None:
        """``appcode``, ``signature``, or None: signatures when an AppKey and AppSecret
        are set, the AppCode otherwise."""
        value = self.settings["auth"].value
        return value if isinstance(value, str) else None

    @property
    def endpoint(self) -> str:
        return str(self.settings["endpoint"].value)

    @property
    def qps(self) -> float:
        value = self.settings["qps"].value
        assert isinstance(value, float)
        return value

    @property
    def type(self) -> str:
        return str(self.settings["type"].value)

    @property
    def scale(self) -> str:
        """``auto``, ``1``, ``2`` or ``4``."""
        return str(self.settings["scale"].value)

    @property
    def scale_factor(self) -> int | None:
        """The requested factor, None for auto."""
        return None if self.scale == "auto" else int(self.scale)

    @property
    def output_dir(self) -> Path:
        value = self.settings["output_dir"].value
        assert isinstance(value, Path)
        return value

    @property
    def billing(self) -> str:
        """``every-200`` (the marketplace's rule) or ``success-only``."""
        return str(self.settings["billing"].value)

    @property
    def body(self) -> str | None:
        """``form``, ``multipart``, or None: form, switched when the endpoint needs it."""
        value = self.settings["body"].value
        return value if isinstance(value, str) else None

    @property
    def send_files(self) -> str | None:
        """``multipart``, ``base64``, ``bucket``, or None: multipart, switched to the
        bucket when the endpoint refuses files in the body and a bucket is given."""
        value = self.settings["send_files"].value
        return value if isinstance(value, str) else None

    @property
    def upload_to(self) -> str | None:
        value = self.settings["upload_to"].value
        return value if isinstance(value, str) else None

    @property
    def upload_endpoint(self) -> str | None:
        value = self.settings["upload_endpoint"].value
        return value if isinstance(value, str) else None

    @property
    def warnings(self) -> tuple[str, ...]:
        return self.file.warnings


def load(
    flags: Mapping[str, object | None] | None = None,
    env: Mapping[str, str] | None = None,
) -> Resolved:
    """Read the config file and resolve every setting (the one call the CLI makes).

    ``env`` defaults to ``os.environ``. Print ``.warnings`` on stderr.
    """
    env = os.environ if env is None else env
    file = read_config(config_path(env))
    return Resolved(resolve(flags or {}, env, file), file)


def language(flag: str | None, env: Mapping[str, str] | None = None) -> str | None:
    """The language asked for: ``--lang``, ``ZUOTANG_LANG``, the config file's ``lang``;
    None when none says (the locale's variables decide, docs/i18n.md).  A config file
    that cannot be read is left to the command to report."""
    env = os.environ if env is None else env
    try:
        file = read_config(config_path(env))
    except UsageError:
        file = ConfigFile(config_path(env))
    value = _resolve_one("lang", flag, env, file.values).value
    return value if isinstance(value, str) else None


# ---------------------------------------------------------------------------------------
# Writing the AppCode


def save_appcode(path: Path, appcode: str) -> Path:
    """Set ``appcode`` in the config file at ``path``, keeping every other line.

    Creates the file (and its folders) if needed; the file is replaced atomically by a
    new one of mode 0600 (so an existing file's mode is fixed too).  A symlink is
    followed.  Returns the path written.  Raises :class:`UsageError` for an empty or
    malformed code, or a file that cannot be read, parsed or safely updated.
    """
    _check_appcode(appcode, _Place(_("AppCode"), Source.FLAG, ""))
    target = Path(os.path.realpath(path))
    old = _read_existing(target)
    new = with_appcode(old, appcode, target)
    _write_private(target, new)
    return target


def _read_existing(path: Path) -> str | None:
    try:
        return _decode(path.read_bytes(), path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise UsageError(
            _("cannot read config file {path}: {reason}").format(
                path=path, reason=exc.strerror or exc
            )
        ) from exc


_HEADER = "# zuotang settings: see `zuotang config show`\n"


def save_app_secret(path: Path, secret: str) -> Path:
    """Set ``app_secret`` in the config file at ``path`` (as :func:`save_appcode`)."""
    _check_app_secret(secret, _Place(_("AppSecret"), Source.FLAG, ""))
    target = Path(os.path.realpath(path))
    _write_private(target, with_setting(_read_existing(target), "app_secret", secret, target))
    return target


def with_appcode(old: str | None, appcode: str, path: Path) -> str:
    """The text of the config file ``old`` with ``appcode = "..."`` set, all else kept."""
    return with_setting(old, SECRET, appcode, path)


def with_setting(old: str | None, name: str, value: str | float, path: Path) -> str:
    """The text of the config file ``old`` with ``name = value`` set, all else kept.

    A top-level ``name`` already there is replaced where it is by tomlkit, which keeps
    its spelling, indentation and comment, and every other byte of the file.  A new key
    is one line (written by tomlkit) after the file's opening comments, in the file's
    line ending.  The result is parsed back with tomllib and must equal the old file
    plus the new key; otherwise :class:`UsageError` (the file is left alone).
    """
    import tomlkit  # only to write: every command reads the file (the language) at start

    line = f"{name} = {tomlkit.item(value).as_string()}"
    if not old:
        return f"{_HEADER}{line}\n"
    before = parse_toml(old, path)
    new = _inserted(old, line) if name not in before else _replaced(old, before, name, value)
    if new is None or _parse_quietly(new) != {**before, name: value}:
        raise UsageError(
            _("cannot update config file {path} safely: set {name} there by hand").format(
                path=path, name=name
            )
        )
    return new


def _replaced(old: str, before: Mapping[str, Any], name: str, value: str | float) -> str | None:
    """``old`` with the value of its top-level ``name`` replaced by tomlkit; None when
    tomlkit cannot, or when ``name`` holds a table or an array (its content would go)."""
    import tomlkit
    from tomlkit.exceptions import TOMLKitError

    if isinstance(before[name], dict | list):
        return None
    try:
        document = tomlkit.parse(old)
        document[name] = value
    except (TOMLKitError, ValueError):
        return None
    return _ended(document.as_string())


def _inserted(old: str, line: str) -> str:
    lines = old.splitlines(keepends=True)
    newline = "\r\n" if lines[0].endswith("\r\n") else "\n"
    lines.insert(_after_comments(lines), line + newline)
    return _ended("".join(lines))


def _after_comments(lines: list[str]) -> int:
    index = 0
    while index < len(lines) and (not lines[index].strip() or lines[index].lstrip()[0] == "#"):
        index += 1
    return index


def _ended(text: str) -> str:
    """``text`` ending with a newline (a file whose last line had none gets one)."""
    return text if text.endswith(("\n", "\r")) else text + "\n"


def save_setting(path: Path, name: str, raw: str) -> tuple[Path, Setting]:
    """``zuotang config set NAME VALUE``: check ``raw`` as the config file's key ``name``
    is checked, and set it in the file at ``path`` (as :func:`save_appcode` does)."""
    if name == SECRET:
        raise UsageError(_("use 'zuotang config set-appcode': it reads the AppCode unechoed"))
    if name in SECRETS:
        raise UsageError(_("use 'zuotang config set-app-secret': it reads the AppSecret unechoed"))
    if name not in _CHECKS:
        known = ", ".join(n for n in NAMES if n not in SECRETS)
        raise UsageError(
            _("unknown setting {name!r}: one of {known}").format(name=name, known=known)
        )
    setting = check(
        name, raw, _Place(_("config set {name}").format(name=name), Source.ENV, "command line")
    )
    value: str | float = setting.value if isinstance(setting.value, float) else raw
    target = Path(os.path.realpath(path))
    _write_private(target, with_setting(_read_existing(target), name, value, target))
    return target, setting


def _parse_quietly(text: str) -> dict[str, Any] | None:
    try:
        return parse_toml(text, Path("(new)"))
    except UsageError:
        return None


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, mode 0600 (the file holds secrets)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_atomic(path, text, mode=0o600)
    except OSError as exc:
        raise UsageError(
            _("cannot write config file {path}: {reason}").format(
                path=path, reason=exc.strerror or exc
            )
        ) from exc


# ---------------------------------------------------------------------------------------
# TOML: tomllib (tomli on 3.10)


def parse_toml(text: str, path: Path) -> dict[str, Any]:
    """The top-level table of ``text``; :class:`UsageError` naming ``path`` if malformed."""
    try:
        result: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(
            _("config file {path}: not valid TOML: {exc}").format(path=path, exc=exc)
        ) from None
    return result


def describe(settings: Mapping[str, Setting], file: ConfigFile) -> dict[str, Any]:
    """A JSON-ready view for ``config show --json``: the AppCode masked."""
    return {
        "config_file": {"path": str(file.path), "exists": file.exists},
        "settings": {name: _described(setting) for name, setting in settings.items()},
        "warnings": list(file.warnings),
    }


def _described(setting: Setting) -> dict[str, Any]:
    value = setting.value
    if value is not None and (setting.secret or isinstance(value, Path)):
        value = setting.shown()
    return {"value": value, "source": setting.source.value, "origin": setting.origin}
