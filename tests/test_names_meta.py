"""Results as photographers expect (issue 24): their own names, their metadata, upright, in
the format asked for, over the real CLI against the emulator, on real images built with
Pillow here.  What each run and re-run pays is proved from the emulator's billed counters
(renaming, converting and re-naming never pay)."""

from __future__ import annotations

import functools
import io
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageCms, ImageOps

from tests.helpers import enhance, report_rows, write_list
from zuotang_cli.emulator.imaging import render
from zuotang_cli.status import ExitStatus
from zuotang_cli.store.finishing import scan_data

ORIENTATION, GPS, EXIF_IFD, MAKE = 0x0112, 0x8825, 0x8769, 0x010F
XMP = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF/></x:xmpmeta>'


@functools.cache
def srgb() -> bytes:
    """One sRGB profile (its header holds the time it was made: made once)."""
    profile: bytes = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    return profile


def phone_exif(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    exif[MAKE] = "Phone Maker"
    exif.get_ifd(GPS)[1] = "N"
    data: bytes = exif.tobytes()
    return data


def phone_photo(path: Path, orientation: int = 6) -> Path:
    """A phone's JPEG: stored sideways (orientation 6 or 8), with EXIF, ICC and XMP; what
    it displays has a red block top-left."""
    upright = Image.new("RGB", (120, 60), (128, 128, 128))
    upright.paste((255, 0, 0), (0, 0, 30, 15))
    turn = {6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}.get(orientation)
    stored = upright.transpose(turn) if turn is not None else upright
    path.parent.mkdir(parents=True, exist_ok=True)
    stored.save(path, "JPEG", quality=90, exif=phone_exif(orientation), icc_profile=srgb(), xmp=XMP)
    return path


def plain(path: Path, size: tuple[int, int] = (64, 48), fmt: str = "PNG", **options: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (40, 90, 200)).save(path, fmt, **options)
    return path


def displayed_top_left_is_red(path: Path) -> bool:
    with Image.open(path) as img:
        shown = ImageOps.exif_transpose(img) or img
        r, g, b = shown.convert("RGB").getpixel((2, 2))  # type: ignore[misc]
    return bool(r > 200 and g < 80 and b < 80)


def outputs(out: Path) -> list[str]:
    return sorted(
        p.relative_to(out).as_posix()
        for p in out.rglob("*")
        if p.is_file() and ".zuotang" not in p.parts and p.name not in ("report.csv",)
    )


def ok(proc: Any) -> None:
    assert proc.returncode == ExitStatus.SUCCESS, proc.stderr


# -- names --------------------------------------------------------------------------------


def test_a_folder_run_gives_clean_names_and_a_rerun_pays_nothing(
    tmp_path: Path, emulator: Any
) -> None:
    emu = emulator(qps=100)
    photos = tmp_path / "photos"
    phone_photo(photos / "IMG_0042.jpg")
    plain(photos / "x.webp", fmt="WEBP")
    plain(photos / "trip" / "beach.png")
    out = tmp_path / "out"
    ok(enhance(emu, str(photos), "-r", "-o", str(out)))
    assert outputs(out) == ["IMG_0042.jpg", "trip/beach.png", "x.png"]
    assert emu.stats()["billed"] == 3
    ok(enhance(emu, str(photos), "-r", "-o", str(out)))
    assert emu.stats()["billed"] == 3  # the re-run pays nothing
    assert outputs(out) == ["IMG_0042.jpg", "trip/beach.png", "x.png"]


def test_a_url_run_gives_clean_names_and_carries_metadata_without_reencoding(
    tmp_path: Path, emulator: Any
) -> None:
    www = tmp_path / "www"
    source = phone_photo(www / "2024" / "IMG_0042.jpg")
    emu = emulator(qps=100, serve_dir=www)
    out = tmp_path / "out"
    proc = enhance(emu, emu.file_url("2024/IMG_0042.jpg"), "-o", str(out), "-v")
    ok(proc)
    saved = out / "IMG_0042.jpg"
    assert outputs(out) == ["IMG_0042.jpg"]
    # the service's own encoding of the result, byte for byte: only segments were added
    expected = render(source.read_bytes(), "clean", None).data
    assert scan_data(saved.read_bytes()) == scan_data(expected)
    with Image.open(saved) as img:
        assert img.info["icc_profile"] == srgb() and img.info["xmp"] == XMP
        assert img.getexif()[MAKE] == "Phone Maker" and img.getexif().get_ifd(GPS)
    assert displayed_top_left_is_red(saved)
    # the header came from one ranged GET, not a second full download of the source
    gets = [line for line in proc.stderr.splitlines() if "http: GET" in line and "/files/" in line]
    assert len(gets) == 1 and "range: bytes=0-65535" in gets[0]
    assert emu.stats()["billed"] == 1


def test_with_probe_the_header_comes_from_the_probe_alone(tmp_path: Path, emulator: Any) -> None:
    www = tmp_path / "www"
    phone_photo(www / "IMG_7.jpg")
    emu = emulator(qps=100, serve_dir=www)
    out = tmp_path / "out"
    proc = enhance(emu, emu.file_url("IMG_7.jpg"), "-o", str(out), "--probe", "--strip-gps", "-v")
    ok(proc)
    gets = [line for line in proc.stderr.splitlines() if "http: GET" in line and "/files/" in line]
    assert len(gets) == 1  # the probe's
    with Image.open(out / "IMG_7.jpg") as img:
        exif = img.getexif()
        assert exif[MAKE] == "Phone Maker" and not exif.get_ifd(GPS)


def test_a_collision_gets_the_suffix_and_the_report_says_why(tmp_path: Path, emulator: Any) -> None:
    www = tmp_path / "www"
    plain(www / "a" / "photo.png")
    plain(www / "b" / "photo.png", (50, 40))
    plain(www / "c" / "mine.png")
    emu = emulator(qps=100, serve_dir=www)
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.png").write_bytes(b"the user's own file")
    urls = [emu.file_url("a/photo.png"), emu.file_url("b/photo.png"), emu.file_url("c/mine.png")]
    ok(
        enhance(
            emu, str(write_list(tmp_path / "u.txt", urls)), "-o", str(out), "--concurrency", "1"
        )
    )
    rows = {row["input"]: row for row in report_rows(out)}
    first, second = rows[urls[0]], rows[urls[1]]
    assert Path(first["output"]).name == "photo.png" and "named" not in first["message"]
    renamed = Path(second["output"]).name
    assert renamed.startswith("photo-") and renamed.endswith(".png") and len(renamed) == 18
    assert f"named {renamed}: photo.png is another input's result" in second["message"]
    mine = rows[urls[2]]
    assert Path(mine["output"]).name != "mine.png"
    assert "mine.png is a file zuotang did not write" in mine["message"]
    assert (out / "mine.png").read_bytes() == b"the user's own file"  # never overwritten
    assert emu.stats()["billed"] == 3


def test_a_second_type_into_the_same_folder_is_told_apart(tmp_path: Path, emulator: Any) -> None:
    www = tmp_path / "www"
    plain(www / "portrait.png")
    emu = emulator(qps=100, serve_dir=www)
    out, url = tmp_path / "out", emu.file_url("portrait.png")
    ok(enhance(emu, url, "-o", str(out)))
    ok(enhance(emu, url, "-o", str(out), "-t", "face"))
    rows = report_rows(out)
    assert (
        "portrait.png is this source's result with --type clean --scale auto" in rows[0]["message"]
    )
    assert rows[0]["type"] == "face" and rows[0]["scale"] == "auto"
    names = outputs(out)
    assert "portrait.png" in names and len(names) == 2
    # the same with a template naming the type: no suffix at all
    out2 = tmp_path / "out2"
    for kind in ("clean", "face"):
        ok(enhance(emu, url, "-o", str(out2), "-t", kind, "--name", "{stem}-{type}.{ext}"))
    assert outputs(out2) == ["portrait-clean.png", "portrait-face.png"]
    assert emu.stats()["billed"] == 4


def test_a_name_template_mirrors_hosts_and_paths(tmp_path: Path, emulator: Any) -> None:
    www = tmp_path / "www"
    plain(www / "2024" / "trip" / "IMG_1.png", (60, 40))
    emu = emulator(qps=100, serve_dir=www)
    out = tmp_path / "out"
    url = emu.file_url("2024/trip/IMG_1.png")
    ok(enhance(emu, url, "-o", str(out), "-s", "2", "--name", "{host}/{path}/{stem}-x{factor}"))
    assert outputs(out) == ["127.0.0.1/files/2024/trip/IMG_1-x2.png"]


@pytest.mark.parametrize("template", ["../{stem}", "{stem}/../../x", "/tmp/{stem}", "{nope}"])
def test_a_name_template_that_could_leave_the_output_is_refused(
    tmp_path: Path, emulator: Any, template: str
) -> None:
    emu = emulator(qps=100)
    proc = enhance(emu, emu.file_url("x.png"), "-o", str(tmp_path / "out"), "--name", template)
    assert proc.returncode == ExitStatus.USAGE
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert emu.stats()["calls"] == 0


def test_an_old_style_output_directory_keeps_its_names(tmp_path: Path, emulator: Any) -> None:
    www = tmp_path / "www"
    for name in ("a.png", "b.png", "c.png"):
        plain(www / name)
    emu = emulator(qps=100, serve_dir=www)
    out = tmp_path / "out"
    old = write_list(tmp_path / "old.txt", [emu.file_url("a.png"), emu.file_url("b.png")])
    # what an earlier version made: <stem>-<hash8>.<ext>, a format-3 journal
    ok(enhance(emu, str(old), "-o", str(out), "--name", "{stem}-{hash}.{ext}"))
    before = outputs(out)
    assert len(before) == 2 and all(len(name) == len("a-12345678.png") for name in before)
    with sqlite3.connect(out / ".zuotang" / "journal.sqlite") as db:
        db.execute("UPDATE meta SET value = '3' WHERE name = 'format'")
        db.execute("DELETE FROM meta WHERE name = 'naming'")
    assert emu.stats()["billed"] == 2
    ok(enhance(emu, str(old), "-o", str(out)))  # opened by this version
    assert emu.stats()["billed"] == 2 and outputs(out) == before  # pays 0, names kept
    (out / before[0]).unlink()  # deleted while its link lives: fetched again, same name
    more = write_list(tmp_path / "more.txt", [*old.read_text().split(), emu.file_url("c.png")])
    ok(enhance(emu, str(more), "-o", str(out)))
    assert emu.stats()["billed"] == 3  # only c is paid for
    after = outputs(out)
    assert set(before) <= set(after) and len(after) == 3
    assert next(n for n in after if n.startswith("c")).startswith("c-")  # the directory's style


# -- upright and metadata ---------------------------------------------------------------


@pytest.mark.parametrize("orientation", [6, 8])
@pytest.mark.parametrize("service", ["ignore", "apply"])
def test_results_display_upright_whatever_the_service_does_with_orientation(
    tmp_path: Path, emulator: Any, orientation: int, service: str
) -> None:
    photos = tmp_path / "photos"
    phone_photo(photos / "IMG_1.jpg", orientation)
    emu = emulator(qps=100, orientation=service)
    out = tmp_path / "out"
    ok(enhance(emu, str(photos), "-o", str(out)))
    ok(enhance(emu, str(photos), "-o", str(out), "--format", "png"))  # re-encoded: turned
    for name in ("IMG_1.jpg", "IMG_1.png"):
        assert displayed_top_left_is_red(out / name), (name, service)
        with Image.open(out / name) as img:
            shown = ImageOps.exif_transpose(img) or img
            assert shown.width > shown.height  # landscape, as the source displays
    with Image.open(out / "IMG_1.png") as img:
        assert img.getexif().get(ORIENTATION, 1) == 1 and img.width > img.height
    assert emu.stats()["billed"] == 1


def test_each_source_kind_keeps_what_it_carries(tmp_path: Path, emulator: Any) -> None:
    photos = tmp_path / "photos"
    fake_cmyk = bytearray(srgb())
    fake_cmyk[16:20] = b"CMYK"
    photos.mkdir()
    Image.new("CMYK", (60, 40), (0, 120, 200, 10)).save(
        photos / "print.jpg", "JPEG", icc_profile=bytes(fake_cmyk)
    )
    Image.frombytes("I;16", (40, 30), (30000).to_bytes(2, "little") * 1200).save(
        photos / "scan16.png", "PNG"
    )
    plain(photos / "web.webp", fmt="WEBP", icc_profile=srgb())
    plain(photos / "xmp.jpg", fmt="JPEG", xmp=XMP)
    emu = emulator(qps=100)
    out = tmp_path / "out"
    ok(enhance(emu, str(photos), "-o", str(out), "--format", "same"))
    assert outputs(out) == ["print.jpg", "scan16.png", "web.webp", "xmp.jpg"]
    with Image.open(out / "print.jpg") as img:  # RGB from the service: no CMYK profile
        assert img.mode == "RGB" and "icc_profile" not in img.info
    with Image.open(out / "scan16.png") as img:
        assert img.format == "PNG" and img.size == (160, 120)
    with Image.open(out / "web.webp") as img:
        assert img.format == "WEBP" and img.info["icc_profile"] == srgb()
    with Image.open(out / "xmp.jpg") as img:
        assert img.info["xmp"] == XMP
    assert emu.stats()["billed"] == 4


# -- formats and money ------------------------------------------------------------------


def test_a_rerun_with_another_format_converts_and_pays_nothing(
    tmp_path: Path, emulator: Any
) -> None:
    www = tmp_path / "www"
    for name in ("a.jpg", "b.jpg"):
        phone_photo(www / name, orientation=1)
    emu = emulator(qps=100, serve_dir=www)
    listing = write_list(tmp_path / "u.txt", [emu.file_url("a.jpg"), emu.file_url("b.jpg")])
    out = tmp_path / "out"
    ok(enhance(emu, str(listing), "-o", str(out)))
    paid = emu.stats()
    assert paid["billed"] == 2 and outputs(out) == ["a.jpg", "b.jpg"]
    proc = enhance(emu, str(listing), "-o", str(out), "--format", "webp", "--quality", "80")
    ok(proc)
    stats = emu.stats()
    assert stats["billed"] == 2 and stats["downloads"] == paid["downloads"]  # converting: 0
    assert outputs(out) == ["a.jpg", "a.webp", "b.jpg", "b.webp"]
    rows = report_rows(out)
    assert all(row["outcome"] == "skipped" and row["output"].endswith(".webp") for row in rows)
    assert all("converted from" in row["message"] for row in rows)
    with Image.open(out / "a.webp") as img:
        assert img.info["icc_profile"] == srgb() and img.getexif()[MAKE] == "Phone Maker"
    # again: the journal records the webp as the result; nothing converted, nothing paid
    again = enhance(emu, str(listing), "-o", str(out), "--format", "webp")
    ok(again)
    assert emu.stats()["billed"] == 2
    assert [row["message"] for row in report_rows(out)] == ["done in an earlier run"] * 2


def test_report_and_json_rows_carry_type_scale_and_factor(tmp_path: Path, emulator: Any) -> None:
    photos = tmp_path / "photos"
    plain(photos / "p.png", (100, 80))
    emu = emulator(qps=100)
    out = tmp_path / "out"
    proc = enhance(emu, str(photos), "-o", str(out), "-s", "2", "-t", "face", "--json")
    ok(proc)
    record = json.loads(proc.stdout.splitlines()[0])
    assert record["schema"] == 1
    assert (record["type"], record["scale"], record["factor"]) == ("face", "2", 2.0)
    again = enhance(emu, str(photos), "-o", str(out), "-s", "2", "-t", "face")
    ok(again)
    (row,) = report_rows(out)
    assert (row["outcome"], row["type"], row["scale"], row["factor"]) == (
        "skipped",
        "face",
        "2",
        "2.0",
    )
    header = (out / "report.csv").read_text(encoding="utf-8").splitlines()[0]
    assert header.endswith('"error_class","type","scale"')
    buffer = io.BytesIO((out / "p.png").read_bytes())
    assert Image.open(buffer).size == (200, 160)
    assert emu.stats()["billed"] == 1
