"""The one way a batch runs: ``zuotang enhance``, its ``--dry-run`` and the Python API
all go through a :class:`Session` (docs/architecture.md, "One way in").

A session checks the options before anything is called or written (numbers in range,
the paths the run will write, the AppCode, the endpoint), fits the calls and downloads in
flight to the open-file limit, reads the inputs as every way of running reads them, holds
the output directory (its lock and journal; a dry run plans on a snapshot), and makes the
batch.  What is shown, and how, is the caller's: the command line's is in
:mod:`zuotang_cli.cli.run`."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import math
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from zuotang_cli.app import credentials
from zuotang_cli.app.options import (
    MAX_CONCURRENCY,
    MAX_COUNT,
    MAX_QPS,
    MAX_SETTLE,
    MAX_TIMEOUT,
    MAX_UPLOAD,
    MIN_QPS,
    MIN_TIMEOUT,
    EnhanceOptions,
    WatchOptions,
)
from zuotang_cli.engine import fdlimit
from zuotang_cli.engine.batch import (
    Batch,
    BatchConfig,
    Sink,
    default_concurrency,
    default_download_concurrency,
)
from zuotang_cli.engine.bucket import INSTALL_HINT, Target
from zuotang_cli.engine.budget import SYSTEM_CLOCK, Clock
from zuotang_cli.errors import UsageError
from zuotang_cli.i18n import gettext as _
from zuotang_cli.inputs.reader import check_sources, iter_inputs, names_local_images
from zuotang_cli.inputs.scan import Patterns, ScanTally
from zuotang_cli.inputs.watch import DoneMover, Watcher
from zuotang_cli.models import InputItem
from zuotang_cli.outputs.report import report_format
from zuotang_cli.protocol import rules
from zuotang_cli.protocol.api import CallSpec
from zuotang_cli.protocol.rules import Body, FileTransport
from zuotang_cli.store.finishing import DEFAULT_QUALITY, FORMATS, Finish
from zuotang_cli.store.journal import Journal
from zuotang_cli.store.layout import Layout
from zuotang_cli.store.lock import output_lock
from zuotang_cli.store.naming import Naming, Template, TemplateError


def check_endpoint(endpoint: str, flag: str = "--endpoint") -> str:
    parts = urllib.parse.urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(
            _("{flag} must be an http(s) URL, not {endpoint!r}").format(
                flag=flag, endpoint=endpoint
            )
        )
    return endpoint


def _prepare_output(output_dir: Path) -> Path:
    if output_dir.exists() and not output_dir.is_dir():
        raise UsageError(
            _(
                "cannot write to output directory {output_dir}: it is a file; pick another -o"
            ).format(output_dir=output_dir)
        )
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        probe = Layout(output_dir).write_probe
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UsageError(
            _("cannot write to output directory {output_dir}: {reason}").format(
                output_dir=output_dir, reason=exc.strerror or exc
            )
        ) from exc
    return output_dir.resolve()


_LIMITS: tuple[tuple[str, str, float, float], ...] = (
    ("qps", "--qps", MIN_QPS, MAX_QPS),
    ("timeout", "--timeout", MIN_TIMEOUT, MAX_TIMEOUT),
    ("stats_interval", "--stats-interval", 0.0, MAX_TIMEOUT),
    ("max_upload", "max_upload (bytes)", 1.0, MAX_UPLOAD),
    ("concurrency", "--concurrency", 1, MAX_CONCURRENCY),
    ("retries", "--retries", 0, MAX_COUNT),
    ("paid_retries", "--paid-retries", 0, MAX_COUNT),
    ("max_calls", "--max-calls", 0, math.inf),
    ("quality", "--quality", 1, 100),
    ("upload_concurrency", "--upload-concurrency", 1, MAX_CONCURRENCY),
)
"""Each number of :class:`EnhanceOptions`: its flag and the range it must be in."""


def check_numbers(options: EnhanceOptions) -> None:
    """Every number finite and in its range, before anything is called (``--timeout inf``
    made every call fail with an OverflowError, after the run had started)."""
    for name, flag, low, high in _LIMITS:
        value = getattr(options, name)
        if value is None and name in ("concurrency", "max_calls", "quality"):
            continue  # not set: the default
        number = value if isinstance(value, int | float) and not isinstance(value, bool) else None
        if number is None or not math.isfinite(number) or not low <= number <= high:
            if math.isinf(high):
                said = _("{flag} must be a number of at least {low:g}, not {value!r}")
            else:
                said = _("{flag} must be a number from {low:g} to {high:g}, not {value!r}")
            raise UsageError(said.format(flag=flag, low=low, high=high, value=value))


def _check_writable(path: Path, flag: str) -> None:
    """Refuse, before any call, a file the run will write that it cannot: a folder in its
    place, or a folder that cannot be created or written to.  A probe file is created
    beside it and removed; the file itself is left as it is until written."""
    if path.is_dir():
        raise UsageError(
            _("cannot write {flag} {path}: it is a folder").format(flag=flag, path=path)
        )
    probe = path.with_name(f".{path.name}.zuotang-write-test")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UsageError(
            _("cannot write {flag} {path}: {reason}").format(
                flag=flag, path=path, reason=exc.strerror or exc
            )
        ) from exc


def prepare(options: EnhanceOptions) -> tuple[BatchConfig, str | None]:
    """The checks and path resolution every way of running a batch shares (the CLI, the
    Python API and ``--dry-run``): the batch's settings, and a note when the open-file
    limit made them smaller.  Raises UsageError before anything is called or written."""
    check_numbers(options)
    naming, finish = results_options(options)
    if options.report is not None:
        report_format(options.report)  # a bad suffix is refused before anything is written
    check_sources(options.inputs)
    chosen = credentials.choose(
        options.appcode,
        options.app_key,
        options.app_secret,
        options.auth,
        required=not options.dry_run,
    )
    endpoint = check_endpoint(options.endpoint or rules.DEFAULT_ENDPOINT)
    if options.dry_run:  # nothing is created: the directory may not exist yet
        output_dir = options.output_dir.resolve()
    else:
        output_dir = _prepare_output(options.output_dir)
        if options.report is not None:
            _check_writable(options.report, "--report")
        if options.summary_json is not None:
            _check_writable(options.summary_json, "--summary-json")
    body = options.body or Body.FORM
    files = options.send_files or FileTransport.MULTIPART
    upload_to = check_uploads(options)
    config = BatchConfig(
        spec=CallSpec(
            endpoint,
            chosen.appcode,
            options.type,
            options.scale,
            body,
            files,
            app_key=chosen.app_key,
        ),
        output_dir=output_dir,
        qps=options.qps,
        concurrency=options.concurrency,
        retries=options.retries,
        timeout=options.timeout,
        force=options.force,
        retry_failed=options.retry_failed,
        max_calls=options.max_calls,
        probe=options.probe,
        billing=options.billing,
        paid_retries=options.paid_retries,
        body_fixed=options.body is not None,
        files_fixed=options.send_files is not None,
        upload_to=upload_to,
        upload_endpoint=options.upload_endpoint,
        keep_uploads=options.keep_uploads,
        upload_concurrency=options.upload_concurrency,
        check_bucket_first=files is FileTransport.BUCKET or names_local_images(options.inputs),
        max_upload=options.max_upload,
        polls_use_gate=not options.polls_free,
        dry_run=options.dry_run,
        naming=naming,
        finish=finish,
    )
    return fit_to_open_files(config)


def check_uploads(options: EnhanceOptions) -> Target | None:
    """The bucket local files may go through (``--upload-to``), checked as far as it can be
    without a request: its form, a bucket for ``--send-files bucket``, the S3 client
    installed (the ``s3`` extra).  The bucket itself is checked when the batch starts."""
    if options.upload_to is None:
        if options.send_files is FileTransport.BUCKET:
            raise UsageError(_("--send-files bucket needs --upload-to s3://BUCKET/PREFIX"))
        return None
    if options.upload_endpoint is not None:
        check_endpoint(options.upload_endpoint, "--upload-endpoint")
    target = Target.parse(options.upload_to)
    if not options.dry_run and importlib.util.find_spec("aiobotocore") is None:
        raise UsageError(_(INSTALL_HINT))
    return target


def results_options(options: EnhanceOptions) -> tuple[Naming, Finish]:
    """How results are named and finished (``--name``, ``--format``, ``--quality``,
    ``--strip-gps``); UsageError for a template that could leave the output directory."""
    if options.format is not None and options.format not in FORMATS:
        raise UsageError(
            _("--format must be one of {formats}, not {format!r}").format(
                formats=", ".join(FORMATS), format=options.format
            )
        )
    try:
        template = Template(options.name) if options.name is not None else None
    except TemplateError as exc:
        raise UsageError(str(exc)) from None
    finish = Finish(
        format=options.format,
        quality=options.quality if options.quality is not None else DEFAULT_QUALITY,
        strip_gps=options.strip_gps,
    )
    return Naming(template=template), finish


def fit_to_open_files(config: BatchConfig) -> tuple[BatchConfig, str | None]:
    """``config`` with its calls and downloads in flight cut to the open-file limit (raised
    first as far as allowed), and the note to show once if they were cut."""
    fitted = fdlimit.fit(
        config.concurrency or default_concurrency(config.qps),
        config.download_concurrency or default_download_concurrency(config.qps),
        fdlimit.open_file_limit(),
    )
    if fitted.note is None:
        return config, None
    fitted_config = dataclasses.replace(
        config, concurrency=fitted.calls, download_concurrency=fitted.downloads
    )
    return fitted_config, fitted.note


@contextlib.contextmanager
def opened(config: BatchConfig, *, wait_lock: bool = False) -> Iterator[Journal]:
    """The output directory's lock and journal for one batch.  A dry run takes the lock
    too (when the directory exists) and plans on a snapshot of the journal."""
    output_dir = config.output_dir
    if config.dry_run:
        lock = output_lock(output_dir, wait=wait_lock) if output_dir.is_dir() else None
        with (
            lock or contextlib.nullcontext(),
            contextlib.closing(Journal.snapshot(output_dir)) as journal,
        ):
            yield journal
        return
    with output_lock(output_dir, wait=wait_lock):
        remove_partial_downloads(output_dir)
        with Journal.open(output_dir) as journal:
            yield journal


def inputs_of(
    options: EnhanceOptions, stdin: BinaryIO, scan: ScanTally | None = None
) -> Iterator[InputItem]:
    """The inputs of a batch, read as every way of running one reads them (the CLI, the
    Python API, ``--dry-run``, the count ahead): folders walked by the same options."""
    return iter_inputs(
        options.inputs,
        stdin=stdin,
        recursive=options.recursive,
        include=options.include,
        exclude=options.exclude,
        scan=scan,
    )


def remove_partial_downloads(output_dir: Path) -> int:
    """Delete ``.part`` files a killed run left (only ever under the run's own lock)."""
    removed = 0
    for part in Layout(output_dir).downloads.glob("*.part"):
        with contextlib.suppress(FileNotFoundError):
            part.unlink()
            removed += 1
    return removed


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or path.is_relative_to(folder)


def check_watch(options: EnhanceOptions, watch: WatchOptions) -> None:
    """A hot folder that can work: folders that exist, a settle time in range, and no
    folder inside another's way: results or moved originals landing in a watched folder
    would be taken as new photos (and paid for)."""
    if not 0 <= watch.settle <= MAX_SETTLE or not math.isfinite(watch.settle):
        raise UsageError(
            _("--settle must be a number of seconds from 0 to {MAX_SETTLE:g}").format(
                MAX_SETTLE=MAX_SETTLE
            )
        )
    if watch.max_calls_per_day is not None and watch.max_calls_per_day < 1:
        raise UsageError(_("--max-calls-per-day must be at least 1"))
    folders = [Path(source) for source in options.inputs]
    for folder in folders:
        if not folder.is_dir():
            raise UsageError(
                _("{folder}: not a folder: zuotang watch takes folders to watch").format(
                    folder=folder
                )
            )
    places = {"--output-dir": options.output_dir}
    if watch.move_done is not None:
        places["--move-done"] = watch.move_done
    for flag, place in places.items():
        where = place.resolve()
        for folder in (f.resolve() for f in folders):
            if _inside(where, folder) or _inside(folder, where):
                raise UsageError(
                    _(
                        "{flag} {place} and the watched folder {folder} must not be inside one "
                        "another: what lands there would be taken as new photos"
                    ).format(flag=flag, place=place, folder=folder)
                )


@dataclass(frozen=True)
class Session:
    """One batch, from its options to the :class:`Batch` that runs it (see the module)."""

    options: EnhanceOptions
    config: BatchConfig
    note: str | None = None
    """Said once when the open-file limit made the calls or downloads in flight fewer."""
    watch: WatchOptions | None = None
    """A hot folder (``zuotang watch``): the inputs are the folders, watched."""

    @classmethod
    def prepare(
        cls,
        options: EnhanceOptions,
        watch: WatchOptions | None = None,
        *,
        clock: Clock = SYSTEM_CLOCK,
    ) -> Session:
        """Check ``options``; raise UsageError before anything is called or written.
        ``clock``: the wall clock of ``--max-calls-per-day`` (tests pass days with it)."""
        if watch is not None:
            check_watch(options, watch)
        config, note = prepare(options)
        if watch is not None:
            config = dataclasses.replace(
                config, stream=True, max_calls_per_day=watch.max_calls_per_day, clock=clock
            )
        return cls(options, config, note, watch)

    def watcher(self) -> Watcher:
        """The watched folders as the batch's stream of inputs (``zuotang watch``)."""
        assert self.watch is not None
        options = self.options
        return Watcher(
            [Path(folder) for folder in options.inputs],
            settle=self.watch.settle,
            recursive=options.recursive,
            patterns=Patterns(options.include, options.exclude),
            poll=self.watch.poll,
            once=self.watch.once,
        )

    def mover(self, watcher: Watcher, notice: Callable[[str], None]) -> DoneMover | None:
        """``--move-done``: what moves each done original out of the inbox, if asked."""
        if self.watch is None or self.watch.move_done is None:
            return None
        return DoneMover(watcher, self.watch.move_done, notice)

    def inputs(self, stdin: BinaryIO, scan: ScanTally | None = None) -> Iterator[InputItem]:
        return inputs_of(self.options, stdin, scan)

    def opened(self) -> contextlib.AbstractContextManager[Journal]:
        """The output directory held for this batch: its lock and journal."""
        return opened(self.config, wait_lock=self.options.wait_lock)

    def batch(self, journal: Journal, sink: Sink, **hooks: Any) -> Batch:
        """The batch over ``journal``; ``hooks`` are :class:`Batch`'s callbacks."""
        return Batch(self.config, sink, journal, **hooks)
