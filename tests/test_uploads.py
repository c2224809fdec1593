"""Local photos through the user's own bucket (``--upload-to``, docs/uploads.md), against a
real S3-compatible server on loopback (moto's server mode: ``s3_server`` in conftest.py)
and the emulator playing the listing's default (``url_only``: image_url only).

What is paid is read from the emulator's billed counters; what is left in the bucket by
listing it."""

from __future__ import annotations

import json
import signal
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import S3_SECRET, S3Server, free_port, start_s3_server
from tests.helpers import APPCODE, enhance, start_zuotang, wait_until
from zuotang_cli.status import ExitStatus
from zuotang_cli.store.layout import Layout

PHOTOS = {
    "a.jpg": ((100, 50), "JPEG"),
    "trip/b.png": ((60, 40), "PNG"),
    "trip/day2/c.png": ((80, 60), "PNG"),
    "trip/day2/d.jpg": ((90, 30), "JPEG"),
    "family/e.png": ((50, 50), "PNG"),
}


def photos(make_image: Callable[..., Path], root: Path, names: dict[str, Any] = PHOTOS) -> Path:
    for name, (size, fmt) in names.items():
        make_image(root / name, size, fmt)
    return root


def run(
    emu: Any, s3: S3Server, *args: str, env: dict[str, str | None] | None = None
) -> tuple[Any, dict[str, Any]]:
    """``zuotang enhance ARGS`` with the tests' bucket credentials; its JSON summary."""
    summary = Path(args[args.index("-o") + 1]).with_suffix(".summary.json")
    proc = enhance(emu, *args, "--summary-json", str(summary), env={**s3.env, **(env or {})})
    data = json.loads(summary.read_text()) if summary.exists() else {}
    return proc, data


def billed(emu: Any) -> dict[str, int]:
    return dict(emu.stats()["billed_by_input"])


def test_a_folder_through_the_bucket_is_paid_once_and_leaves_the_bucket_empty(
    tmp_path: Path, emulator: Any, s3_server: S3Server, make_image: Callable[..., Path]
) -> None:
    emu = emulator(url_only=True, body_accept="form", qps=50)
    bucket = s3_server.new_bucket()
    folder = photos(make_image, tmp_path / "photos")
    out = tmp_path / "out"
    args = (str(folder), "--recursive", "-o", str(out), "--upload-to", f"s3://{bucket}/in/")

    proc, summary = run(emu, s3_server, *args)

    assert proc.returncode == ExitStatus.SUCCESS, proc.stderr
    for name in PHOTOS:
        assert (out / name).is_file(), name
    assert len(billed(emu)) == len(PHOTOS) and set(billed(emu).values()) == {1}
    assert emu.stats()["billed"] == len(PHOTOS)
    assert s3_server.objects(bucket) == []
    assert summary["uploads"] == len(PHOTOS) and summary["uploads_removed"] == len(PHOTOS)
    assert summary["upload_bytes"] == sum((folder / n).stat().st_size for n in PHOTOS)
    # the endpoint refused the file in the body once: said once, remembered
    assert proc.stderr.count("local files go through") == 1

    again, summary = run(emu, s3_server, *args)

    assert again.returncode == ExitStatus.SUCCESS, again.stderr
    assert emu.stats()["billed"] == len(PHOTOS)  # the re-run pays 0
    assert summary["uploads"] == 0 and summary["paid_calls"] == 0
    assert s3_server.objects(bucket) == []


def test_object_keys_are_content_hashes_under_the_prefix(
    tmp_path: Path, emulator: Any, s3_server: S3Server, make_image: Callable[..., Path]
) -> None:
    """--keep-uploads leaves them: no file or folder name reaches the bucket."""
    emu = emulator(url_only=True, qps=50)
    bucket = s3_server.new_bucket()
    folder = photos(
        make_image, tmp_path / "private-Name", {"secret-trip/IMG_1.png": PHOTOS["a.jpg"]}
    )
    out = tmp_path / "out"
    proc, summary = run(
        emu,
        s3_server,
        str(folder),
        "--recursive",
        "-o",
        str(out),
        "--upload-to",
        f"s3://{bucket}/zt",
        "--send-files",
        "bucket",
        "--keep-uploads",
    )
    assert proc.returncode == ExitStatus.SUCCESS, proc.stderr
    (key,) = s3_server.objects(bucket)
    assert key.startswith("zt/") and len(key) == len("zt/") + 64 + len(".png")
    assert "secret" not in key and "IMG" not in key
    assert summary["uploads_removed"] == 0
    assert "local files go through" not in proc.stderr  # chosen: no switch to announce


def test_the_switch_is_remembered_for_the_output_directory(
    tmp_path: Path, emulator: Any, s3_server: S3Server, make_image: Callable[..., Path]
) -> None:
    emu = emulator(url_only=True, qps=50)
    bucket = s3_server.new_bucket()
    out = tmp_path / "out"
    first = make_image(tmp_path / "one.png", (40, 40))
    proc, _ = run(emu, s3_server, str(first), "-o", str(out), "--upload-to", f"s3://{bucket}")
    assert proc.returncode == ExitStatus.SUCCESS and "local files go through" in proc.stderr
    refused = emu.stats()["by_status"].get("400", 0)
    second = make_image(tmp_path / "two.png", (30, 40))
    proc, _ = run(emu, s3_server, str(second), "-o", str(out), "--upload-to", f"s3://{bucket}")
    assert proc.returncode == ExitStatus.SUCCESS, proc.stderr
    assert "local files go through" not in proc.stderr
    assert emu.stats()["by_status"].get("400", 0) == refused  # not tried in the body again
    # and without a bucket, the remembered switch says how to configure one
    third = make_image(tmp_path / "three.png", (20, 40))
    proc = enhance(emu, str(third), "-o", str(out))
    assert proc.returncode == ExitStatus.SOME_FAILED
    assert "--upload-to s3://BUCKET/PREFIX" in proc.stderr


def test_without_a_bucket_the_refusal_says_how_to_configure_one(
    tmp_path: Path, emulator: Any, make_image: Callable[..., Path]
) -> None:
    emu = emulator(gateway_multipart=False, qps=50)
    image = make_image(tmp_path / "a.png", (40, 40))
    proc = enhance(emu, str(image), "-o", str(tmp_path / "out"))
    assert proc.returncode == ExitStatus.SOME_FAILED
    assert "Unsupported Multipart" in proc.stderr and "--upload-to" in proc.stderr
    assert emu.stats()["billed"] == 0


def test_base64_bodies_are_sent_when_chosen(
    tmp_path: Path, emulator: Any, make_image: Callable[..., Path]
) -> None:
    emu = emulator(body_accept="form", qps=50)
    image = make_image(tmp_path / "a.png", (40, 30))
    out = tmp_path / "out"
    proc = enhance(emu, str(image), "-o", str(out), "--send-files", "base64")
    assert proc.returncode == ExitStatus.SUCCESS, proc.stderr
    assert (out / "a.png").is_file()
    assert list(billed(emu)) == [next(iter(billed(emu)))] and emu.stats()["billed"] == 1
    assert next(iter(billed(emu))).startswith("sha256:")


def test_the_url_only_emulator_refuses_base64_as_a_missing_image_url(
    tmp_path: Path, emulator: Any, make_image: Callable[..., Path]
) -> None:
    emu = emulator(url_only=True, qps=50)
    image = make_image(tmp_path / "a.png", (40, 30))
    proc = enhance(emu, str(image), "-o", str(tmp_path / "out"), "--send-files", "base64")
    assert proc.returncode == ExitStatus.SOME_FAILED
    assert "image_url is required" in proc.stderr and "--upload-to" in proc.stderr
    assert emu.stats()["billed"] == 0 and emu.stats()["by_status"] == {"400": 1}


# -- the bucket checked before any paid call ---------------------------------------------


def one_line_refusal(proc: Any, status: ExitStatus, *words: str) -> None:
    assert proc.returncode == status, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for word in words:
        assert word in lines[0], lines[0]


def test_no_such_bucket_is_one_line_exit_2_nothing_paid(
    tmp_path: Path, emulator: Any, s3_server: S3Server, make_image: Callable[..., Path]
) -> None:
    emu = emulator(url_only=True, qps=50)
    image = make_image(tmp_path / "a.png", (40, 30))
    proc, _ = run(
        emu, s3_server, str(image), "-o", str(tmp_path / "out"), "--upload-to", "s3://nope/x"
    )
    one_line_refusal(proc, ExitStatus.USAGE, "does not exist", "s3://nope/x")
    assert emu.stats()["calls"] == 0


def test_refused_credentials_are_one_line_exit_2_nothing_paid(
    tmp_path: Path, emulator: Any, make_image: Callable[..., Path]
) -> None:
    """An S3 server checking its credentials (moto with IAM auth on from the start)."""
    strict = start_s3_server({"INITIAL_NO_AUTH_ACTION_COUNT": "0"})
    try:
        emu = emulator(url_only=True, qps=50)
        image = make_image(tmp_path / "a.png", (40, 30))
        proc, _ = run(
            emu,
            strict,
            str(image),
            "-o",
            str(tmp_path / "out"),
            "--upload-to",
            "s3://photos/in",
        )
    finally:
        strict.process.terminate()
        strict.process.wait(timeout=10)
    one_line_refusal(proc, ExitStatus.USAGE, "s3://photos/in")
    assert "credentials" in proc.stderr or "access denied" in proc.stderr
    assert S3_SECRET not in proc.stderr + proc.stdout
    assert emu.stats()["calls"] == 0


def test_an_unreachable_bucket_endpoint_is_one_line_exit_4_nothing_paid(
    tmp_path: Path, emulator: Any, s3_server: S3Server, make_image: Callable[..., Path]
) -> None:
    emu = emulator(url_only=True, qps=50)
    image = make_image(tmp_path / "a.png", (40, 30))
    closed = f"http://127.0.0.1:{free_port()}"
    proc, _ = run(
        emu,
        s3_server,
        str(image),
        "-o",
        str(tmp_path / "out"),
        "--upload-to",
        "s3://photos/in",
        "--upload-endpoint",
        closed,
    )
    one_line_refusal(proc, ExitStatus.TROUBLE, "does not answer")
    assert emu.stats()["calls"] == 0


def test_a_bucket_in_another_region_is_one_line(s3_server: S3Server) -> None:
    """moto answers every region alike: the S3 reply for a bucket elsewhere (301
    PermanentRedirect) is given to the same explanation the check uses."""
    from botocore.exceptions import ClientError

    from zuotang_cli.engine.bucket import Bucket, Target
    from zuotang_cli.sanitize import Secrets

    bucket = Bucket(None, Target("photos", "in"), Secrets())
    reply = {
        "Error": {"Code": "PermanentRedirect", "Message": "use the bucket's endpoint"},
        "ResponseMetadata": {"HTTPStatusCode": 301},
    }
    error = bucket.explain(ClientError(reply, "PutObject"))  # type: ignore[arg-type]
    assert error.exit_status == ExitStatus.USAGE
    assert "another region" in str(error) and "AWS_REGION" in str(error)


def test_the_s3_extra_missing_is_one_line(tmp_path: Path, make_image: Callable[..., Path]) -> None:
    from tests.helpers import cli

    image = make_image(tmp_path / "a.png", (40, 30))
    code = (
        "import sys; sys.modules['aiobotocore'] = None; "  # as if not installed
        "from zuotang_cli.cli.main import main; main()"
    )
    proc = cli(
        "enhance",
        str(image),
        "-o",
        str(tmp_path / "out"),
        "--upload-to",
        "s3://b/p",
        entry=("-c", code),
        env={"ZUOTANG_APPCODE": APPCODE, "ZUOTANG_ENDPOINT": "http://127.0.0.1:9/x"},
    )
    one_line_refusal(proc, ExitStatus.USAGE, "pip install 'zuotang[s3]'")


# -- a crash, then a re-run ---------------------------------------------------------------


def test_kill_9_mid_run_then_a_rerun_pays_nothing_twice_and_leaves_no_object(
    tmp_path: Path, emulator: Any, s3_server: S3Server, make_image: Callable[..., Path]
) -> None:
    """kill -9 while calls are in flight (each held by the emulator's latency) and
    objects are in the bucket; the re-run saves every photo, pays again only for what the
    journal held as in flight, and deletes every object, those of the killed run too."""
    emu = emulator(url_only=True, qps=50, latency=(0.3, 0.3))
    bucket = s3_server.new_bucket()
    names = {f"set{i % 3}/p{i}.png": ((30 + i, 40), "PNG") for i in range(12)}
    folder = photos(make_image, tmp_path / "photos", names)
    out = tmp_path / "out"
    args = (str(folder), "--recursive", "-o", str(out), "--upload-to", f"s3://{bucket}/in")
    proc = start_zuotang(
        *args,
        "--qps",
        "50",
        "--concurrency",
        "4",
        "--send-files",
        "bucket",
        endpoint=emu.endpoint,
        env=s3_server.env,
    )
    try:
        wait_until(lambda: emu.stats()["billed"] >= 3 and emu.stats()["in_flight"] >= 1, 60)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert s3_server.objects(bucket), "the kill should leave objects behind"
    with sqlite3.connect(Layout(out).journal) as db:
        in_flight = db.execute("SELECT count(*) FROM entries WHERE status = 'calling'").fetchone()
        (saved,) = db.execute("SELECT count(*) FROM entries WHERE status = 'saved'").fetchone()
        stored = [o for (o,) in db.execute("SELECT object FROM uploads WHERE state = 'stored'")]
        saved_keys = [k for (k,) in db.execute("SELECT key FROM entries WHERE status = 'saved'")]
    # A kill between saving an input and deleting its object leaves that object booked:
    # only the stored objects of inputs not saved yet are there for the re-run to send.
    waiting = [o for o in stored if not any(k.endswith(Path(o).stem) for k in saved_keys)]
    wait_until(lambda: emu.stats()["in_flight"] == 0, 10)  # the calls the kill left answered
    billed_before = emu.stats()["billed"]

    again, summary = run(emu, s3_server, *args, "--send-files", "bucket")

    assert again.returncode == ExitStatus.SUCCESS, again.stderr
    for name in names:
        assert (out / name).is_file(), name
    paid_twice = sum(n - 1 for n in billed(emu).values() if n > 1)
    assert paid_twice <= in_flight[0]
    assert emu.stats()["billed"] - billed_before <= len(names) - billed_before + in_flight[0]
    assert s3_server.objects(bucket) == []
    # what the killed run had stored is sent again by its link, not uploaded again
    assert stored and summary["uploads"] <= len(names) - saved - len(waiting)
    with sqlite3.connect(Layout(out).journal) as db:
        assert db.execute("SELECT count(*) FROM uploads").fetchone() == (0,)


# -- secrets -------------------------------------------------------------------------------

LINK_MARKS = ("X-Amz-Signature", "X-Amz-Credential", S3_SECRET)
"""A presigned link (its signature, its credential scope) and the bucket's secret key."""


def test_bucket_keys_and_presigned_links_appear_nowhere(
    tmp_path: Path, emulator: Any, s3_server: S3Server, make_image: Callable[..., Path]
) -> None:
    """-v (HTTP exchanges), --json, the report, the journal, the gallery: none holds the
    bucket's secret key nor a presigned link; an object is named ``s3://bucket/key``."""
    emu = emulator(url_only=True, qps=50, faults={"500": 0.3}, seed=3)
    bucket = s3_server.new_bucket()
    folder = photos(make_image, tmp_path / "photos")
    out = tmp_path / "out"
    common = ("--upload-to", f"s3://{bucket}/in", "--send-files", "bucket", "-v", "--gallery")
    runs = [
        enhance(emu, str(folder), "-r", "-o", str(out), "--json", *common, env=s3_server.env),
        enhance(
            emu,
            str(folder),
            "-r",
            "-o",
            str(tmp_path / "unreachable"),
            *common,
            "--upload-endpoint",
            f"http://127.0.0.1:{free_port()}",  # a bucket that does not answer, with -v
            env=s3_server.env,
        ),
    ]
    assert runs[0].returncode == ExitStatus.SUCCESS, runs[0].stderr
    assert runs[1].returncode == ExitStatus.TROUBLE, runs[1].stderr
    assert "s3://" in runs[0].stderr or "bucket:" in runs[0].stderr
    for proc in runs:
        for mark in LINK_MARKS:
            assert mark not in proc.stdout + proc.stderr, mark
    files = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert any(path.name == "journal.sqlite" for path in files)
    for path in files:
        data = path.read_bytes()
        for mark in LINK_MARKS:
            assert mark.encode() not in data, (mark, path)


NO_AWS_KEYS: dict[str, str | None] = {"AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None}


def test_no_credentials_is_one_line_exit_2_nothing_paid(
    tmp_path: Path, emulator: Any, s3_server: S3Server, make_image: Callable[..., Path]
) -> None:
    emu = emulator(url_only=True, qps=50)
    image = make_image(tmp_path / "a.png", (40, 30))
    bucket = s3_server.new_bucket()
    proc, _ = run(
        emu, s3_server, str(image), "-o", str(tmp_path / "o"), "--upload-to", f"s3://{bucket}",
        env=NO_AWS_KEYS,
    )  # fmt: skip
    one_line_refusal(proc, ExitStatus.USAGE, "no credentials", "ALIBABA_CLOUD_ACCESS_KEY_ID")
    assert emu.stats()["calls"] == 0


def test_alibaba_cloud_keys_are_taken_when_no_aws_key_is_set(
    tmp_path: Path, emulator: Any, s3_server: S3Server, make_image: Callable[..., Path]
) -> None:
    emu = emulator(url_only=True, qps=50)
    image = make_image(tmp_path / "a.png", (40, 30))
    bucket = s3_server.new_bucket()
    oss = {
        **NO_AWS_KEYS,
        "ALIBABA_CLOUD_ACCESS_KEY_ID": "LTAI-zuotang-test",
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET": S3_SECRET,
    }
    proc, summary = run(
        emu, s3_server, str(image), "-o", str(tmp_path / "o"), "--upload-to", f"s3://{bucket}",
        "--send-files", "bucket", env=oss,
    )  # fmt: skip
    assert proc.returncode == ExitStatus.SUCCESS, proc.stderr
    assert summary["uploads"] == 1 and emu.stats()["billed"] == 1
    assert s3_server.objects(bucket) == []


def test_an_object_gone_from_the_bucket_is_uploaded_again_not_sent_dead(
    tmp_path: Path, emulator: Any, s3_server: S3Server, make_image: Callable[..., Path]
) -> None:
    """A re-run reuses what an earlier run left (--keep-uploads) without uploading it;
    an object a person or a lifecycle rule removed since is uploaded again, never sent as
    a link to nothing (the service would answer -3, billed)."""
    emu = emulator(url_only=True, qps=50)
    bucket = s3_server.new_bucket()
    folder = photos(make_image, tmp_path / "photos")
    out = tmp_path / "out"
    args = (str(folder), "-r", "-o", str(out), "--upload-to", f"s3://{bucket}/in")
    kept = (*args, "--send-files", "bucket", "--keep-uploads", "--force")
    first, summary = run(emu, s3_server, *kept)
    assert first.returncode == ExitStatus.SUCCESS and summary["uploads"] == len(PHOTOS)
    again, summary = run(emu, s3_server, *kept)
    assert again.returncode == ExitStatus.SUCCESS and summary["uploads"] == 0
    client = s3_server.client()
    for key in s3_server.objects(bucket)[:2]:
        client.delete_object(Bucket=bucket, Key=key)
    third, summary = run(emu, s3_server, *kept)
    assert third.returncode == ExitStatus.SUCCESS, third.stderr
    assert summary["uploads"] == 2
    assert emu.stats()["by_state"].get("-3", 0) == 0
    assert emu.stats()["billed"] == 3 * len(PHOTOS)  # --force: each run pays, once an input
    last, summary = run(emu, s3_server, *args)  # not kept this time: all removed
    assert last.returncode == ExitStatus.SUCCESS and summary["uploads_removed"] == len(PHOTOS)
    assert s3_server.objects(bucket) == []


def test_a_run_of_urls_never_needs_the_bucket_of_its_config(
    tmp_path: Path, emulator: Any, make_image: Callable[..., Path]
) -> None:
    """A bucket set once for local photos (ZUOTANG_UPLOAD_TO) is not checked, nor its
    credentials asked for, by a run that sends URLs only."""
    emu = emulator(url_only=True, qps=50)
    urls = [emu.file_url("harbour-320x240.jpg"), emu.file_url("garden-480x640.png")]
    env = {"ZUOTANG_UPLOAD_TO": "s3://photos/in", "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9"}
    proc = enhance(emu, *urls, "-o", str(tmp_path / "out"), env={**env, **NO_AWS_KEYS})
    assert proc.returncode == ExitStatus.SUCCESS, proc.stderr
    assert emu.stats()["billed"] == 2


def test_local_paths_in_a_list_check_the_bucket_at_the_first_upload(
    tmp_path: Path, emulator: Any, s3_server: S3Server, make_image: Callable[..., Path]
) -> None:
    """No local file among the arguments: the bucket (a fallback) is checked when a file
    first needs it; its trouble is the row of every such file, and nothing is paid."""
    emu = emulator(url_only=True, qps=50)
    images = [make_image(tmp_path / f"{i}.png", (40 + i, 30)) for i in range(3)]
    listing = tmp_path / "list.txt"
    listing.write_text("".join(f"{image}\n" for image in images))
    proc, summary = run(
        emu, s3_server, str(listing), "-o", str(tmp_path / "out"), "--upload-to", "s3://nope/in"
    )
    assert proc.returncode == ExitStatus.SOME_FAILED, proc.stderr
    assert "does not exist" in proc.stderr and "Traceback" not in proc.stderr
    assert emu.stats()["billed"] == 0 and summary["paid_calls"] == 0
    # the files sent in the body before the switch, refused (400, unpaid); none after it
    assert set(emu.stats()["by_status"]) == {"400"} and emu.stats()["calls"] <= len(images)


def test_send_files_bucket_needs_a_bucket(tmp_path: Path, emulator: Any) -> None:
    emu = emulator(qps=50)
    proc = enhance(emu, emu.file_url("a.png"), "-o", str(tmp_path / "o"), "--send-files", "bucket")
    one_line_refusal(proc, ExitStatus.USAGE, "--upload-to")


def test_a_base64_body_over_the_gateway_limit_is_refused_unsent(
    tmp_path: Path, emulator: Any, make_image: Callable[..., Path]
) -> None:
    """base64 makes the body a third bigger than the file: measured so, before any call."""
    emu = emulator(qps=50)
    image = make_image(tmp_path / "a.bmp", (300, 300), "BMP")  # 270 kB, 360 kB as base64
    size_mb = image.stat().st_size / 1024 / 1024
    limit = f"{size_mb * 1.2:.3f}"  # the file fits, its base64 does not
    proc = enhance(
        emu, str(image), "-o", str(tmp_path / "o"), "--send-files", "base64", "--max-upload", limit
    )
    assert proc.returncode == ExitStatus.SOME_FAILED
    assert "upload-too-large" in proc.stderr and emu.stats()["calls"] == 0
    proc = enhance(emu, str(image), "-o", str(tmp_path / "o2"), "--max-upload", limit)
    assert proc.returncode == ExitStatus.SUCCESS, proc.stderr  # multipart: it fits


def test_the_python_api_sends_files_through_the_bucket(
    tmp_path: Path,
    emulator: Any,
    s3_server: S3Server,
    make_image: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import asyncio

    import zuotang_cli

    for name, value in s3_server.env.items():
        monkeypatch.setenv(name, value or "")
    emu = emulator(url_only=True, qps=50)
    bucket = s3_server.new_bucket()
    folder = photos(make_image, tmp_path / "photos")
    options = {"appcode": APPCODE, "endpoint": emu.endpoint, "output_dir": tmp_path / "out"}
    outcome = asyncio.run(
        zuotang_cli.enhance(
            [folder], recursive=True, upload_to=f"s3://{bucket}/api", send_files="bucket", **options
        )
    )
    assert outcome.exit_status == ExitStatus.SUCCESS
    assert len(outcome.records) == len(PHOTOS) and emu.stats()["billed"] == len(PHOTOS)
    assert s3_server.objects(bucket) == []
    with pytest.raises(zuotang_cli.TroubleError, match="does not answer"):
        asyncio.run(
            zuotang_cli.enhance(
                [folder],
                recursive=True,
                upload_to=f"s3://{bucket}/api",
                upload_endpoint=f"http://127.0.0.1:{free_port()}",
                force=True,
                **options,
            )
        )
    assert emu.stats()["billed"] == len(PHOTOS)


def test_an_upload_that_fails_costs_no_call_and_the_rerun_sends_it(
    tmp_path: Path, emulator: Any, s3_server: S3Server, make_image: Callable[..., Path]
) -> None:
    """An S3 server that lets its first three requests through (the bucket made, the
    check before the run) and then refuses the credentials: every upload fails, is
    retried, and ends its input as upload-failed, with no call made; the re-run, on a
    bucket that takes them, sends them all."""
    emu = emulator(url_only=True, qps=50)
    images = [make_image(tmp_path / "in" / f"{i}.png", (40 + i, 30)) for i in range(3)]
    strict = start_s3_server({"INITIAL_NO_AUTH_ACTION_COUNT": "3"})
    try:
        bucket = strict.new_bucket()  # its first request; the check makes the other two
        out = tmp_path / "out"
        args = (str(tmp_path / "in"), "-o", str(out), "--upload-to", f"s3://{bucket}/in")
        proc, summary = run(emu, strict, *args, "--retries", "1", "--send-files", "bucket")
        assert proc.returncode == ExitStatus.SOME_FAILED, proc.stderr
        assert "upload-failed" in proc.stderr and S3_SECRET not in proc.stderr
        assert emu.stats()["calls"] == 0 and summary["paid_calls"] == 0
    finally:
        strict.process.terminate()
        strict.process.wait(timeout=10)
    s3_server.client().create_bucket(Bucket=bucket)  # the same bucket, now taking uploads
    again, summary = run(emu, s3_server, *args, "--send-files", "bucket")
    assert again.returncode == ExitStatus.SUCCESS, again.stderr
    assert s3_server.objects(bucket) == []
    assert summary["uploads"] == len(images) and emu.stats()["billed"] == len(images)


def test_a_link_to_the_bucket_follows_the_body_encoding_of_url_calls(
    tmp_path: Path, emulator: Any, s3_server: S3Server, make_image: Callable[..., Path]
) -> None:
    """An endpoint that reads multipart fields only: the bucket's links, sent as form
    fields first, switch the body to multipart once, as URL calls do."""
    emu = emulator(url_only=True, body_accept="multipart", qps=50)
    bucket = s3_server.new_bucket()
    folder = photos(make_image, tmp_path / "photos")
    out = tmp_path / "out"
    proc, summary = run(
        emu, s3_server, str(folder), "-r", "-o", str(out), "--upload-to", f"s3://{bucket}",
        "--send-files", "bucket",
    )  # fmt: skip
    assert proc.returncode == ExitStatus.SUCCESS, proc.stderr
    assert "sending multipart bodies" in proc.stderr and summary["uploads"] == len(PHOTOS)
    assert emu.stats()["billed"] == len(PHOTOS) and set(billed(emu).values()) == {1}
    assert s3_server.objects(bucket) == []
