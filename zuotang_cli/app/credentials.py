"""Which credentials a run uses: the AppCode, or the AppKey and AppSecret that sign every
request (docs/credentials.md).

Signatures when an AppKey and an AppSecret are both set, the AppCode otherwise;
``--auth appcode|signature`` (``ZUOTANG_AUTH``, the config file's ``auth``) chooses when
both are set.  The AppSecret comes from ``ZUOTANG_APP_SECRET`` or the config file
(``zuotang config set-app-secret``), never from a flag: a flag shows in ``ps``.
"""

from __future__ import annotations

from dataclasses import dataclass

from zuotang_cli.errors import UsageError
from zuotang_cli.i18n import N_
from zuotang_cli.i18n import gettext as _
from zuotang_cli.protocol.signing import AppKey

NO_CREDENTIALS = N_(
    "no credentials: set ZUOTANG_APPCODE (or run 'zuotang config set-appcode'), or sign "
    "requests with ZUOTANG_APP_KEY and ZUOTANG_APP_SECRET ('zuotang config set app_key KEY' "
    "and 'zuotang config set-app-secret'); find them in the Alibaba Cloud console under "
    "Cloud Marketplace → Purchased Services"
)


@dataclass(frozen=True)
class Credentials:
    """What a run authenticates with: ``app_key`` set means signed requests."""

    appcode: str = ""
    app_key: AppKey | None = None

    @property
    def scheme(self) -> str:
        return "signature" if self.app_key is not None else "appcode"

    def __repr__(self) -> str:
        key = self.app_key.key if self.app_key is not None else None
        return f"Credentials(scheme={self.scheme!r}, app_key={key!r})"


def choose(
    appcode: str | None,
    app_key: str | None,
    app_secret: str | None,
    auth: str | None,
    *,
    required: bool = True,
) -> Credentials:
    """The credentials of a run from the resolved settings; :class:`UsageError` when the
    chosen scheme lacks what it needs (``required`` False: a dry run, which calls
    nothing, goes on without)."""
    has_pair = bool(app_key and app_secret)
    if auth is None and not has_pair and (app_key or app_secret) and not appcode:
        missing = "ZUOTANG_APP_SECRET" if app_key else "ZUOTANG_APP_KEY"
        raise UsageError(
            _("signed requests need both the AppKey and the AppSecret: set {missing}").format(
                missing=missing
            )
        )
    wants_signature = auth == "signature" or (auth is None and has_pair)
    if wants_signature:
        if not has_pair:
            raise UsageError(
                _(
                    "--auth signature needs the AppKey and the AppSecret: set ZUOTANG_APP_KEY "
                    "and ZUOTANG_APP_SECRET, or 'zuotang config set app_key KEY' and 'zuotang "
                    "config set-app-secret'"
                )
            )
        assert app_key is not None and app_secret is not None
        return Credentials(appcode or "", AppKey(app_key, str(app_secret)))
    if not appcode and required:
        if auth == "appcode":
            raise UsageError(_("--auth appcode needs the AppCode: set ZUOTANG_APPCODE"))
        raise UsageError(_(NO_CREDENTIALS))
    return Credentials(appcode or "")
