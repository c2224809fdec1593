"""``zuotang doctor``: are the credentials, the endpoint, the clock and the body encoding
right, before a batch spends anything?  (docs/credentials.md, "zuotang doctor")

Every check is learnt from requests the service refuses with a non-200 reply, which the
marketplace does not bill: a scale call without ``image_url`` (the gateway checks the
credentials and the path, the service says the field is missing: proof that it read the
body), and a fetch of a task that does not exist (whether the task path is served).  A
paid call is made only when asked (``paid_check``): one call, said beforehand by the
caller.  No Typer here: :mod:`zuotang_cli.cli.commands.doctor` prints the table.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import json
import time
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from zuotang_cli.app.credentials import Credentials
from zuotang_cli.engine.bucket import Target, open_bucket
from zuotang_cli.engine.http_pool import new_client
from zuotang_cli.errors import ZuotangError
from zuotang_cli.i18n import N_
from zuotang_cli.i18n import gettext as _
from zuotang_cli.models import ErrorClass, InputItem, InputKind
from zuotang_cli.protocol import api, signing
from zuotang_cli.protocol.api import CallSpec, Reply, Verdict
from zuotang_cli.protocol.rules import Body
from zuotang_cli.sanitize import visible
from zuotang_cli.status import ExitStatus

PROBE_TIMEOUT = 30.0
"""Seconds a free probe may take (the gateway answers refusals at once)."""
PAID_TIMEOUT = 150.0
"""Seconds the paid check may take: a synchronous call may queue before its 30 s."""
THROTTLE_TRIES = 3
CLOCK_WARN = 60.0
"""Seconds off the gateway's clock worth a warning (signatures allow 15 minutes)."""
ACCOUNT_REFUSALS = {
    ErrorClass.AUTH,
    ErrorClass.APP_KEY,
    ErrorClass.SIGNATURE,
    ErrorClass.FORBIDDEN,
    ErrorClass.QUOTA_EXHAUSTED,
    ErrorClass.QUOTA_EXPIRED,
    ErrorClass.ARREARS,
}
ENDPOINT_REFUSALS = {ErrorClass.ENDPOINT_NOT_FOUND, ErrorClass.ENDPOINT_REFUSED}


class Result(str, enum.Enum):
    OK = "ok"
    WARN = "warn"
    FAIL = "FAIL"
    SKIPPED = "-"


@dataclass(frozen=True)
class Check:
    """One line of the table: what was checked, what came out, what to do."""

    name: str
    result: Result
    detail: str
    advice: str = ""


@dataclass
class Diagnosis:
    checks: list[Check] = field(default_factory=list)
    exit_status: ExitStatus = ExitStatus.SUCCESS

    def add(self, check: Check, status: ExitStatus | None = None) -> None:
        self.checks.append(check)
        if status is not None and self.exit_status is ExitStatus.SUCCESS:
            self.exit_status = status


@dataclass(frozen=True)
class Answer:
    """One probe's reply: its classification, and what the table needs of the rest."""

    reply: Reply
    payload: object = None
    """The body as JSON (None: empty or not JSON, e.g. a gateway refusal)."""
    server_time: float | None = None
    received_at: float = 0.0


class Doctor:
    """The checks of one ``zuotang doctor`` (see the module)."""

    def __init__(
        self,
        credentials: Credentials,
        endpoint: str,
        *,
        qps: float = 2.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.spec = CallSpec(
            endpoint, credentials.appcode, "clean", None, Body.FORM, app_key=credentials.app_key
        )
        self.credentials = credentials
        self.spacing = 1.0 / qps if qps > 0 else 0.5
        self.client = client
        self.diagnosis = Diagnosis()
        self._last_start = float("-inf")

    # -- the probes -------------------------------------------------------------------

    async def _send(self, make: Callable[[], httpx.Request]) -> Answer:
        """A request made by ``make`` and signed now (a fresh nonce and timestamp each
        time), spaced by ``--qps``, its reply classified; throttles waited out."""
        for _attempt in range(THROTTLE_TRIES):
            await self._space()
            request = make()
            signed = self.spec.authorize(request)
            answer = await self._exchange(request)
            if answer.reply.verdict is not Verdict.THROTTLE:
                reply = api.beside_ours(answer.reply, signed)
                return dataclasses.replace(answer, reply=reply)
            await asyncio.sleep(answer.reply.retry_after or 1.0)
        return answer

    async def _space(self) -> None:
        """Wait until the next start keeps to ``--qps``."""
        wait = self._last_start + self.spacing - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        self._last_start = time.monotonic()

    async def _exchange(self, request: httpx.Request) -> Answer:
        assert self.client is not None
        try:
            response = await self.client.send(request)
        except httpx.HTTPError as exc:
            return Answer(api.network_reply(exc))
        received = time.time()
        reply = api.scrub(
            api.classify(response.status_code, response.headers, response.content),
            self.spec.secrets,
        )
        try:
            payload = json.loads(response.content) if response.content else None
        except ValueError:
            payload = None
        date = signing.server_time(response.headers.get("Date"))
        return Answer(reply, payload, date, received)

    def _probe_request(self, body: Body) -> httpx.Request:
        """A scale call without ``image_url``: refused by the service, so not billed."""
        assert self.client is not None
        fields = {"type": "clean", "sync": "1"}
        headers = self.spec.headers()
        if body is Body.MULTIPART:
            parts = {name: (None, value) for name, value in fields.items()}
            return self.client.build_request(
                "POST", self.spec.endpoint, headers=headers, files=parts
            )
        headers["Content-Type"] = "application/x-www-form-urlencoded; charset=UTF-8"
        content = urllib.parse.urlencode(fields)
        return self.client.build_request(
            "POST", self.spec.endpoint, headers=headers, content=content
        )

    async def _probe(self, body: Body) -> Answer:
        """The free probe, sent again once after a clock correction or a used nonce."""

        def make() -> httpx.Request:
            return self._probe_request(body)

        answer = await self._send(make)
        kind = answer.reply.error_class
        if kind is ErrorClass.CLOCK_SKEW and answer.reply.server_time is not None:
            self.spec.clock.correct(answer.reply.server_time, answer.received_at)
            answer = await self._send(make)
        elif kind is ErrorClass.NONCE_USED:
            answer = await self._send(make)
        return answer

    # -- the checks ---------------------------------------------------------------------

    async def run(self, paid_check: str | None = None) -> Diagnosis:
        """Every check; ``paid_check``: also one paid call for that image URL."""
        owned = self.client is None
        if owned:
            self.client = new_client(timeout=httpx.Timeout(PROBE_TIMEOUT, connect=10.0))
        try:
            await self._checks(paid_check)
        finally:
            if owned and self.client is not None:
                await self.client.aclose()
        return self.diagnosis

    async def _checks(self, paid_check: str | None) -> None:
        self._credentials_line()
        answer = await self._probe(Body.FORM)
        if not self._reached(answer):
            return
        self._clock(answer)
        if not self._accepted(answer):
            return
        await self._body(answer)
        await self._task_path()
        if paid_check is not None:
            await self._paid(paid_check)
        else:
            self.diagnosis.add(
                Check(
                    N_("sync/async"),
                    Result.SKIPPED,
                    _("sync=1 is sent with every call; how this listing answers needs a paid call"),
                    _("zuotang doctor --paid-check IMAGE_URL (one paid call)"),
                )
            )

    def _credentials_line(self) -> None:
        creds = self.credentials
        if creds.app_key is not None:
            detail = _("AppKey {key} with its AppSecret (signed requests)").format(
                key=creds.app_key.key
            )
        else:
            detail = _("AppCode (sent in the Authorization header)")
        self.diagnosis.add(
            Check(N_("credentials"), Result.OK, _("found: {detail}").format(detail=detail))
        )

    def _reached(self, answer: Answer) -> bool:
        reply = answer.reply
        if reply.http_status is not None:
            where = urllib.parse.urlsplit(self.spec.endpoint).netloc
            self.diagnosis.add(
                Check(N_("reachable"), Result.OK, _("{where} answered").format(where=where))
            )
            return True
        self.diagnosis.add(
            Check(
                N_("reachable"),
                Result.FAIL,
                _("no reply: {message}").format(message=visible(reply.message)),
                _("check --endpoint (ZUOTANG_ENDPOINT), the network and any proxy"),
            ),
            ExitStatus.TROUBLE,
        )
        return False

    def _clock(self, answer: Answer) -> None:
        clock = self.spec.clock
        if answer.server_time is None:
            detail = _("the gateway sent no Date header: not checked")
            self.diagnosis.add(Check(N_("clock"), Result.SKIPPED, detail))
            return
        off = clock.offset if clock.corrections else answer.server_time - answer.received_at
        seconds = f"{abs(off):.0f}"
        if off > 0:
            shown = _("{seconds} s behind the gateway's").format(seconds=seconds)
        else:
            shown = _("{seconds} s ahead of the gateway's").format(seconds=seconds)
        if abs(off) <= CLOCK_WARN:
            self.diagnosis.add(
                Check(
                    N_("clock"),
                    Result.OK,
                    _("within {limit:g} s ({shown})").format(limit=CLOCK_WARN, shown=shown),
                )
            )
            return
        if self.spec.signed:
            effect = _("each run corrects its timestamps by the gateway's Date")
        else:
            effect = _("the AppCode does not depend on it")
        self.diagnosis.add(
            Check(
                N_("clock"),
                Result.WARN,
                _("this computer's clock is {shown}; {effect}").format(shown=shown, effect=effect),
                _("set the system clock right (NTP): signatures allow 15 minutes"),
            )
        )

    def _accepted(self, answer: Answer) -> bool:
        """Credentials and path, from the free probe's refusal (or acceptance)."""
        reply = answer.reply
        message = visible(reply.message or str(reply.error_class or ""))
        if reply.error_class in ACCOUNT_REFUSALS:
            what = "AppKey / AppSecret" if self.spec.signed else "AppCode"
            self.diagnosis.add(
                Check(
                    N_("credentials accepted"),
                    Result.FAIL,
                    _("refused (HTTP {http_status}): {message}").format(
                        http_status=reply.http_status, message=message
                    ),
                    _(
                        "check the {what} in the console: Cloud Marketplace → Purchased Services"
                    ).format(what=what),
                ),
                ExitStatus.HALTED,
            )
            return False
        if reply.error_class in ENDPOINT_REFUSALS:
            self.diagnosis.add(
                Check(
                    N_("endpoint path"),
                    Result.FAIL,
                    _("refused (HTTP {http_status}): {message}").format(
                        http_status=reply.http_status, message=message
                    ),
                    _("check --endpoint: the path is /tasks/visual/scale"),
                ),
                ExitStatus.USAGE,
            )
            return False
        if reply.error_class is ErrorClass.CLOCK_SKEW:
            self.diagnosis.add(
                Check(
                    N_("credentials accepted"), Result.FAIL, message, _("set the clock right (NTP)")
                ),
                ExitStatus.TROUBLE,
            )
            return False
        if reply.http_status is not None and reply.http_status >= 500:
            self.diagnosis.add(
                Check(
                    N_("endpoint path"),
                    Result.FAIL,
                    _("HTTP {http_status}: {message}").format(
                        http_status=reply.http_status, message=message
                    ),
                    _("the service is in trouble: try again later"),
                ),
                ExitStatus.TROUBLE,
            )
            return False
        if reply.http_status == 200:
            note = _("answered HTTP 200 to a call without image_url: that reply may be billed")
            self.diagnosis.add(Check(N_("credentials accepted"), Result.WARN, note))
        else:
            self.diagnosis.add(
                Check(N_("credentials accepted"), Result.OK, _("the gateway let it in"))
            )
        self.diagnosis.add(Check(N_("endpoint path"), Result.OK, _("the service answered")))
        return True

    async def _body(self, answer: Answer) -> None:
        """Form fields read when the service's refusal names ``image_url``, not ``type``."""
        if _names_image_url(answer.reply):
            self.diagnosis.add(Check(N_("body encoding"), Result.OK, _("form fields are read")))
            return
        multipart = await self._probe(Body.MULTIPART)
        if _names_image_url(multipart.reply):
            self.spec = dataclasses.replace(self.spec, body=Body.MULTIPART)  # for --paid-check
            self.diagnosis.add(
                Check(
                    N_("body encoding"),
                    Result.WARN,
                    _("form fields are not read, multipart ones are"),
                    _("zuotang config set body multipart (or --body multipart)"),
                )
            )
            return
        self.diagnosis.add(
            Check(
                N_("body encoding"),
                Result.WARN,
                _("not learnt: {value}").format(
                    value=visible(answer.reply.message or _("no message"))
                ),
                _("zuotang doctor --paid-check IMAGE_URL shows a real call"),
            )
        )

    async def _task_path(self) -> None:
        """Whether ``GET {endpoint}/{task_id}`` is served: a task that does not exist is
        the service's 404 (a JSON reply), a path the gateway lacks its own refusal."""
        assert self.client is not None
        client, url = self.client, self.spec.task_url(str(uuid.uuid4()))
        answer = await self._send(
            lambda: client.build_request("GET", url, headers=self.spec.headers())
        )
        served = answer.reply.http_status is not None and isinstance(answer.payload, dict)
        if served:
            detail = _("served: an asynchronous task can be fetched by its id")
            self.diagnosis.add(Check(N_("task path"), Result.OK, detail))
            return
        message = visible(answer.reply.message or _("no reply"))
        self.diagnosis.add(
            Check(
                N_("task path"),
                Result.WARN,
                _("not served ({message}): only synchronous replies can work").format(
                    message=message
                ),
                _("nothing, if --paid-check shows synchronous replies"),
            )
        )

    async def _paid(self, image_url: str) -> None:
        """One paid call for ``image_url``: synchronous, or a task fetched to its end."""
        assert self.client is not None
        item = InputItem(0, image_url, InputKind.URL, url=image_url)
        started = time.monotonic()
        for _attempt in range(THROTTLE_TRIES):
            await self._space()
            reply = await api.call_once(self.client, self.spec, item, deadline=PAID_TIMEOUT)
            if reply.verdict is not Verdict.THROTTLE:
                break
            await asyncio.sleep(reply.retry_after or 1.0)
        mode = _("synchronous")
        if reply.verdict is Verdict.PENDING and reply.task_id:
            mode = _("asynchronous")
            reply = await self._fetch(reply.task_id, started)
        took = time.monotonic() - started
        message = visible(reply.message or str(reply.error_class or ""))
        if reply.verdict is Verdict.SUCCESS:
            detail = _("{mode}: the result came in {seconds} s (state 1)").format(
                mode=mode, seconds=f"{took:.1f}"
            )
            self.diagnosis.add(Check(N_("paid call"), Result.OK, detail))
            return
        detail = _("{mode}: HTTP {http_status}, state {state}: {message}").format(
            mode=mode, http_status=reply.http_status, state=reply.state, message=message
        )
        self.diagnosis.add(
            Check(
                N_("paid call"),
                Result.FAIL,
                detail,
                _("see the message; the image may be at fault"),
            ),
            ExitStatus.SOME_FAILED,
        )

    async def _fetch(self, task_id: str, started: float) -> Reply:
        assert self.client is not None
        reply = Reply(Verdict.PENDING, ErrorClass.UNFINISHED, task_id=task_id)
        while time.monotonic() - started < PAID_TIMEOUT:
            await asyncio.sleep(1.0)
            await self._space()
            reply = await api.poll_once(self.client, self.spec, task_id, _nothing)
            if reply.verdict is not Verdict.PENDING and reply.verdict is not Verdict.RETRY:
                break
        return reply


def _nothing() -> None:
    return None


def _names_image_url(reply: Reply) -> bool:
    return reply.http_status == 400 and "image_url" in reply.message.lower()


async def check_bucket(
    target: Target, endpoint: str | None = None
) -> tuple[Check, ExitStatus | None]:
    """``--upload-to``'s bucket checked as a run checks it before its first call
    (docs/uploads.md): an empty probe object put and deleted, a link's length."""
    try:
        async with open_bucket(target, endpoint) as bucket:
            await bucket.check()
    except ZuotangError as exc:
        return Check(N_("bucket"), Result.FAIL, str(exc)), exc.exit_status
    detail = _("{target}: writable under the prefix, its presigned links fit 512 characters")
    return Check(N_("bucket"), Result.OK, detail.format(target=target)), None


def diagnose(
    credentials: Credentials,
    endpoint: str,
    *,
    qps: float = 2.0,
    paid_check: str | None = None,
    announce: Callable[[str], object] | None = None,
    bucket: Target | None = None,
    bucket_endpoint: str | None = None,
) -> Diagnosis:
    """Run the checks (the one call the command makes); ``announce`` is told of the paid
    call before it is made.  ``bucket``: also check ``--upload-to``'s bucket (free)."""
    if paid_check is not None and announce is not None:
        announce(
            _(
                "one paid call follows (--paid-check): {image} is sent to {endpoint} once "
                "the free checks pass"
            ).format(image=visible(paid_check), endpoint=visible(endpoint))
        )
    diagnosis = asyncio.run(Doctor(credentials, endpoint, qps=qps).run(paid_check))
    if bucket is not None:
        diagnosis.add(*asyncio.run(check_bucket(bucket, bucket_endpoint)))
    return diagnosis
