"""Output names from hostile inputs (``../../x``, absolute paths, reserved names, very long
names, names differing only by case, control characters), end to end: every written file
is inside -o, and no two inputs share one."""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.helpers import report_rows, write_list
from tests.reliability.support import (
    Trial,
    check_saved,
    enhance,
    saved_images,
    snapshot,
)
from zuotang_cli.inputs.reader import normalize_url
from zuotang_cli.status import ExitStatus

SUITE = "Output names from hostile inputs"
RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10))} | {
    f"LPT{i}" for i in range(1, 10)
}

URL_PATHS = [
    "..%2F..%2F..%2Fescape.png",
    "%2E%2E/%2E%2E/%2E%2E/escape2.png",
    "a/../../../../../etc/passwd",
    "%2Fetc%2Fpasswd",
    "%2F%2Fserver%2Fshare.png",
    "C:%5CWindows%5Csystem32%5Cevil.png",
    "%5C%5Cserver%5Cshare%5Cx.png",
    "CON.png",
    "con",
    "aux.jpg",
    "NUL.txt.png",
    "LPT1",
    "com9.png",
    "n" * 400 + ".png",
    "%F0%9F%98%80" * 30 + ".png",
    "Photo.PNG",
    "photo.png",
    "PHOTO.png",
    "%00nul.png",
    "line%0Abreak.png",
    "carriage%0Dreturn.png",
    "%E2%80%AEgnp.exe",
    "..",
    "...",
    ".hidden",
    "-rf.png",
    "~",
    "trailing-dot.",
    "trailing-space%20",
    "a%3Ab%2Ac%3Fd%22e%3Cf%3Eg%7Ch.png",
    "caf%C3%A9.png",
    "cafe%CC%81.png",
    "?name=../../query.png",
    "",
]

FILE_NAMES = [
    "CON.png",
    "aux.jpg",
    "nul.png",
    "Com1.png",
    "A.png",
    "a.png",
    "x" * 240 + ".png",
    "é" * 120 + ".png",
    "..png",
    " lead.png",
    "trail .png",
    "new\nline.png",
    "back\\slash.png",
    "colon:name.png",
    "star*.png",
    "q?.png",
    "-rf.png",
    "tab\there.png",
    unicodedata.normalize("NFC", "café.png"),
    unicodedata.normalize("NFD", "café.png"),
    "\u202egnp.exe.png",
    "a.b.c.png",
    "photo.png.png",
    "photo.png",
]


def components_are_portable(out: Path, paths: list[Path]) -> None:
    root = out.resolve()
    for path in paths:
        for part in path.relative_to(root).parts:
            assert len(part.encode()) <= 255, part
            assert part not in ("", ".", ".."), part
            assert not any(ord(ch) < 32 for ch in part), part
            assert part.split(".", 1)[0].rstrip(" ").upper() not in RESERVED, part


def test_hostile_url_names_stay_inside_and_never_collide(
    trial: Trial, emulator: Any, tmp_path: Path
) -> None:
    """URLs whose paths try to climb out, use reserved or huge names, differ by case."""
    emu = emulator(cheap=True, qps=10_000)
    urls = [f"{emu.url}/files/{path}" for path in URL_PATHS]
    urls += [f"{emu.url}/", f"{emu.url}/files/x.png?n=1", f"{emu.url}/files/x.png?n=2"]
    url_list = write_list(tmp_path / "urls.txt", urls)
    out = tmp_path / "deep" / "out"
    before = snapshot(tmp_path, skip=[out])
    run = enhance(trial, str(url_list), "-o", str(out), "--qps", "200", endpoint=emu.endpoint)
    trial.inputs += len(urls)
    assert run.returncode == ExitStatus.SUCCESS, run.stderr[-2000:]
    rows = report_rows(out)
    # URLs equal under RFC 3986 (%2E%2E is .., a/../ is nothing) are one input, paid once
    distinct = len({normalize_url(url) for url in urls})
    outcomes = [r["outcome"] for r in rows]
    assert len(rows) == len(urls)
    assert (outcomes.count("done"), outcomes.count("skipped")) == (distinct, len(urls) - distinct)
    saved = check_saved(out, [r for r in rows if r["outcome"] == "done"])
    assert len(saved) == distinct == len(saved_images(out))
    # URL names carry a hash of the whole URL: distinct even on a case-insensitive disk.
    assert len({path.name.casefold() for path in saved}) == len(saved)
    components_are_portable(out, saved)
    assert snapshot(tmp_path, skip=[out]) == before  # nothing written outside -o
    trial.saved += len(saved)
    trial.note(
        f"{len(urls)} URLs with traversal (../, %2F, backslashes), absolute and drive paths, "
        f"reserved names, 400-character and emoji names, control characters, names "
        f"differing only by case ({len(urls) - distinct} equal to another under RFC 3986: "
        f"one call each): {len(saved)} distinct files, all inside -o, each name "
        f"portable (<= 255 bytes, no control character, not reserved), distinct even "
        f"case-folded; nothing written outside -o"
    )


def test_hostile_file_names_stay_inside_and_never_collide(
    trial: Trial, emulator: Any, tmp_path: Path, make_image: Callable[..., Path]
) -> None:
    """Local images with hostile names, given one by one and as a mirrored folder."""
    emu = emulator(cheap=True, qps=10_000)
    photos = tmp_path / "photos"
    for i, name in enumerate(FILE_NAMES):
        make_image(photos / name, (20 + i, 12))
    make_image(photos / "CON" / "aux.png", (60, 12))
    make_image(photos / ("d" * 200) / ("f" * 200 + ".png"), (62, 12))
    n_folder = sum(not name.startswith(".") for name in FILE_NAMES) + 2  # hidden: skipped
    singles = [str(photos / name) for name in FILE_NAMES[:8]]
    singles.append(os.path.relpath(photos / "A.png", tmp_path))
    out_folder, out_single = tmp_path / "out-folder", tmp_path / "out-single"
    before = snapshot(tmp_path, skip=[out_folder, out_single])

    mirrored = enhance(
        trial, str(photos), "-r", "-o", str(out_folder), "--qps", "200", endpoint=emu.endpoint
    )
    given = enhance(
        trial, *singles, "-o", str(out_single), "--qps", "200", endpoint=emu.endpoint, cwd=tmp_path
    )
    trial.inputs += n_folder + len(singles)
    assert mirrored.returncode == ExitStatus.SUCCESS, mirrored.stderr[-2000:]
    assert given.returncode == ExitStatus.SUCCESS  # the relative A.png duplicates #5: skipped
    folder_rows, single_rows = report_rows(out_folder), report_rows(out_single)
    assert len(folder_rows) == n_folder and {r["outcome"] for r in folder_rows} == {"done"}
    assert [r["outcome"] for r in single_rows].count("done") == len(singles) - 1
    duplicate = next(r for r in single_rows if r["input"] == singles[-1])
    assert duplicate["outcome"] == "skipped" and "duplicate" in duplicate["message"]
    original = next(r for r in single_rows if r["input"] == str(photos / "A.png"))
    assert duplicate["output"] == original["output"]  # the same file: the same result
    single_rows = [r for r in single_rows if r is not duplicate]
    saved = check_saved(out_folder, folder_rows) + check_saved(out_single, single_rows)
    assert len(saved) == n_folder + len(singles) - 1
    assert len(saved_images(out_folder)) == n_folder
    assert len(saved_images(out_single)) == len(singles) - 1
    components_are_portable(out_folder, check_saved(out_folder, folder_rows))
    components_are_portable(out_single, check_saved(out_single, single_rows))
    assert snapshot(tmp_path, skip=[out_folder, out_single]) == before
    trial.saved += len(saved)
    trial.note(
        f"{n_folder} local images with reserved, 240-character, control-character, "
        f"backslash, colon, NFC/NFD and case-only-different names, mirrored from a folder, "
        f"and {len(singles)} given one by one (one by a second spelling: reported duplicate): "
        f"{len(saved)} distinct files, all inside -o, names portable; nothing written outside"
    )


def test_a_symlink_inside_the_output_cannot_lead_a_result_outside(
    trial: Trial, emulator: Any, tmp_path: Path, make_image: Callable[..., Path]
) -> None:
    """-o holds a symlink to a folder outside; the mirrored layout would go through it."""
    emu = emulator(cheap=True, qps=10_000)
    photos = tmp_path / "photos"
    make_image(photos / "sub" / "a.png", (30, 20))
    make_image(photos / "b.png", (31, 20))
    outside = tmp_path / "outside"
    outside.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "sub").symlink_to(outside, target_is_directory=True)
    run = enhance(trial, str(photos), "-r", "-o", str(out), "--qps", "200", endpoint=emu.endpoint)
    trial.inputs += 2
    assert run.returncode == ExitStatus.SOME_FAILED
    assert list(outside.iterdir()) == []
    rows = {Path(r["input"]).name: r for r in report_rows(out)}
    assert rows["b.png"]["outcome"] == "done"
    refused = rows["a.png"]
    assert refused["outcome"] == "failed" and "leaves" in refused["message"], refused
    trial.note(
        f"a symlink in -o pointing outside: the result that would pass through it was refused "
        f"({refused['error_class']}: {refused['message'].replace(str(out), '-o')}), "
        f"nothing written outside"
    )


def test_a_result_refused_for_leaving_the_output_is_reported_as_such(
    trial: Trial, emulator: Any, tmp_path: Path, make_image: Callable[..., Path]
) -> None:
    """The row of a result refused by the symlink check keeps its call's details."""
    emu = emulator(cheap=True, qps=10_000)
    photos = tmp_path / "photos"
    make_image(photos / "sub" / "a.png", (30, 20))
    outside = tmp_path / "outside"
    outside.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "sub").symlink_to(outside, target_is_directory=True)
    enhance(trial, str(photos), "-r", "-o", str(out), "--qps", "200", endpoint=emu.endpoint)
    trial.inputs += 1
    (row,) = report_rows(out)
    assert row["error_class"] != "internal-error", row
    assert (row["attempts"], row["http_status"]) == ("1", "200"), row
