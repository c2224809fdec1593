"""Unit tests of zuotang_cli.store.naming: deterministic, collision-free, portable output names.

The default rule names a result after its source (``output_relpath``); two inputs that
land on one name are told apart by the journal's reservation (tested here too).  The
rule of output directories made before it (``legacy_relpath``) keeps its own tests."""

from __future__ import annotations

import hashlib
from pathlib import Path, PurePosixPath

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zuotang_cli.inputs.reader import InvalidURL, normalize_url
from zuotang_cli.models import InputItem, InputKind
from zuotang_cli.store.journal import Journal
from zuotang_cli.store.naming import (
    MAX_NAME_BYTES,
    MAX_NAME_CHARS,
    Fields,
    Template,
    TemplateError,
    UnsafePathError,
    extension_for_format,
    legacy_relpath,
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
    assert legacy_relpath(item, "png") == PurePosixPath(expected)


def test_url_name_is_deterministic_and_follows_the_real_format() -> None:
    item = url_item("http://e.com/x.jpg")
    first = legacy_relpath(item, "jpg")
    assert legacy_relpath(url_item("http://e.com/x.jpg"), "jpg") == first
    assert legacy_relpath(item, "png") == first.with_suffix(".png")


def test_same_file_name_from_different_urls_differ() -> None:
    names = {
        legacy_relpath(url_item(url), "jpg")
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
    name = legacy_relpath(url_item("https://images.example.com"), "webp")
    assert str(name).startswith("images.example.com-")
    trailing = legacy_relpath(url_item("https://e.com/gallery/"), "jpg")
    assert str(trailing).startswith("gallery-")


def test_url_stem_is_decoded_then_sanitized() -> None:
    name = str(legacy_relpath(url_item("http://e.com/a/my%20photo%2F..%5Cx%00.jpg"), "jpg"))
    assert name.startswith("my photo_.._x_-")
    assert portable(name)
    # %2E%2E is "..", a dot segment: the URL is http://e.com/, named for its host
    assert str(legacy_relpath(url_item("http://e.com/%2E%2E"), "jpg")).startswith("e.com-")
    assert str(legacy_relpath(url_item("http://e.com/照片.jpg"), "jpg")).startswith("照片-")


def test_url_reserved_and_long_names() -> None:
    reserved = str(legacy_relpath(url_item("http://e.com/con.jpg"), "jpg"))
    assert reserved.startswith("con-")  # "con-1234abcd" is not reserved
    aux = str(legacy_relpath(url_item("http://e.com/AUX.x.jpg"), "jpg"))
    assert aux.startswith("_AUX.x-")
    long_item = url_item("http://e.com/" + "x" * 400 + ".jpg")
    long_name = str(legacy_relpath(long_item, "jpg"))
    assert portable(long_name) and len(long_name) == MAX_NAME_CHARS - 1
    assert long_name.endswith(f"-{sha8(long_item.key)}.jpg")


def test_file_given_directly_uses_the_hash_of_its_absolute_path() -> None:
    name = legacy_relpath(file_item("/home/me/Photos/IMG 1.JPG"), "jpg")
    assert name == PurePosixPath(f"IMG 1-{sha8('/home/me/Photos/IMG 1.JPG')}.jpg")
    other = legacy_relpath(file_item("/home/me/Other/IMG 1.JPG"), "jpg")
    assert other != name


def test_bad_extension_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        legacy_relpath(url_item("http://e.com/a"), "../x")


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
    assert legacy_relpath(found_item(relpath), ext) == PurePosixPath(expected)


def test_unsafe_folder_names_are_cleaned_and_hashed() -> None:
    name = legacy_relpath(found_item("we?ird/x*y.png"), "png")
    assert name == PurePosixPath(f"we_ird-{sha8('we?ird')}/x_y-{sha8('x*y.png')}.png")


def test_reserved_names_in_folders() -> None:
    name = legacy_relpath(found_item("con/NUL.png"), "png")
    folder, file = name.parts
    assert folder == f"con-{sha8('con')}"
    assert file == f"NUL-{sha8('NUL.png')}.png"


def test_double_extension_cannot_meet_an_appended_one() -> None:
    appended = legacy_relpath(found_item("a.bmp"), "png")
    kept = legacy_relpath(found_item("a.bmp.png"), "png")
    assert appended == PurePosixPath("a.bmp.png")
    assert kept != appended
    assert kept == PurePosixPath(f"a.bmp-{sha8('a.bmp.png')}.png")


def test_name_without_image_extension_cannot_meet_a_kept_one() -> None:
    bare = legacy_relpath(found_item("x"), "jpg")
    assert bare == PurePosixPath(f"x-{sha8('x')}.jpg")
    assert legacy_relpath(found_item("x.jpg"), "jpg") == PurePosixPath("x.jpg")


def test_long_names_in_folders_keep_extension_and_differ() -> None:
    one = legacy_relpath(found_item("x" * 150 + "1.jpg"), "jpg")
    two = legacy_relpath(found_item("x" * 150 + "2.jpg"), "jpg")
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
    outputs = [legacy_relpath(found_item(f"d/{name}"), ext) for name in names]
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
    rel = legacy_relpath(item, ext)
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
    rel = legacy_relpath(item, ext)
    assert all(portable(part) for part in rel.parts)
    root = tmp_path_factory.getbasetemp()
    assert root in safe_join(root, rel).parents


# --------------------------------------------------------------------------- the source's own name


@pytest.mark.parametrize(
    ("url", "ext", "expected"),
    [
        ("https://cdn.example.com/p/IMG_0042.jpg", "jpg", "IMG_0042.jpg"),
        ("https://cdn.example.com/p/IMG_0042.JPG?w=1", "jpg", "IMG_0042.JPG"),
        ("https://cdn.example.com/p/IMG_0042.jpeg", "jpg", "IMG_0042.jpeg"),
        ("https://cdn.example.com/p/IMG_0042.jpg", "png", "IMG_0042.png"),
        ("https://cdn.example.com/p/x.webp", "png", "x.png"),
        ("https://cdn.example.com/p/photo.large.jpg", "png", "photo.large.png"),
        ("https://cdn.example.com/p/noext", "png", "noext.png"),
        ("https://images.example.com", "webp", "images.example.com.webp"),
        ("https://e.com/gallery/", "jpg", "gallery.jpg"),
        ("http://e.com/a/my%20photo%2F..%5Cx%00.jpg", "jpg", "my photo_.._x_.jpg"),
        ("http://e.com/照片.jpg", "jpg", "照片.jpg"),
        ("http://e.com/con.jpg", "jpg", "_con.jpg"),
    ],
)
def test_url_result_keeps_the_source_name(url: str, ext: str, expected: str) -> None:
    assert output_relpath(url_item(url), ext) == PurePosixPath(expected)


def test_file_given_directly_keeps_its_name() -> None:
    assert output_relpath(file_item("/home/me/Photos/IMG 1.JPG"), "jpg") == PurePosixPath(
        "IMG 1.JPG"
    )
    assert output_relpath(file_item("/home/me/scan.tif"), "png") == PurePosixPath("scan.png")


@pytest.mark.parametrize(
    ("relpath", "ext", "expected"),
    [
        ("photo.jpg", "jpg", "photo.jpg"),
        ("a/b/photo.jpeg", "jpg", "a/b/photo.jpeg"),
        ("x.webp", "png", "x.png"),
        ("scan.bmp", "png", "scan.png"),
        ("sub dir/été (1).webp", "webp", "sub dir/été (1).webp"),
        ("we?ird/x*y.png", "png", f"we_ird-{sha8('we?ird')}/x_y.png"),
    ],
)
def test_folder_result_keeps_the_layout_and_names(relpath: str, ext: str, expected: str) -> None:
    assert output_relpath(found_item(relpath), ext) == PurePosixPath(expected)


def test_names_are_deterministic() -> None:
    url = "https://e.com/a/IMG_1.jpg"
    assert output_relpath(url_item(url), "jpg") == output_relpath(url_item(url), "jpg")


def test_long_source_names_are_cut_and_keep_their_extension() -> None:
    name = output_relpath(url_item("http://e.com/" + "x" * 400 + ".jpg"), "jpg")
    assert portable(name.name) and name.suffix == ".jpg"


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200), st.sampled_from(["jpg", "png", "webp"]))
def test_default_url_names_are_portable_and_stay_inside_root(
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
def test_default_folder_names_stay_inside_root(
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


@settings(max_examples=200, deadline=None)
@given(st.lists(IMAGE_NAMES, min_size=2, max_size=12, unique=True), st.sampled_from(["jpg", "png"]))
def test_names_reserved_in_one_folder_never_collide(names: list[str], ext: str) -> None:
    """Clean names may meet (``x.webp`` and ``x.png`` both want ``x.png``): the journal
    gives every input a name of its own, whatever the case on a case-blind disk."""
    names = [name for name in names if "/" not in name and name not in ("", ".", "..")]
    journal = Journal.snapshot(Path("/nonexistent-zuotang-test"))
    try:
        claimed = [
            journal.names.claim(
                f"clean\0auto\0{name}", output_relpath(found_item(f"d/{name}"), ext)
            )
            for name in names
        ]
    finally:
        journal.close()
    assert len({str(rel).casefold() for rel in claimed}) == len(claimed)
    assert all(portable(part) for rel in claimed for part in rel.parts)


def test_a_collision_gets_a_short_suffix_and_says_why(tmp_path: Path) -> None:
    journal = Journal.snapshot(tmp_path)
    try:
        first = journal.names.reserve("clean\0auto\0https://a.com/x.jpg", PurePosixPath("x.jpg"))
        other = journal.names.reserve("clean\0auto\0https://b.com/x.jpg", PurePosixPath("x.jpg"))
        face = journal.names.reserve("face\0auto\0https://a.com/x.jpg", PurePosixPath("x.jpg"))
        (tmp_path / "y.jpg").write_bytes(b"mine")
        foreign = journal.names.reserve(
            "clean\0auto\0https://a.com/y.jpg",
            PurePosixPath("y.jpg"),
            lambda rel: (tmp_path / rel).exists(),
        )
        again = journal.names.reserve("clean\0auto\0https://b.com/x.jpg", PurePosixPath("x.jpg"))
    finally:
        journal.close()
    assert first == (PurePosixPath("x.jpg"), "")
    assert other[0].stem.startswith("x-") and len(other[0].stem) == len("x-") + 8
    assert other[1] == "x.jpg is another input's result"
    assert face[1] == "x.jpg is this source's result with --type clean --scale auto"
    assert foreign[0] != PurePosixPath("y.jpg")
    assert foreign[1] == "y.jpg is a file zuotang did not write"
    assert again == (other[0], "x.jpg is another input's result")  # deterministic


# --------------------------------------------------------------------------- --name TEMPLATE


def test_template_placeholders() -> None:
    item = url_item("https://Cdn.Example.com/2024/trip/IMG_0042.jpg?w=1")
    fields = Fields(type="face", scale="2", factor="2")
    render = Template("{host}/{path}/{stem}-{type}-s{scale}-x{factor}.{ext}").render
    assert render(item, "png", fields) == PurePosixPath(
        "cdn.example.com/2024/trip/IMG_0042-face-s2-x2.png"
    )
    assert Template("{stem}-{hash}.{ext}").render(item, "jpg", fields) == PurePosixPath(
        f"IMG_0042-{sha8(item.key)}.jpg"
    )
    # no {ext}: the result's extension is added, the name never lies about the format
    assert Template("{stem}_{type}").render(item, "png", fields) == PurePosixPath(
        "IMG_0042_face.png"
    )
    folder = found_item("a/b/x.webp")
    assert Template("{path}/{stem}.{ext}").render(folder, "png", Fields()) == PurePosixPath(
        "a/b/x.png"
    )
    # an unknown factor is the scale asked for
    assert Template("{stem}-x{factor}").render(folder, "png", Fields()) == PurePosixPath(
        "x-xauto.png"
    )


@pytest.mark.parametrize(
    "text",
    [
        "../{stem}",
        "{stem}/../../x",
        "/etc/{stem}",
        "C:/{stem}",
        "a\\..\\{stem}",
        "{nope}",
        "{stem!r}",
        "{stem:>9}",
        "plain",
        "{",
        "./{stem}",
    ],
)
def test_templates_that_could_escape_or_do_not_parse_are_refused(text: str) -> None:
    with pytest.raises(TemplateError):
        Template(text)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=120), st.text(max_size=40))
def test_template_values_never_leave_the_root(
    tmp_path_factory: pytest.TempPathFactory, path: str, stem: str
) -> None:
    try:
        item = url_item(f"http://example.com/{path}/{stem}.jpg")
    except InvalidURL:
        return
    rel = Template("{host}/{path}/{stem}-{type}.{ext}").render(item, "jpg", Fields())
    assert all(portable(part) for part in rel.parts)
    root = tmp_path_factory.getbasetemp()
    assert root in safe_join(root, rel).parents
