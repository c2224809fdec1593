"""Reasons the engine writes into report rows, marked for the catalog (docs/i18n.md).

A report row keeps them in English (machine text); where a person reads one (a problem
line, the summary) :func:`shown` gives it in the active language, filled in again with the
values the row's English carries.  A server's words match none of them and are shown as
they came.
"""

from __future__ import annotations

from zuotang_cli.i18n import N_, gettext, known

NOT_ATTEMPTED_MAX_CALLS = N_("not attempted (max-calls {limit} reached)")
MAX_CALLS_NOTE = N_("--max-calls {limit} reached")
HALTED = N_("halted: {reason}")
INTERRUPTED = N_("interrupted")
INTERRUPTED_PAID = N_("interrupted: paid, not saved yet; the next run fetches it")
INTERRUPTED_WENT_OUT = N_(
    "interrupted after the call went out (possibly paid): the next run calls it again, "
    "within --paid-retries"
)
INTERRUPTED_BEFORE = N_("interrupted before its call went out: the next run calls it")
REPORT_LOST = N_("the report could not be written")

# The bucket of --upload-to (docs/uploads.md): one line for each thing to fix.
BUCKET_MISSING = N_("the bucket of --upload-to {where} does not exist: create it")
BUCKET_CREDENTIALS_REFUSED = N_(
    "the bucket of --upload-to {where} refused the credentials ({code}): check "
    "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or ALIBABA_CLOUD_ACCESS_KEY_*)"
)
BUCKET_DENIED = N_(
    "access denied to {where}: allow these credentials PutObject, GetObject and "
    "DeleteObject on the prefix (README, Local photos)"
)
BUCKET_ELSEWHERE = N_(
    "the bucket of --upload-to {where} is in another region: set AWS_REGION (or "
    "--upload-endpoint) to the bucket's region"
)
BUCKET_NO_CREDENTIALS = N_(
    "no credentials for --upload-to {where}: set AWS_ACCESS_KEY_ID and "
    "AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or ALIBABA_CLOUD_ACCESS_KEY_ID / _SECRET"
)
BUCKET_UNREACHABLE = N_(
    "the bucket's endpoint does not answer ({where}): check --upload-endpoint or "
    "AWS_ENDPOINT_URL_S3 and the network, then run again"
)
BUCKET_REFUSED = N_("the bucket of --upload-to {where} refused: {detail}")
BUCKET_LINKS_TOO_LONG = N_(
    "the presigned links of {where} are {length} characters, over the service's {limit}: "
    "use a shorter bucket name, prefix or endpoint (temporary credentials make long "
    "links: a session token)"
)
HOW_TO_SEND_FILES = N_(
    "give a bucket of your own with --upload-to s3://BUCKET/PREFIX (README, Local photos), "
    "or host them and pass their URLs"
)
NO_BUCKET = N_("local files cannot be sent (the endpoint takes image_url only): {how}")
UPLOAD_FAILED = N_("upload to {object} failed: {problem}")

TEMPLATES = (
    NOT_ATTEMPTED_MAX_CALLS,
    MAX_CALLS_NOTE,
    HALTED,
    BUCKET_MISSING,
    BUCKET_CREDENTIALS_REFUSED,
    BUCKET_DENIED,
    BUCKET_ELSEWHERE,
    BUCKET_NO_CREDENTIALS,
    BUCKET_UNREACHABLE,
    BUCKET_REFUSED,
    BUCKET_LINKS_TOO_LONG,
    NO_BUCKET,
    UPLOAD_FAILED,
)
"""The reasons with values in them."""


def shown(reason: str) -> str:
    """``reason`` (from a report row) in the active language."""
    return known(reason, TEMPLATES) if reason else gettext(reason)
