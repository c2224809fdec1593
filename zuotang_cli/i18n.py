"""The language zuotang speaks to people: gettext over the catalogs in ``locale/``.

Human text (help, errors, warnings, progress, the summary) goes through :func:`gettext`
(``_``) and :func:`ngettext`; machine text (report columns, JSON, error classes, outcome
words, exit codes) never does, so it stays English and byte-identical in every language.

The language is the first of: ``--lang``, ``ZUOTANG_LANG``, the config file's ``lang``,
then ``LANGUAGE`` / ``LC_ALL`` / ``LC_MESSAGES`` / ``LANG`` as gettext reads them; English
when no catalog matches.  The command line resolves it once, before its commands are
declared, and calls :func:`activate`; the active catalog is kept here and nowhere else.
Strings evaluated at import time are marked with :func:`N_` and translated where shown.
See docs/i18n.md.
"""

from __future__ import annotations

import functools
import gettext as _gettext
import os
import re
import string
from collections.abc import Iterable, Mapping
from pathlib import Path

DOMAIN = "zuotang"
"""The catalogs' name: ``locale/<lang>/LC_MESSAGES/zuotang.mo``."""
LOCALE_DIR = Path(__file__).parent / "locale"
LANG_VARIABLE = "ZUOTANG_LANG"
ENGLISH = "en"
ENVIRONMENT_VARIABLES = ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")
"""Where gettext looks for the language, in its order (the first one set wins)."""
_TAG = re.compile(r"[A-Za-z]{1,8}([_-][A-Za-z0-9]{1,8})*(\.[A-Za-z0-9-]+)?(@[A-Za-z0-9]+)?")

_ENGLISH = _gettext.NullTranslations()
_active: _gettext.NullTranslations = _ENGLISH
_language = ENGLISH


def is_language_tag(text: str) -> bool:
    """Whether ``text`` reads as a language: ``zh_CN``, ``zh-CN``, ``zh_CN.UTF-8``, ``C``."""
    return bool(_TAG.fullmatch(text))


def normalize(tag: str) -> str:
    """``zh-CN`` → ``zh_CN`` (gettext's spelling); the codeset and modifier kept."""
    head, dot, rest = tag.partition(".")
    parts = head.replace("-", "_").split("_")
    if len(parts) > 1:
        parts[1:] = [part.upper() if len(part) == 2 else part for part in parts[1:]]
    return "_".join(parts) + dot + rest


def find(language: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """The catalog that ``language`` (None: the environment, as gettext reads it) selects:
    ``zh_CN`` when there is one, else :data:`ENGLISH`."""
    languages = None if language is None else [normalize(language)]
    if languages is None and environ is not None:
        languages = _from_environment(environ)
    found = _gettext.find(DOMAIN, str(LOCALE_DIR), languages=languages)
    if found is None:
        return ENGLISH
    return Path(found).parent.parent.name


def _from_environment(environ: Mapping[str, str]) -> list[str]:
    for variable in ENVIRONMENT_VARIABLES:
        value = environ.get(variable)
        if value:
            return [normalize(part) for part in value.split(":") if part]
    return ["C"]


def activate(language: str | None = None) -> str:
    """Speak ``language`` from now on (None: the environment's, as gettext reads it;
    ``en`` or ``C``: English); the language chosen."""
    global _active, _language
    chosen = find(language, os.environ if language is None else None)
    if chosen == ENGLISH:
        _active = _ENGLISH
    else:
        _active = _gettext.translation(DOMAIN, str(LOCALE_DIR), languages=[chosen])
    _language = chosen
    return chosen


def active() -> str:
    """The language spoken now: ``en`` or a catalog's name (``zh_CN``)."""
    return _language


def share_with_libraries(language: str) -> None:
    """Let the libraries that call the standard ``gettext.gettext`` (Typer's help panels,
    "Error", "[default: ...]") read zuotang's catalog in ``language``: the process's
    default text domain becomes zuotang's, and ``LANGUAGE`` says which catalog
    (gettext's own variable, read first).  For the command line's process only."""
    _gettext.bindtextdomain(DOMAIN, str(LOCALE_DIR))
    _gettext.textdomain(DOMAIN)
    os.environ["LANGUAGE"] = language


def gettext(message: str) -> str:
    """``message`` in the active language (as it is when the catalog lacks it; the empty
    string stays empty, never the catalog's header)."""
    return _active.gettext(message) if message else message


_ = gettext


def ngettext(singular: str, plural: str, count: int) -> str:
    """The form of ``singular`` / ``plural`` that ``count`` takes in the active language."""
    return _active.ngettext(singular, plural, count)


def known(text: str, templates: Iterable[str]) -> str:
    """``text`` in the active language: as the catalog has it, or, when it is one of
    ``templates`` filled in (``not attempted (max-calls 5 reached)``), that template's
    translation filled in with the same values; else as it is (a server's words)."""
    translated = gettext(text)
    if translated != text or _active is _ENGLISH:
        return translated
    for template in templates:
        match = _pattern(template).fullmatch(text)
        if match is not None:  # its values may be reasons themselves
            values = {name: known(value, templates) for name, value in match.groupdict().items()}
            return gettext(template).format(**values)
    return text


@functools.cache
def _pattern(template: str) -> re.Pattern[str]:
    parts = []
    for literal, field, _spec, _conversion in string.Formatter().parse(template):
        parts.append(re.escape(literal))
        if field is not None:
            parts.append(f"(?P<{field}>.+?)")
    return re.compile("".join(parts), re.DOTALL)


def N_(message: str) -> str:
    """Mark ``message`` for the catalog without translating it (it is translated where
    shown, with :func:`gettext`)."""
    return message
