"""``zuotang emulator`` as a real process: prints its URL, serves, stops on a signal."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx

from tests.helpers import start


def test_the_command_serves_until_sigterm(samples_dir: Path) -> None:
    proc = start(
        *("emulator", "--port", "0", "--serve", str(samples_dir)),
        *("--latency", "0", "--appcode", "demo"),
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        response = httpx.post(
            url + "/tasks/visual/scale",
            data={"type": "clean", "image_url": url + "/files/harbour-320x240.jpg"},
            headers={"Authorization": "APPCODE demo"},
            timeout=10,
            trust_env=False,
        )
        assert response.json()["data"]["state"] == 1
        stats = httpx.get(url + "/__emulator__/stats", timeout=10, trust_env=False).json()
        assert stats["billed"] == 1
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr
    assert stdout == ""  # the URL line was the only output
    assert "Traceback" not in stderr
