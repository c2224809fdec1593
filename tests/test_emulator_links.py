"""Result links (expiry, unknown tokens) and the image host under /files/."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import EmulatorFactory, ImageMaker
from zuotang_cli.emulator import RunningEmulator

AUTH = {"Authorization": "APPCODE test-code"}


def result_url(emu: RunningEmulator, name: str = "harbour-320x240.jpg") -> str:
    response = httpx.post(
        emu.endpoint,
        data={"type": "clean", "image_url": emu.file_url(name)},
        headers=AUTH,
        timeout=10,
        trust_env=False,
    )
    url: str = response.json()["data"]["image"]
    return url


def get(url: str) -> httpx.Response:
    return httpx.get(url, timeout=10, trust_env=False)


@pytest.mark.timing
def test_a_result_link_works_until_its_ttl(emulator: EmulatorFactory) -> None:
    emu = emulator(link_ttl=0.4, link_style="plain")  # signed links expire on whole seconds
    url = result_url(emu)
    fresh = get(url)
    assert fresh.status_code == 200
    assert fresh.headers["Content-Type"] == "image/jpeg"
    assert fresh.headers["Content-Length"] == str(len(fresh.content))
    time.sleep(0.5)  # past the 0.4 s: the store's own expiry is what is tested here
    expired = get(url)
    assert expired.status_code == 403
    assert expired.headers["Content-Type"].startswith("application/xml")
    assert "<Error><Code>AccessDenied</Code><Message>Request has expired</Message>" in expired.text
    stats = emu.stats()
    assert (stats["downloads"], stats["download_attempts"]) == (1, 2)


def test_a_png_result_has_its_content_type(emulator: EmulatorFactory) -> None:
    emu = emulator()
    response = get(result_url(emu, "garden-480x640.png"))
    assert response.headers["Content-Type"] == "image/png"
    assert response.content.startswith(b"\x89PNG")


def test_unknown_result_tokens_are_404(emulator: EmulatorFactory) -> None:
    emu = emulator()
    url = result_url(emu)
    assert get(emu.url + "/results/0123456789abcdef.jpg").status_code == 404
    assert get(url.replace(".jpg", ".png")).status_code == 404
    assert get(url).status_code == 200


def test_served_files_come_back_byte_for_byte(
    emulator: EmulatorFactory, make_image: ImageMaker, tmp_path: Path
) -> None:
    path = make_image("sub dir/photo one.jpg", (30, 20), "JPEG")
    emu = emulator(serve_dir=tmp_path)
    url = emu.file_url("sub dir/photo one.jpg")
    assert url == emu.url + "/files/sub%20dir/photo%20one.jpg"
    response = get(url)
    assert response.status_code == 200
    assert response.content == path.read_bytes()
    assert emu.stats()["calls"] == 0  # the image host is not the API


def test_the_image_host_never_leaves_its_folder(emulator: EmulatorFactory, tmp_path: Path) -> None:
    served = tmp_path / "served"
    served.mkdir()
    (tmp_path / "secret.txt").write_text("secret")
    (served / "link.txt").symlink_to(tmp_path / "secret.txt")
    emu = emulator(serve_dir=served)
    for path in ("/files/../secret.txt", "/files/%2E%2E/secret.txt", "/files/link.txt"):
        response = get(emu.url + path)
        assert response.status_code == 404, path
        assert "secret" not in response.text
    assert get(emu.url + "/files/missing.jpg").status_code == 404


def test_without_a_folder_there_is_no_image_host(emulator: EmulatorFactory) -> None:
    emu = emulator(serve_dir=None)
    assert get(emu.file_url("harbour-320x240.jpg")).status_code == 404


@pytest.mark.timing
def test_download_latency_slows_result_downloads(emulator: EmulatorFactory) -> None:
    emu = emulator(cheap=True, download_latency=0.3)
    with httpx.Client() as client:
        reply = client.post(
            emu.endpoint,
            headers={"Authorization": "APPCODE t"},
            data={"image_url": emu.file_url("x.png"), "type": "clean"},
        ).json()
        started = time.monotonic()
        assert client.get(reply["data"]["image"]).status_code == 200
        assert time.monotonic() - started >= 0.3
