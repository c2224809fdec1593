"""``write_atomic``: the one way zuotang writes a whole file (config, gallery, summary)."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from zuotang_cli import atomic
from zuotang_cli.atomic import write_atomic

posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX modes")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_text_is_written_as_utf8_with_its_newlines_as_given(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    write_atomic(target, "佐糖\r\nline two\n")
    assert target.read_bytes() == "佐糖\r\nline two\n".encode()


def test_bytes_are_written_as_they_are(tmp_path: Path) -> None:
    target = tmp_path / "a.bin"
    write_atomic(target, b"\x00\xff\r\n")
    assert target.read_bytes() == b"\x00\xff\r\n"


def test_an_existing_file_is_replaced_whole(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    target.write_text("a much longer old content\n" * 100, encoding="utf-8")
    write_atomic(target, "new\n")
    assert target.read_text(encoding="utf-8") == "new\n"


def test_no_temporary_file_is_left(tmp_path: Path) -> None:
    write_atomic(tmp_path / "a.txt", "x")
    write_atomic(tmp_path / "a.txt", "y")
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


@posix_only
def test_a_mode_is_exact_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o277)  # would make a 0600 file 0400
    try:
        write_atomic(tmp_path / "private", "secret", mode=0o600)
    finally:
        os.umask(old)
    assert mode(tmp_path / "private") == 0o600


@posix_only
def test_without_a_mode_the_umask_decides_as_for_open(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        write_atomic(tmp_path / "page.html", "x")
    finally:
        os.umask(old)
    assert mode(tmp_path / "page.html") == 0o644


@posix_only
def test_the_mode_of_an_existing_file_is_replaced_too(tmp_path: Path) -> None:
    target = tmp_path / "c.toml"
    target.write_text("old", encoding="utf-8")
    target.chmod(0o644)
    write_atomic(target, "new", mode=0o600)
    assert mode(target) == 0o600


def test_the_data_is_synced_before_the_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[str] = []
    real_fsync, real_replace = os.fsync, Path.replace

    def fsync(fd: int) -> None:
        events.append("fsync")
        real_fsync(fd)

    def replace(self: Path, target: Any) -> Path:
        events.append("replace")
        return real_replace(self, target)

    monkeypatch.setattr(atomic.os, "fsync", fsync)
    monkeypatch.setattr(Path, "replace", replace)
    write_atomic(tmp_path / "a.txt", "x")
    assert events[:2] == ["fsync", "replace"]  # then the folder, on POSIX


def test_a_failed_rename_leaves_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "a.txt"
    target.write_text("old", encoding="utf-8")

    def refuse(self: Path, target: Any) -> Path:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "replace", refuse)
    with pytest.raises(OSError, match="No space left"):
        write_atomic(target, "new")
    assert target.read_text(encoding="utf-8") == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_an_interrupt_while_writing_removes_the_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(fd: int) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(atomic.os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_atomic(tmp_path / "a.txt", "x")
    assert list(tmp_path.iterdir()) == []


def test_a_missing_folder_is_an_os_error_and_creates_nothing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write_atomic(tmp_path / "no" / "a.txt", "x")
    assert list(tmp_path.iterdir()) == []


def test_a_symlink_is_replaced_not_followed(tmp_path: Path) -> None:
    real = tmp_path / "real.txt"
    real.write_text("real", encoding="utf-8")
    link = tmp_path / "link.txt"
    link.symlink_to(real)
    write_atomic(link, "new")
    assert not link.is_symlink()
    assert link.read_text(encoding="utf-8") == "new"
    assert real.read_text(encoding="utf-8") == "real"
