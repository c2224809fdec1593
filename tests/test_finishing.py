"""Unit tests of zuotang_cli.store.finishing on real images built with Pillow: metadata
carried over (JPEG pixels untouched), upright under both behaviours of the service,
formats converted (CMYK, 16-bit, WebP with ICC, XMP)."""

from __future__ import annotations

import functools
import io

import pytest
from PIL import Image, ImageCms, ImageOps

from zuotang_cli.emulator.imaging import render
from zuotang_cli.store import finishing
from zuotang_cli.store.finishing import Finish, finish, read_metadata, scan_data

ORIENTATION, GPS, EXIF_IFD, MAKE, DATE_TAKEN = 0x0112, 0x8825, 0x8769, 0x010F, 0x9003
XMP = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/'
    b'22-rdf-syntax-ns#"><rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/" '
    b'dc:rights="(c) Ana"/></rdf:RDF></x:xmpmeta>'
)


@functools.cache
def srgb() -> bytes:
    """One sRGB profile (its header holds the time it was made: made once)."""
    profile: bytes = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    return profile


def marked(size: tuple[int, int]) -> Image.Image:
    """A grey image with a red block in its top-left corner (as stored)."""
    image = Image.new("RGB", size, (128, 128, 128))
    image.paste((255, 0, 0), (0, 0, size[0] // 4, size[1] // 4))
    return image


def phone_exif(orientation: int, *, gps: bool = True) -> bytes:
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    exif[MAKE] = "Phone Maker"
    exif.get_ifd(EXIF_IFD)[DATE_TAKEN] = "2024:05:01 09:30:00"
    if gps:
        exif.get_ifd(GPS)[1] = "N"
        exif.get_ifd(GPS)[2] = (48.0, 51.0, 24.0)
    data: bytes = exif.tobytes()
    return data


def jpeg(image: Image.Image, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90, **options)
    return buffer.getvalue()


def opened(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def displayed_top_left_is_red(data: bytes) -> bool:
    shown = ImageOps.exif_transpose(opened(data).convert("RGB")) or opened(data)
    r, g, b = shown.convert("RGB").getpixel((2, 2))  # type: ignore[misc]
    return bool(r > 200 and g < 80 and b < 80)


@pytest.mark.parametrize("orientation", [6, 8])
@pytest.mark.parametrize("service", ["ignore", "apply"])
def test_result_displays_as_the_source_whatever_the_service_did(
    orientation: int, service: str
) -> None:
    # stored sideways: what displays upright is the stored image turned back
    upright = marked((80, 40))
    turn = {6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}[orientation]
    source = jpeg(upright.transpose(turn), exif=phone_exif(orientation), icc_profile=srgb())
    assert displayed_top_left_is_red(source)
    result = render(source, "clean", 2, upright=service == "apply").data
    finished = finish(result, read_metadata(source), Finish())
    assert displayed_top_left_is_red(finished.data)
    shown = ImageOps.exif_transpose(opened(finished.data))
    assert shown is not None and shown.size == (160, 80)  # landscape, as the source shows
    exif = opened(finished.data).getexif()
    assert exif[ORIENTATION] == (1 if service == "apply" else orientation)
    assert exif[MAKE] == "Phone Maker"
    assert exif.get_ifd(EXIF_IFD)[DATE_TAKEN] == "2024:05:01 09:30:00"
    assert scan_data(finished.data) == scan_data(result)  # pixels untouched


@pytest.mark.parametrize("orientation", [6, 8])
@pytest.mark.parametrize("service", ["ignore", "apply"])
def test_a_png_result_is_turned_upright_losslessly(orientation: int, service: str) -> None:
    upright = marked((80, 40))
    turn = {6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}[orientation]
    buffer = io.BytesIO()
    upright.transpose(turn).save(buffer, "WEBP", lossless=True, exif=phone_exif(orientation))
    source = buffer.getvalue()
    result = render(source, "clean", 2, upright=service == "apply").data  # a PNG
    finished = finish(result, read_metadata(source), Finish())
    image = opened(finished.data)
    assert image.format == "PNG" and image.size == (160, 80)
    assert image.getexif().get(ORIENTATION, 1) == 1
    assert displayed_top_left_is_red(finished.data)


def test_jpeg_metadata_is_inserted_and_the_scan_data_kept_byte_for_byte() -> None:
    source = jpeg(marked((60, 40)), exif=phone_exif(1), icc_profile=srgb(), xmp=XMP)
    result = render(source, "clean", 2).data
    assert not opened(result).info.get("exif")  # the service strips it
    finished = finish(result, read_metadata(source), Finish())
    assert scan_data(finished.data) == scan_data(result)
    # segments inserted after the JFIF header (20 bytes): every byte of the result kept
    assert result[2:4] == b"\xff\xe0" and finished.data.startswith(result[:20])
    assert finished.data.endswith(result[20:])
    image = opened(finished.data)
    assert image.info["icc_profile"] == srgb()
    assert image.info["xmp"] == XMP
    assert image.getexif().get_ifd(GPS)  # kept unless asked
    assert image.getexif().get_ifd(EXIF_IFD)[0xA002] == 120  # the result's own width
    assert finished.notes == ("EXIF, XMP, ICC carried over",)


def test_strip_gps_leaves_the_position_out() -> None:
    source = jpeg(marked((60, 40)), exif=phone_exif(1))
    result = render(source, "clean", 1).data
    finished = finish(result, read_metadata(source), Finish(strip_gps=True))
    exif = opened(finished.data).getexif()
    assert not exif.get_ifd(GPS) and exif[MAKE] == "Phone Maker"
    assert scan_data(finished.data) == scan_data(result)


def test_metadata_is_read_from_a_header_cut_short() -> None:
    """A URL's source is known by the first 64 KiB the probe's ranged GET reads."""
    big = Image.effect_noise((1200, 900), 60).convert("RGB")
    source = jpeg(big, exif=phone_exif(6), icc_profile=srgb(), xmp=XMP)
    assert len(source) > 64 * 1024
    meta = read_metadata(source[: 64 * 1024])
    assert (meta.format, meta.width, meta.height, meta.orientation) == ("jpg", 1200, 900, 6)
    assert meta.icc == srgb() and meta.xmp == XMP
    cut = read_metadata(source[:100])  # not even the whole EXIF: nothing half-read
    assert cut.exif is None and cut.icc is None


def test_cmyk_jpeg_profile_never_lands_on_an_rgb_result() -> None:
    fake_cmyk_profile = bytearray(srgb())
    fake_cmyk_profile[16:20] = b"CMYK"
    source = jpeg(
        Image.new("CMYK", (60, 40), (0, 120, 200, 10)), icc_profile=bytes(fake_cmyk_profile)
    )
    result = render(source, "clean", 2).data
    assert opened(result).mode == "RGB"  # the service gives RGB
    finished = finish(result, read_metadata(source), Finish())
    assert "icc_profile" not in opened(finished.data).info
    assert scan_data(finished.data) == scan_data(result)
    # a CMYK result keeps it; converted to PNG it is RGB without it
    cmyk_result = jpeg(Image.new("CMYK", (120, 80), (0, 120, 200, 10)))
    kept = finish(cmyk_result, read_metadata(source), Finish())
    assert opened(kept.data).info["icc_profile"] == bytes(fake_cmyk_profile)
    png = finish(cmyk_result, read_metadata(source), Finish(format="png"))
    assert png.ext == "png" and opened(png.data).mode == "RGB"
    assert "icc_profile" not in opened(png.data).info


def test_sixteen_bit_png_is_brought_to_eight_bits_not_clipped() -> None:
    deep = Image.frombytes("I;16", (40, 20), (30000).to_bytes(2, "little") * 800)
    buffer = io.BytesIO()
    deep.save(buffer, "PNG")
    source = buffer.getvalue()
    assert read_metadata(source).format == "png"
    finished = finish(source, read_metadata(source), Finish(format="jpg"))
    value = opened(finished.data).getpixel((5, 5))
    assert finished.ext == "jpg" and isinstance(value, int) and 110 <= value <= 124  # 30000/256
    result = render(source, "clean", 2).data  # the service itself takes it
    assert opened(finish(result, read_metadata(source), Finish()).data).size == (80, 40)


def test_webp_with_icc_keeps_it_as_png_and_as_webp() -> None:
    buffer = io.BytesIO()
    marked((60, 40)).save(buffer, "WEBP", quality=90, icc_profile=srgb(), exif=phone_exif(1))
    source = buffer.getvalue()
    meta = read_metadata(source)
    assert meta.icc == srgb() and (meta.width, meta.height) == (60, 40)
    result = render(source, "clean", 2).data
    as_png = finish(result, meta, Finish())
    assert as_png.ext == "png" and opened(as_png.data).info["icc_profile"] == srgb()
    same = finish(result, meta, Finish(format="same"))
    image = opened(same.data)
    assert same.ext == "webp" and image.format == "WEBP"
    assert image.info["icc_profile"] == srgb() and image.getexif()[MAKE] == "Phone Maker"


def test_jpeg_with_xmp_keeps_it_through_a_conversion_and_quality_applies() -> None:
    source = jpeg(Image.effect_noise((200, 150), 40).convert("RGB"), xmp=XMP)
    result = render(source, "clean", 2).data
    low = finish(result, read_metadata(source), Finish(format="webp", quality=10))
    high = finish(result, read_metadata(source), Finish(format="webp", quality=95))
    assert opened(low.data).info["xmp"] == XMP
    assert len(low.data) < len(high.data)
    assert "converted from jpg to webp" in low.notes


def test_a_finished_result_converted_again_keeps_its_metadata() -> None:
    source = jpeg(marked((60, 40)), exif=phone_exif(6), icc_profile=srgb())
    result = render(source, "clean", 1).data
    saved = finish(result, read_metadata(source), Finish()).data
    converted = finishing.convert(saved, "png", Finish())
    image = opened(converted.data)
    assert image.format == "PNG" and image.size == (40, 60)  # turned upright on re-encode
    assert image.getexif()[ORIENTATION] == 1 and image.info["icc_profile"] == srgb()
    assert displayed_top_left_is_red(converted.data) == displayed_top_left_is_red(saved)


def test_the_service_turning_is_decided_from_dimensions() -> None:
    meta = finishing.Metadata("jpg", 40, 80, exif=phone_exif(6))
    assert finishing.service_turned(meta, 160, 80)
    assert not finishing.service_turned(meta, 80, 160)
    square = finishing.Metadata("jpg", 50, 50, exif=phone_exif(6))
    assert not finishing.service_turned(square, 100, 100)
    flipped = finishing.Metadata("jpg", 40, 80, exif=phone_exif(3))
    assert not finishing.service_turned(flipped, 80, 160)
