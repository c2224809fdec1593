"""The emulated service: scale rules, formats, state codes, uploads, return types, stats."""

from __future__ import annotations

import base64
import hashlib
import io
import socket
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from PIL import Image

from tests.conftest import EmulatorFactory, ImageMaker
from zuotang_cli.emulator import RunningEmulator
from zuotang_cli.emulator.form import DEDICATED_BODY_BYTES
from zuotang_cli.protocol import rules

AUTH = {"Authorization": "APPCODE test-code"}


def call(emu: RunningEmulator, url: str | None = None, **fields: Any) -> dict[str, Any]:
    """POST a scale call (form body); return the JSON reply after checking the envelope."""
    data = {"type": "clean", **({"image_url": url} if url else {}), **fields}
    response = httpx.post(emu.endpoint, data=data, headers=AUTH, timeout=10, trust_env=False)
    return check_envelope(response)


def upload(emu: RunningEmulator, content: bytes, **fields: str) -> dict[str, Any]:
    files = {"image_file": ("photo.bin", content, "application/octet-stream")}
    response = httpx.post(
        emu.endpoint,
        data={"type": "clean", **fields},
        files=files,
        headers=AUTH,
        timeout=10,
        trust_env=False,
    )
    return check_envelope(response)


COMMON_FIELDS = {"task_id", "state", "progress", "return_type", "type", "created_at"}
COMMON_FIELDS |= {"processed_at", "completed_at"}


def check_envelope(response: httpx.Response) -> dict[str, Any]:
    """The reply shape seen in real replies (``reply_shape="real"``, the default)."""
    assert response.status_code == 200, response.headers
    assert response.headers["X-Ca-Request-Id"]
    body: dict[str, Any] = response.json()
    data = body["data"]
    assert set(body) == {"status", "data"}  # no "message", success or not
    assert body["status"] == 200
    assert str(uuid.UUID(data["task_id"])) == data["task_id"]  # a dashed UUID
    assert data["type"] in ("clean", "face")
    assert isinstance(data["created_at"], int)
    assert data["created_at"] <= data["processed_at"] <= data["completed_at"]
    if data["state"] == 1:
        assert set(data) == COMMON_FIELDS | {"image", "image_width", "image_height"}
        assert data["progress"] == 100 and data["image"]
    else:
        assert set(data) == COMMON_FIELDS | {"state_detail"}
        assert data["progress"] == 0 and data["state_detail"]
    return body


def reason(body: dict[str, Any]) -> str:
    detail: str = body["data"]["state_detail"]
    return detail


def fetch_result(data: dict[str, Any]) -> Image.Image:
    if data["return_type"] == 2:
        content = base64.b64decode(data["image"], validate=True)
    else:
        response = httpx.get(data["image"], timeout=10, trust_env=False)
        assert response.status_code == 200
        assert response.headers["Content-Length"] == str(len(response.content))
        content = response.content
    image = Image.open(io.BytesIO(content))
    image.load()
    return image


EXPECTED_FACTORS: dict[int | None, dict[int, int]] = {
    None: {10: 1, 500: 4, 501: 2, 1000: 2, 1001: 1, 4096: 1},
    1: {10: 1, 500: 1, 501: 1, 1000: 1, 1001: 1, 4096: 1},
    2: {10: 2, 500: 2, 501: 2, 1000: 2, 1001: 1, 4096: 1},
    4: {10: 4, 500: 4, 501: 1, 1000: 1, 1001: 1, 4096: 1},
}


def test_scale_rule_table_at_its_boundaries(
    emulator: EmulatorFactory, make_image: ImageMaker, tmp_path: Path
) -> None:
    for long_side in (10, 500, 501, 1000, 1001, 4096):
        make_image(f"w{long_side}.png", (long_side, 10))
    make_image("tall501.png", (10, 501))
    emu = emulator(serve_dir=tmp_path, qps=1000)
    for requested, table in EXPECTED_FACTORS.items():
        extra = {"scale_factor": str(requested)} if requested else {}
        for long_side, factor in table.items():
            data = call(emu, emu.file_url(f"w{long_side}.png"), **extra)["data"]
            assert fetch_result(data).size == (long_side * factor, 10 * factor), (requested, data)
        tall = call(emu, emu.file_url("tall501.png"), **extra)["data"]
        assert fetch_result(tall).size == (10 * table[501], 501 * table[501])


def test_an_empty_scale_factor_means_auto(emulator: EmulatorFactory) -> None:
    emu = emulator()
    data = call(emu, emu.file_url("harbour-320x240.jpg"), scale_factor="")["data"]
    assert fetch_result(data).size == (1280, 960)


@pytest.mark.parametrize(
    ("name", "ext", "size"),
    [
        ("harbour-320x240.jpg", "jpg", (1280, 960)),
        ("garden-480x640.png", "png", (960, 1280)),
        ("old-photo-256x192.bmp", "png", (1024, 768)),
        ("scan-400x300.tiff", "png", (1600, 1200)),
        ("street-800x600.webp", "png", (1600, 1200)),
        ("valley-1200x800.jpg", "jpg", (1200, 800)),
    ],
)
def test_every_supported_format_is_enhanced(
    emulator: EmulatorFactory, name: str, ext: str, size: tuple[int, int]
) -> None:
    emu = emulator()
    data = call(emu, emu.file_url(name))["data"]
    assert data["image"].startswith(emu.url + "/results/")
    assert urlsplit(data["image"]).path.endswith("." + ext)
    result = fetch_result(data)
    assert result.format == ("JPEG" if ext == "jpg" else "PNG")
    assert result.size == size


def test_face_and_clean_both_give_the_right_size(emulator: EmulatorFactory) -> None:
    emu = emulator()
    url = emu.file_url("portrait-600x900.jpg")
    clean = fetch_result(call(emu, url, type="clean")["data"])
    face = fetch_result(call(emu, url, type="face")["data"])
    assert clean.size == face.size == (1200, 1800)
    assert clean.tobytes() != face.tobytes()


def test_the_result_link_follows_the_host_header(emulator: EmulatorFactory) -> None:
    emu = emulator()
    local = emu.endpoint.replace("127.0.0.1", "localhost")
    response = httpx.post(
        local,
        data={"type": "clean", "image_url": emu.file_url("harbour-320x240.jpg")},
        headers=AUTH,
        timeout=10,
        trust_env=False,
    )
    assert response.json()["data"]["image"].startswith(emu.url.replace("127.0.0.1", "localhost"))


def test_return_type_2_gives_base64(emulator: EmulatorFactory) -> None:
    emu = emulator(return_type=2)
    data = call(emu, emu.file_url("old-photo-256x192.bmp"))["data"]
    assert data["return_type"] == 2
    assert fetch_result(data).size == (1024, 768)
    assert emu.stats()["download_attempts"] == 0


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:1/refused.jpg",
        "FILES/missing.jpg",
        "FILES/",
        "http://999.1.1.1/bad-address.jpg",
        "http://127.0.0.1:99999/bad-port.jpg",
    ],
    ids=["refused", "404", "directory", "bad-address", "bad-port"],
)
def test_unreachable_image_url_is_state_minus_3(emulator: EmulatorFactory, url: str) -> None:
    emu = emulator()
    body = call(emu, url.replace("FILES/", emu.file_url("")))
    assert body["data"]["state"] == -3
    assert "download failed" in reason(body)
    stats = emu.stats()
    assert stats["billed"] == stats["billed_failures"] == 1  # an HTTP 200: billed (every-200)


@pytest.mark.timing
def test_a_silent_image_host_is_state_minus_3(emulator: EmulatorFactory) -> None:
    emu = emulator(fetch_timeout=0.3)
    with socket.create_server(("127.0.0.1", 0)) as silent:  # connects, never answers
        port = silent.getsockname()[1]
        started = time.monotonic()
        body = call(emu, f"http://127.0.0.1:{port}/photo.jpg")
        assert time.monotonic() - started < 2
    assert body["data"]["state"] == -3
    assert "timed out" in reason(body) or "Timeout" in reason(body)


def test_an_oversized_image_url_is_state_minus_5(emulator: EmulatorFactory, tmp_path: Path) -> None:
    (tmp_path / "big.png").write_bytes(b"\0" * (rules.MAX_FILE_BYTES + 1))
    (tmp_path / "limit.png").write_bytes(b"\0" * rules.MAX_FILE_BYTES)
    emu = emulator(serve_dir=tmp_path)
    assert call(emu, emu.file_url("big.png"))["data"]["state"] == -5
    assert call(emu, emu.file_url("limit.png"))["data"]["state"] == -7  # size fine, not an image


def test_an_oversized_upload_is_state_minus_5(emulator: EmulatorFactory) -> None:
    emu = emulator(body_limit=DEDICATED_BODY_BYTES)  # 8 MiB serverless gateways: 413 first
    assert upload(emu, b"\0" * (rules.MAX_FILE_BYTES + 1))["data"]["state"] == -5


@pytest.mark.parametrize(
    ("name", "size", "fmt"),
    [
        ("static.gif", (40, 30), "GIF"),
        ("too-long.png", (4097, 10), "PNG"),
        ("too-small.png", (9, 9), "PNG"),
    ],
)
def test_invalid_images_are_state_minus_7(
    emulator: EmulatorFactory,
    make_image: ImageMaker,
    tmp_path: Path,
    name: str,
    size: tuple[int, int],
    fmt: str,
) -> None:
    make_image(name, size, fmt)
    emu = emulator(serve_dir=tmp_path)
    body = call(emu, emu.file_url(name))
    assert body["data"]["state"] == -7
    assert "invalid image" in reason(body)


def test_animated_gif_and_garbage_are_state_minus_7(
    emulator: EmulatorFactory, tmp_path: Path
) -> None:
    frames = [Image.new("RGB", (40, 30), color) for color in ("red", "blue")]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    (tmp_path / "notes.jpg").write_text("not an image")
    png = io.BytesIO()
    Image.new("RGB", (64, 64), "green").save(png, "PNG")
    (tmp_path / "cut.png").write_bytes(png.getvalue()[:60])
    emu = emulator(serve_dir=tmp_path, qps=100)
    for name in ("anim.gif", "notes.jpg", "cut.png"):
        assert call(emu, emu.file_url(name))["data"]["state"] == -7, name


@pytest.mark.timing
def test_processing_over_the_service_timeout_is_state_minus_8(emulator: EmulatorFactory) -> None:
    emu = emulator(latency=(0.6, 0.6), service_timeout=0.2)
    started = time.monotonic()
    body = call(emu, emu.file_url("harbour-320x240.jpg"))
    elapsed = time.monotonic() - started
    assert body["data"]["state"] == -8
    assert "timed out" in reason(body)
    assert 0.18 < elapsed < 0.5
    assert emu.stats()["billed_failures"] == 1


@pytest.mark.timing
def test_latency_delays_the_reply(emulator: EmulatorFactory) -> None:
    emu = emulator(latency=(0.3, 0.4))
    started = time.monotonic()
    assert call(emu, emu.file_url("harbour-320x240.jpg"))["data"]["state"] == 1
    assert 0.3 <= time.monotonic() - started < 1.0


def test_multipart_upload_is_billed_by_its_sha256(
    emulator: EmulatorFactory, samples_dir: Path
) -> None:
    emu = emulator()
    content = (samples_dir / "garden-480x640.png").read_bytes()
    data = upload(emu, content, scale_factor="1")["data"]
    assert fetch_result(data).size == (480, 640)
    key = "sha256:" + hashlib.sha256(content).hexdigest()
    assert emu.stats()["billed_by_input"] == {key: 1}


def test_multipart_with_an_image_url_field_works(emulator: EmulatorFactory) -> None:
    emu = emulator()
    url = emu.file_url("harbour-320x240.jpg")
    response = httpx.post(
        emu.endpoint,
        files={"type": (None, "clean"), "image_url": (None, url)},
        headers=AUTH,
        timeout=10,
        trust_env=False,
    )
    assert check_envelope(response)["data"]["state"] == 1


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"image_file": (None, "just text")}, "image_file must be a file part"),
        ({"type": ("t.txt", b"clean", "text/plain")}, "type must be a text field"),
        ({"image_file": ("a.png", b"x"), "image_url": (None, "URL")}, "not both"),
    ],
)
def test_bad_multipart_bodies_are_400(
    emulator: EmulatorFactory, files: dict[str, Any], message: str
) -> None:
    emu = emulator()
    files = {"type": (None, "clean"), **files}
    if "image_url" in files:
        files["image_url"] = (None, emu.file_url("harbour-320x240.jpg"))
    response = httpx.post(emu.endpoint, files=files, headers=AUTH, timeout=10, trust_env=False)
    assert response.status_code == 400
    assert message in response.json()["message"]


def test_stats_count_calls_states_and_billing(emulator: EmulatorFactory) -> None:
    emu = emulator(qps=100)
    harbour, garden = emu.file_url("harbour-320x240.jpg"), emu.file_url("garden-480x640.png")
    for url in (harbour, harbour, garden, emu.file_url("missing.png")):
        call(emu, url)
    fetch_result(call(emu, garden)["data"])
    stats = emu.stats()
    assert stats == httpx.get(emu.url + "/__emulator__/stats", trust_env=False).json()
    assert stats["calls"] == 5
    assert stats["by_status"] == {"200": 5}
    assert stats["by_state"] == {"1": 4, "-3": 1}
    assert stats["billing"] == "every-200"
    assert stats["billed"] == 5 and stats["billed_failures"] == 1  # the -3 too: an HTTP 200
    assert stats["billed_by_input"] == {harbour: 2, garden: 2, emu.file_url("missing.png"): 1}
    assert (stats["polls"], stats["sync_requested"], stats["breaker_refused"]) == (0, 0, 0)
    assert (stats["downloads"], stats["download_attempts"]) == (1, 1)
    assert len(stats["arrivals"]) == 5 and stats["arrivals"] == sorted(stats["arrivals"])
    assert stats["accepted_arrivals"] == stats["arrivals"]
    assert stats["in_flight"] == 0 and stats["max_in_flight"] == 1
    assert stats["throttled"] == 0 and stats["faults"] == {}


@pytest.mark.timing
def test_cheap_mode_skips_fetching_but_not_the_rules(emulator: EmulatorFactory) -> None:
    emu = emulator(cheap=True, quota=2, latency=(0.2, 0.2), qps=100)
    url = "http://image-host.invalid/never-fetched.jpg"
    started = time.monotonic()
    data = call(emu, url)["data"]
    assert time.monotonic() - started >= 0.2
    assert fetch_result(data).size == (8, 8)
    assert upload(emu, b"anything")["data"]["state"] == 1
    refused = httpx.post(
        emu.endpoint, data={"type": "clean", "image_url": url}, headers=AUTH, trust_env=False
    )
    assert refused.status_code == 403
    stats = emu.stats()
    assert stats["billed_by_input"][url] == 1 and stats["billed"] == 2
