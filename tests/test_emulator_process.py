"""``zuotang emulator`` as a real process: prints its URL, serves, stops on a signal."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import httpx


def test_the_command_serves_until_sigterm(samples_dir: Path) -> None:
    command = [sys.executable, "-m", "zuotang_cli", "emulator", "--port", "0"]
    command += ["--serve", str(samples_dir), "--latency", "0", "--appcode", "demo"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
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
