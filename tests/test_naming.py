"""Unit tests of zuotang_cli.store.naming: deterministic, collision-free, portable output names."""

from __future__ import annotations

import hashlib
from pathlib import Path, PurePosixPath

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zuotang_cli.inputs.reader import InvalidURL, normalize_url
from zuotang_cli.models import InputItem, InputKind
from zuotang_cli.store.naming import (
    MAX_NAME_BYTES,
    MAX_NAME_CHARS,
    UnsafePathError,
    extension_for_format,
    output_relpath,
    safe_join,
    sanitize_component,
)


def url_item(url: str) -> InputItem:
    return InputItem(index=0, source=url, kind=InputKind.URL, url=normalize_url(url))


def file_item(path: str) -> InputItem:
    return InputItem(index=0, source=path, kind=InputKind.FILE, path=Path(path))


def found_item(relpath: str, root: str = "/photos") -> InputItem:
    path = Path(root) / relpath
    return InputItem(
        index=0, source=str(path), kind=InputKind.FILE, path=path, relpath=PurePosixPath(relpath)
    )


def sha8(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def portable(name: str) -> bool:
    return (
        name not in ("", ".", "..")
        and not name.startswith((".", " "))
        and not name.endswith((".", " "))
        and not any(char in name for char in '/\\\x00<>:"|?*')
        and len(name) <= MAX_NAME_CHARS
        and len(name.encode("utf-8", "surrogateescape")) <= MAX_NAME_BYTES
    )


@pytest.mark.parametrize(
    ("fmt", "ext"),
    [
        ("JPEG", "jpg"),
        ("MPO", "jpg"),
        ("PNG", "png"),
        ("WEBP", "webp"),
        ("BMP", "bmp"),
        ("TIFF", "tiff"),
        ("JPEG2000", "jpeg2000"),
    ],
)
def test_extension_for_format(fmt: str, ext: str) -> None:
    assert extension_for_format(fmt) == ext


# --------------------------------------------------------------------------- URLs


def test_url_name_is_stem_and_hash_of_the_normalized_url() -> None:
    item = url_item("https://Example.com/a/b/photo.large.jpg?size=2")
    expected = f"photo.large-{sha8('https://example.com/a/b/photo.large.jpg?size=2')}.png"
    assert output_relpath(item, "png") == PurePosixPath(expected)


def test_url_name_is_deterministic_and_follows_the_real_format() -> None:
    item = url_item("http://e.com/x.jpg")
    first = output_relpath(item, "jpg")
    assert output_relpath(url_item("http://e.com/x.jpg"), "jpg") == first
    assert output_relpath(item, "png") == first.with_suffix(".png")


def test_same_file_name_from_different_urls_differ() -> None:
    names = {
        output_relpath(url_item(url), "jpg")
        for url in [
            "http://a.com/img/photo.jpg",
            "http://b.com/img/photo.jpg",
            "http://a.com/other/photo.jpg",
            "http://a.com/img/photo.jpg?v=2",
            "http://a.com/img/PHOTO.jpg",
        ]
    }
    assert len(names) == 5
    assert len({str(name).lower() for name in names}) == 5  # even on a case-blind disk


def test_url_without_a_path_is_named_after_its_host() -> None:
    name = output_relpath(url_item("https://images.example.com"), "webp")
    assert str(name).startswith("images.example.com-")
    trailing = output_relpath(url_item("https://e.com/gallery/"), "jpg")
    assert str(trailing).startswith("gallery-")


def test_url_stem_is_decoded_then_sanitized() -> None:
    name = str(output_relpath(url_item("http://e.com/a/my%20photo%2F..%5Cx%00.jpg"), "jpg"))
    assert name.startswith("my photo_.._x_-")
    assert portable(name)
    # %2E%2E is "..", a dot segment: the URL is http://e.com/, named for its host
    assert str(output_relpath(url_item("http://e.com/%2E%2E"), "jpg")).startswith("e.com-")
    assert str(output_relpath(url_item("http://e.com/照片.jpg"), "jpg")).startswith("照片-")


def test_url_reserved_and_long_names() -> None:
    reserved = str(output_relpath(url_item("http://e.com/con.jpg"), "jpg"))
    assert reserved.startswith("con-")  # "con-1234abcd" is not reserved
    aux = str(output_relpath(url_item("http://e.com/AUX.x.jpg"), "jpg"))
    assert aux.startswith("_AUX.x-")
    long_item = url_item("http://e.com/" + "x" * 400 + ".jpg")
    long_name = str(output_relpath(long_item, "jpg"))
    assert portable(long_name) and len(long_name) == MAX_NAME_CHARS - 1
    assert long_name.endswith(f"-{sha8(long_item.key)}.jpg")


def test_file_given_directly_uses_the_hash_of_its_absolute_path() -> None:
    name = output_relpath(file_item("/home/me/Photos/IMG 1.JPG"), "jpg")
    assert name == PurePosixPath(f"IMG 1-{sha8('/home/me/Photos/IMG 1.JPG')}.jpg")
    other = output_relpath(file_item("/home/me/Other/IMG 1.JPG"), "jpg")
    assert other != name


def test_bad_extension_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        output_relpath(url_item("http://e.com/a"), "../x")


# --------------------------------------------------------------------------- folders


@pytest.mark.parametrize(
    ("relpath", "ext", "expected"),
    [
        ("photo.jpg", "jpg", "photo.jpg"),
        ("a/b/photo.jpeg", "jpg", "a/b/photo.jpeg"),
        ("photo.JPG", "jpg", "photo.JPG"),
        ("scan.tif", "tiff", "scan.tif"),
        ("scan.bmp", "png", "scan.bmp.png"),
        ("sub dir/été (1).webp", "webp", "sub dir/été (1).webp"),
    ],
)
def test_folder_layout_is_mirrored(relpath: str, ext: str, expected: str) -> None:
    assert output_relpath(found_item(relpath), ext) == PurePosixPath(expected)


def test_unsafe_folder_names_are_cleaned_and_hashed() -> None:
    name = output_relpath(found_item("we?ird/x*y.png"), "png")
    assert name == PurePosixPath(f"we_ird-{sha8('we?ird')}/x_y-{sha8('x*y.png')}.png")


def test_reserved_names_in_folders() -> None:
    name = output_relpath(found_item("con/NUL.png"), "png")
    folder, file = name.parts
    assert folder == f"con-{sha8('con')}"
    assert file == f"NUL-{sha8('NUL.png')}.png"


def test_double_extension_cannot_meet_an_appended_one() -> None:
    appended = output_relpath(found_item("a.bmp"), "png")
    kept = output_relpath(found_item("a.bmp.png"), "png")
    assert appended == PurePosixPath("a.bmp.png")
    assert kept != appended
    assert kept == PurePosixPath(f"a.bmp-{sha8('a.bmp.png')}.png")


def test_name_without_image_extension_cannot_meet_a_kept_one() -> None:
    bare = output_relpath(found_item("x"), "jpg")
    assert bare == PurePosixPath(f"x-{sha8('x')}.jpg")
    assert output_relpath(found_item("x.jpg"), "jpg") == PurePosixPath("x.jpg")


def test_long_names_in_folders_keep_extension_and_differ() -> None:
    one = output_relpath(found_item("x" * 150 + "1.jpg"), "jpg")
    two = output_relpath(found_item("x" * 150 + "2.jpg"), "jpg")
    assert one != two
    assert portable(one.name) and one.suffix == ".jpg"


IMAGE_NAMES = st.builds(
    "{}{}".format,
    st.one_of(st.text(max_size=120), st.text(alphabet="aA. ?*_-", max_size=6)),
    st.sampled_from([".jpg", ".JPG", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".png.jpg", ""]),
)


@settings(max_examples=500, deadline=None)
@given(st.lists(IMAGE_NAMES, min_size=2, max_size=12, unique=True), st.sampled_from(["jpg", "png"]))
def test_names_in_one_folder_never_collide(names: list[str], ext: str) -> None:
    names = [name for name in names if "/" not in name and name not in ("", ".", "..")]
    outputs = [output_relpath(found_item(f"d/{name}"), ext) for name in names]
    assert len(set(outputs)) == len(outputs)


# --------------------------------------------------------------------------- sanitizing


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("photo.jpg", "photo.jpg"),
        ("..", "image"),
        (".", "image"),
        ("", "image"),
        ("...hidden", "hidden"),
        (" x. ", "x"),
        ("a/b\\c", "a_b_c"),
        ("a\x00\x01b", "a_b"),
        ("CON", "_CON"),
        ("aux.txt", "_aux.txt"),
        ("Lpt9.png", "_Lpt9.png"),
        ("COM10.png", "COM10.png"),
        ("console.png", "console.png"),
        ("日本語 ok-1_2.png", "日本語 ok-1_2.png"),
        ("a\u202egpj.exe", "a_gpj.exe"),
    ],
)
def test_sanitize_component(name: str, expected: str) -> None:
    assert sanitize_component(name) == expected


def test_sanitize_component_caps_length_and_keeps_extension() -> None:
    name = sanitize_component("y" * 500 + ".jpeg")
    assert name.endswith(".jpeg") and len(name) == MAX_NAME_CHARS - 1
    wide = sanitize_component("字" * 100 + ".png")
    assert portable(wide) and wide.endswith(".png")


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=300))
def test_sanitized_names_are_always_portable(name: str) -> None:
    assert portable(sanitize_component(name))


# --------------------------------------------------------------------------- safe_join


def test_safe_join_inside_root(tmp_path: Path) -> None:
    assert safe_join(tmp_path, PurePosixPath("a/b.jpg")) == tmp_path / "a" / "b.jpg"


@pytest.mark.parametrize("rel", ["/etc/passwd", "../x.jpg", "a/../../x.jpg", ".", "a\\..\\b"])
def test_safe_join_refuses_escapes(tmp_path: Path, rel: str) -> None:
    with pytest.raises(UnsafePathError):
        safe_join(tmp_path, PurePosixPath(rel))


def test_safe_join_refuses_a_symlink_out_of_root(tmp_path: Path) -> None:
    root = tmp_path / "out"
    root.mkdir()
    (root / "evil").symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(UnsafePathError):
        safe_join(root, PurePosixPath("evil/x.jpg"))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200), st.sampled_from(["jpg", "png", "tiff"]))
def test_url_outputs_stay_inside_root(
    tmp_path_factory: pytest.TempPathFactory, path: str, ext: str
) -> None:
    try:
        item = url_item("http://example.com/" + path)
    except InvalidURL:
        return
    rel = output_relpath(item, ext)
    assert len(rel.parts) == 1 and portable(rel.name)
    root = tmp_path_factory.getbasetemp()
    assert safe_join(root, rel).parent == root


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.text(min_size=1, max_size=40).filter(lambda p: "/" not in p), min_size=1, max_size=4
    ),
    st.sampled_from(["jpg", "png"]),
)
def test_folder_outputs_stay_inside_root(
    tmp_path_factory: pytest.TempPathFactory, parts: list[str], ext: str
) -> None:
    item = InputItem(
        index=0,
        source="x",
        kind=InputKind.FILE,
        path=Path("/photos", *parts),
        relpath=PurePosixPath(*parts),
    )
    rel = output_relpath(item, ext)
    assert all(portable(part) for part in rel.parts)
    root = tmp_path_factory.getbasetemp()
    assert root in safe_join(root, rel).parents
