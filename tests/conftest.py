"""Fixtures shared by the test suites: sample images, a throwaway emulator, image files."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from zuotang_cli.emulator import EmulatorConfig, RunningEmulator, running_emulator

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
