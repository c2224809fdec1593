"""Fixtures shared by the test suites: sample images, a throwaway emulator, image files."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from PIL import Image

from zuotang_cli.emulator import EmulatorConfig, RunningEmulator, running_emulator
from zuotang_cli.emulator.app import STATS_PATH

REPO_ROOT = Path(__file__).resolve().parent.parent

EmulatorFactory = Callable[..., RunningEmulator]
ImageMaker = Callable[..., Path]


@pytest.fixture(autouse=True)
def isolated_config(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """No test (nor the zuotang processes it starts) reads the real user's config file."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("ZUOTANG_CONFIG", str(home / "zuotang" / "config.toml"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    for name in (
        "ZUOTANG_APPCODE",
        "ZUOTANG_ENDPOINT",
        "ZUOTANG_QPS",
        "ZUOTANG_TYPE",
        "ZUOTANG_SCALE",
        "ZUOTANG_OUTPUT_DIR",
    ):
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture
def samples_dir() -> Path:
    """The repository's ``samples/`` folder of real images."""
    return REPO_ROOT / "samples"


@pytest.fixture
def emulator(samples_dir: Path) -> Iterator[EmulatorFactory]:
    """``emulator(**config_overrides)`` starts a fresh emulator, stopped at teardown.

    Test defaults: no latency, ``samples/`` served under ``/files/``, seed 1.
    """
    with ExitStack() as stack:

        def start(**overrides: Any) -> RunningEmulator:
            options: dict[str, Any] = {
                "latency": (0.0, 0.0),
                "serve_dir": samples_dir,
                "seed": 1,
                **overrides,
            }
            return stack.enter_context(running_emulator(EmulatorConfig(**options)))

        yield start


@dataclass(frozen=True)
class EmulatorProcess:
    """``zuotang emulator`` in a process of its own, as users run it."""

    url: str

    @property
    def endpoint(self) -> str:
        return f"{self.url}/tasks/visual/scale"

    def file_url(self, path: str) -> str:
        return f"{self.url}/files/{quote(path)}"

    def stats(self) -> dict[str, Any]:
        reply = httpx.get(self.url + STATS_PATH, timeout=10, trust_env=False)
        reply.raise_for_status()
        stats: dict[str, Any] = reply.json()
        return stats


@pytest.fixture
def emulator_process(samples_dir: Path) -> Iterator[Callable[..., EmulatorProcess]]:
    """``emulator_process(*args)``: ``zuotang emulator ARGS`` serving ``samples/`` in a
    process of its own, stopped at teardown.

    For what times the gateway's clock: an emulator in the test process stamps arrivals
    late whenever another thread there holds the GIL (measured: a busy thread beside it
    made a client spaced at 1.015 s per 3 starts look like 0.987 s, a throttle)."""
    with ExitStack() as stack:
        yield lambda *args: stack.enter_context(_emulator_process(samples_dir, *args))


@contextmanager
def _emulator_process(samples_dir: Path, *args: str) -> Iterator[EmulatorProcess]:
    command = [sys.executable, "-m", "zuotang_cli", "emulator", "--port", "0", "--seed", "1"]
    command += ["--serve", str(samples_dir), *args]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://"), proc.stderr.read() if proc.stderr else url
        yield EmulatorProcess(url)
    finally:
        proc.terminate()
        try:
            proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


@pytest.fixture
def make_image(tmp_path: Path) -> ImageMaker:
    """``make_image(path, size, fmt="PNG")`` writes a small patterned image; a relative
    path is taken under ``tmp_path``. Returns the path."""

    def make(path: str | Path, size: tuple[int, int], fmt: str = "PNG") -> Path:
        target = Path(path)
        if not target.is_absolute():
            target = tmp_path / target
        target.parent.mkdir(parents=True, exist_ok=True)
        width, height = size
        image = Image.linear_gradient("L").resize((width, height)).convert("RGB")
        image.save(target, fmt)
        return target

    return make
