"""``zuotang enhance``: the batch command (README.md, "Real use").

Parses, wires, prints; the work is done by :mod:`zuotang_cli.app.session`."""

import dataclasses
import enum
import math
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from zuotang_cli.app.options import MAX_UPLOAD, EnhanceOptions
from zuotang_cli.cli.environment import environment
from zuotang_cli.cli.typer_classes import TranslatedUsageError
from zuotang_cli.i18n import N_
from zuotang_cli.i18n import gettext as _
from zuotang_cli.protocol.rules import Billing, Body, FileTransport

HELP = N_(
    "Enhance / upscale images through the Zuotang API: URLs, list files ('-' for stdin), "
    "local images or folders, sent concurrently at the account's QPS. Results are saved "
    "in the output directory with a report of every input. stdout carries one line per "
    "saved image (its path), or one JSON record per input with --json. stderr has the "
    "progress, the first 20 problems and a summary: counts, paid calls, throttle replies, "
    "failures by reason. Safe to re-run: a journal in the output directory skips what is "
    "done and downloads what was paid for, so no image is paid for twice."
)
EPILOG = N_(
    "Examples:\n\n\b\n"
    "  export ZUOTANG_APPCODE=...   # your AppCode (Alibaba Cloud console)\n"
    "  zuotang enhance urls.txt --type clean --scale 2 -o out/\n"
    "  zuotang enhance photos/ --recursive --type face -o enhanced/ --report run.jsonl\n"
    "  grep -v thumb urls.txt | zuotang enhance - -o out --json | jq -r .output"
)


class ImageType(str, enum.Enum):
    clean = "clean"
    face = "face"


class BillingChoice(str, enum.Enum):
    every_200 = "every-200"
    success_only = "success-only"


class BodyChoice(str, enum.Enum):
    form = "form"
    multipart = "multipart"


class SendFilesChoice(str, enum.Enum):
    multipart = "multipart"
    base64 = "base64"
    bucket = "bucket"


class AuthChoice(str, enum.Enum):
    appcode = "appcode"
    signature = "signature"


class FormatChoice(str, enum.Enum):
    jpg = "jpg"
    png = "png"
    webp = "webp"
    same = "same"


class Scale(str, enum.Enum):
    auto = "auto"
    x1 = "1"
    x2 = "2"
    x4 = "4"


# The defaults live in one place, the dataclass the command fills (run.EnhanceOptions);
# the options the config file may set default to None here (resolved by settings.load).
D = EnhanceOptions(inputs=[])
MB = 1024 * 1024
Opt = typer.Option


def enhance(
    ctx: typer.Context,
    inputs: Annotated[
        list[str],
        typer.Argument(
            metavar="INPUT",
            help=N_("http(s) URL, list file of URLs, '-' (list on stdin), image file or folder."),
            show_default=False,
        ),
    ],
    type: Annotated[
        ImageType | None,
        Opt("--type", "-t", help=N_("clean or face [default: clean]."), show_default=False),
    ] = None,
    scale: Annotated[
        Scale | None,
        Opt("--scale", "-s", help=N_("auto, 1, 2 or 4 [default: auto]."), show_default=False),
    ] = None,
    output_dir: Annotated[
        Path | None,
        Opt("--output-dir", "-o", help=N_("Where results go [default: out]."), show_default=False),
    ] = None,
    report: Annotated[
        Path | None, Opt(help=N_("Also write the report here (.csv, .json or .jsonl)."))
    ] = D.report,
    recursive: Annotated[bool, Opt("--recursive", "-r", help=N_("Descend into folders."))] = (
        D.recursive
    ),
    include: Annotated[
        list[str] | None,
        Opt(
            metavar="GLOB",
            help=N_(
                "In folders, take only files matching this glob (name or relative path); "
                "repeatable."
            ),
            show_default=False,
        ),
    ] = None,
    exclude: Annotated[
        list[str] | None,
        Opt(
            metavar="GLOB",
            help=N_(
                "In folders, leave out files matching this glob (name or relative path); "
                "repeatable."
            ),
            show_default=False,
        ),
    ] = None,
    appcode: Annotated[
        str | None,
        Opt(
            help=N_(
                "AppCode; prefer ZUOTANG_APPCODE or 'zuotang config set-appcode' (a flag "
                "shows in ps)."
            ),
            show_default=False,
        ),
    ] = None,
    app_key: Annotated[
        str | None,
        Opt(
            help=N_(
                "AppKey: sign every request with it and the AppSecret (ZUOTANG_APP_SECRET "
                "or 'zuotang config set-app-secret'; never a flag) [default: ZUOTANG_APP_KEY]."
            ),
            show_default=False,
        ),
    ] = None,
    auth: Annotated[
        AuthChoice | None,
        Opt(
            help=N_(
                "appcode or signature, when both are set [default: signature when an AppKey "
                "and AppSecret are set, else appcode]."
            ),
            show_default=False,
        ),
    ] = None,
    endpoint: Annotated[
        str | None,
        Opt(help=N_("Scale endpoint URL [default: the marketplace URL]."), show_default=False),
    ] = None,
    qps: Annotated[
        float | None,
        Opt(
            min=0.01,
            help=N_("Request starts per second: the account's limit [default: 2]."),
            show_default=False,
        ),
    ] = None,
    concurrency: Annotated[
        int | None, Opt(min=1, help=N_("Calls in flight [default: enough for qps at 30 s a call]."))
    ] = D.concurrency,
    retries: Annotated[
        int, Opt(min=0, help=N_("Retries after a transient failure that was not billed."))
    ] = D.retries,
    timeout: Annotated[
        float,
        Opt(
            min=1.0,
            help=N_(
                "A call's total deadline in seconds, first byte sent to last byte received: "
                "well above the service's 30 s, since a call may queue first, and an abandoned "
                "call may still be billed. Downloads must move 8 KiB/s over min(30, this) s."
            ),
        ),
    ] = D.timeout,
    paid_retries: Annotated[
        int,
        Opt(
            min=0,
            help=N_(
                "Paid calls an input may make again after a billed failure (state "
                "-1/-2/-8, a timeout), over all runs."
            ),
        ),
    ] = D.paid_retries,
    billing: Annotated[
        BillingChoice | None,
        Opt(
            help=N_(
                "Which replies are billed: every-200 (the marketplace's rule) or "
                "success-only [default: every-200]."
            ),
            show_default=False,
        ),
    ] = None,
    body: Annotated[
        BodyChoice | None,
        Opt(
            help=N_(
                "Encoding of URL calls: form or multipart [default: form, switched to "
                "multipart when the endpoint does not read form fields]."
            ),
            show_default=False,
        ),
    ] = None,
    send_files: Annotated[
        SendFilesChoice | None,
        Opt(
            help=N_(
                "How local files travel: multipart (image_file), base64 (image_base64, for "
                "sellers who enabled it) or bucket (a presigned link to --upload-to) [default: "
                "multipart, moved to the bucket when the endpoint refuses files and a bucket "
                "is given]."
            ),
            show_default=False,
        ),
    ] = None,
    upload_to: Annotated[
        str | None,
        Opt(
            metavar="s3://BUCKET/PREFIX",
            help=N_(
                "Your own S3-compatible bucket (OSS, S3, MinIO, COS) for local files: each is "
                "uploaded, sent as a presigned link, deleted once done. Credentials: AWS_* or "
                "ALIBABA_CLOUD_ACCESS_KEY_* variables, or an AWS profile."
            ),
            show_default=False,
        ),
    ] = None,
    upload_endpoint: Annotated[
        str | None,
        Opt(
            metavar="URL",
            help=N_(
                "The bucket's S3 endpoint, e.g. https://s3.oss-cn-hangzhou.aliyuncs.com "
                "[default: AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, or AWS]."
            ),
            show_default=False,
        ),
    ] = None,
    keep_uploads: Annotated[
        bool, Opt("--keep-uploads", help=N_("Leave the uploaded files in the bucket."))
    ] = D.keep_uploads,
    upload_concurrency: Annotated[
        int, Opt(min=1, help=N_("Uploads to the bucket at once (apart from --qps)."))
    ] = D.upload_concurrency,
    max_upload: Annotated[
        float,
        Opt(
            min=0.1,
            help=N_(
                "Largest request body in MB the gateway takes (32 on a dedicated gateway); "
                "bigger local files are refused unsent."
            ),
        ),
    ] = D.max_upload / MB,
    polls_free: Annotated[
        bool,
        Opt(
            "--polls-free",
            help=N_(
                "Fetches of asynchronous tasks do not count against --qps (by default they "
                "pass the rate gate like calls)."
            ),
        ),
    ] = D.polls_free,
    dry_run: Annotated[
        bool,
        Opt(
            "--dry-run",
            help=N_("Say what would be called, downloaded, copied and skipped; no call."),
        ),
    ] = D.dry_run,
    force: Annotated[
        bool,
        Opt(
            "--force",
            help=N_(
                "Process again (paid) what earlier runs saved, except results edited since; "
                "failed inputs need --retry-failed."
            ),
        ),
    ] = D.force,
    retry_failed: Annotated[
        bool,
        Opt(
            "--retry-failed",
            help=N_("Try again inputs that failed for good, or spent their paid retries."),
        ),
    ] = D.retry_failed,
    max_calls: Annotated[
        int | None, Opt(min=0, help=N_("At most N paid calls in this run (a cost cap)."))
    ] = D.max_calls,
    probe: Annotated[
        bool,
        Opt("--probe", help=N_("Check remote images' format and size (ranged GET) before a call.")),
    ] = D.probe,
    name: Annotated[
        str | None,
        Opt(
            "--name",
            metavar="TEMPLATE",
            help=N_(
                "Name results by a template: {stem} {ext} {type} {scale} {factor} {hash} "
                "{host} {path}, e.g. '{stem}-{type}-x{factor}.{ext}' or '{host}/{path}/{stem}' "
                "(default: the source's own name)."
            ),
            show_default=False,
        ),
    ] = D.name,
    format: Annotated[
        FormatChoice | None,
        Opt(
            "--format",
            help=N_(
                "Convert results locally to jpg, png or webp, or 'same' as the source "
                "(default: as the service returns them). A re-run converts, never pays."
            ),
            show_default=False,
        ),
    ] = None,
    quality: Annotated[
        int | None,
        Opt(
            min=1,
            max=100,
            help=N_("JPEG / WebP quality of converted results (default 92)."),
            show_default=False,
        ),
    ] = D.quality,
    strip_gps: Annotated[
        bool,
        Opt("--strip-gps", help=N_("Leave the GPS position out of the EXIF carried to results.")),
    ] = D.strip_gps,
    wait_lock: Annotated[
        bool, Opt("--wait-lock", help=N_("Wait for another run on the same output directory."))
    ] = D.wait_lock,
    json: Annotated[
        bool,
        Opt(
            "--json",
            help=N_(
                "One JSON record per input on stdout, and the summary as one JSON object, "
                "the last line on stderr."
            ),
        ),
    ] = D.json,
    summary_json: Annotated[
        Path | None,
        Opt(
            help=N_(
                "Also write the summary (counts, paid calls, failures by reason) as JSON here."
            ),
            show_default=False,
        ),
    ] = D.summary_json,
    stats_interval: Annotated[
        float,
        Opt(
            min=0.0,
            help=N_(
                "When stderr is not a terminal (cron, logs): a progress line every N "
                "seconds; 0 turns it off."
            ),
        ),
    ] = D.stats_interval,
    print0: Annotated[
        bool,
        Opt("--print0", help=N_("Saved paths on stdout end with NUL, not newline (xargs -0).")),
    ] = D.print0,
    gallery: Annotated[
        bool, Opt("--gallery", help=N_("Also write OUTPUT_DIR/index.html: before/after, failures."))
    ] = D.gallery,
    quiet: Annotated[
        bool, Opt("--quiet", "-q", help=N_("Only errors on stderr (and the --json summary)."))
    ] = D.quiet,
    verbose: Annotated[
        bool,
        Opt(
            "--verbose",
            "-v",
            help=N_(
                "Every image, every problem (not only the first 20), files folders left "
                "out, HTTP exchanges (AppCode masked, AppSecret never sent); tracebacks."
            ),
        ),
    ] = D.verbose,
) -> None:
    from zuotang_cli.cli.run import run_enhance

    options = options_from(ctx, dict(locals()))
    env = environment(ctx)
    status = run_enhance(options, stdin=env.stdin, stdout=env.stdout, exit_on_signal=True)
    raise typer.Exit(status)


def options_from(ctx: typer.Context, given: dict[str, Any]) -> EnhanceOptions:
    """:class:`EnhanceOptions` from the parameters of :func:`enhance` (by their names: those
    of its fields), resolved with the environment and the config file; ``zuotang watch``
    shares them."""
    from zuotang_cli.app import settings
    from zuotang_cli.cli.progress import say

    env = environment(ctx)
    env.verbose = given["verbose"]
    json, print0, max_upload = given["json"], given["print0"], given["max_upload"]
    if json and print0:
        raise TranslatedUsageError(_("--json and --print0 do not go together"), ctx=ctx)
    resolved = settings.load(
        {
            name: value.value if isinstance(value, enum.Enum) else value
            for name, value in given.items()
            if name in settings.NAMES
        }
    )
    for warning in resolved.warnings:
        say(sys.stderr, _("warning: {warning}").format(warning=warning))
    if not math.isfinite(max_upload) or max_upload * MB > MAX_UPLOAD:
        message = _("must be a number of MB up to {limit}").format(limit=MAX_UPLOAD // MB)
        raise TranslatedUsageError(f"--max-upload: {message}", ctx=ctx)
    converted: dict[str, Any] = {
        "max_upload": int(max_upload * MB),  # the flag is in MB
        "include": tuple(given["include"] or ()),
        "exclude": tuple(given["exclude"] or ()),
        "type": resolved.type,
        "scale": resolved.scale_factor,
        "output_dir": resolved.output_dir,
        "appcode": resolved.appcode,
        "app_key": resolved.app_key,
        "app_secret": resolved.app_secret,
        "auth": resolved.auth,
        "endpoint": resolved.endpoint,
        "qps": resolved.qps,
        "billing": Billing(resolved.billing),
        "body": Body(resolved.body) if resolved.body else None,
        "send_files": FileTransport(resolved.send_files) if resolved.send_files else None,
        "upload_to": resolved.upload_to,
        "upload_endpoint": resolved.upload_endpoint,
        "format": given["format"].value if given["format"] is not None else None,
    }
    as_given = {n: v for n, v in given.items() if n in _FIELDS and n not in converted}
    return dataclasses.replace(D, **as_given, **converted)


_FIELDS = frozenset(field.name for field in dataclasses.fields(EnhanceOptions))
