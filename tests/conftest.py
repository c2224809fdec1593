"""Fixtures shared by the test suites: sample images, a throwaway emulator, image files.

The helpers every module shares (the CLI in a subprocess, URL lists, report rows, waiting
for a condition) are plain functions in tests/helpers.py, imported from there.
"""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Generator, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from zuotang_cli.app.settings import CONFIG_ENV_VAR, ENV_VARS
from zuotang_cli.emulator import EmulatorConfig, RunningEmulator, running_emulator

pytest.register_assert_rewrite("tests.helpers")  # the test modules import it after this

REPO_ROOT = Path(__file__).resolve().parent.parent

EmulatorFactory = Callable[..., RunningEmulator]
ImageMaker = Callable[..., Path]
TIMING_GROUP = "timing"
"""The xdist group of the tests marked ``timing``: one worker runs them one after another."""
UNGROUPED = pytest.StashKey[str]()


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> Generator[None, None, None]:
    """Tests that assert on elapsed time, on the spacing of calls or on signal timing
    (marked ``timing``) run one after another in one xdist group under ``--dist
    loadgroup``: two of them side by side would each slow the other past its bounds.

    xdist groups by renaming each test ``...@group``; where that silently does nothing
    (pytest 9.2 with xdist 3.8: pytest-dev/pytest-xdist#1386) the timing tests fail,
    saying so, instead of running side by side."""
    timing = [item for item in items if item.get_closest_marker("timing") is not None]
    for item in timing:
        item.add_marker(pytest.mark.xdist_group(TIMING_GROUP))
    yield  # xdist's own hook names the grouped tests
    # On a worker, xdist keeps "--dist loadgroup" as config.option.loadgroup.
    if hasattr(config, "workerinput") and getattr(config.option, "loadgroup", False):
        for item in timing:
            if not item.nodeid.endswith(f"@{TIMING_GROUP}"):
                item.stash[UNGROUPED] = (
                    "pytest-xdist did not put this timing test in its group: this pytest "
                    "and pytest-xdist do not work together for --dist loadgroup"
                )


def pytest_runtest_setup(item: pytest.Item) -> None:
    ungrouped = item.stash.get(UNGROUPED, None)
    if ungrouped is not None:
        pytest.fail(ungrouped, pytrace=False)


@pytest.fixture(autouse=True)
def isolated_config(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """No test (nor the zuotang processes it starts) reads the real user's config file."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv(CONFIG_ENV_VAR, str(home / "zuotang" / "config.toml"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    for name in ENV_VARS.values():  # every setting a run reads from the environment
        monkeypatch.delenv(name, raising=False)
    # English whatever the locale of whoever runs the tests (docs/i18n.md); a test that
    # wants another language says so (tests/test_i18n.py).
    monkeypatch.setenv(ENV_VARS["lang"], "en")
    return home


@pytest.fixture
def samples_dir() -> Path:
    """The repository's ``samples/`` folder of real images."""
    return REPO_ROOT / "samples"


class BackgroundStops:
    """Emulators of finished tests, stopped in the background: a stop waits some 0.2 s
    for uvicorn to shut down, which over the third of the tests that start an emulator
    is about 50 s of a run.  Each stop must have worked by the end of the session."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="emulator-stop")
        self._stops: list[Future[None]] = []

    def stop(self, close: Callable[[], None]) -> None:
        self._stops.append(self._pool.submit(close))

    def wait(self) -> None:
        try:
            for stop in self._stops:
                stop.result(timeout=30)
        finally:
            self._pool.shutdown()


@pytest.fixture(scope="session")
def emulator_stops() -> Iterator[BackgroundStops]:
    stops = BackgroundStops()
    yield stops
    stops.wait()


@pytest.fixture
def emulator(samples_dir: Path, emulator_stops: BackgroundStops) -> Iterator[EmulatorFactory]:
    """``emulator(**config_overrides)`` starts a fresh emulator, stopped once the test is
    over (in the background: see ``emulator_stops``).

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
        emulator_stops.stop(stack.pop_all().close)


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


S3_KEY_ID = "AKIAZUOTANGTEST00001"
S3_SECRET = "s3-SECRET-zuotang-test-key-4242"
"""The tests' bucket credentials: recognizable, so a leak of the secret is easy to find."""


@dataclass
class S3Server:
    """A real S3-compatible server (moto's server mode) in a process of its own on
    loopback; ``env`` points a zuotang run at it with the tests' credentials."""

    endpoint: str
    process: subprocess.Popen[bytes]
    _names = itertools.count(1)

    @property
    def env(self) -> dict[str, str | None]:
        return {
            "AWS_ACCESS_KEY_ID": S3_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": S3_SECRET,
            "AWS_REGION": "us-east-1",
            "AWS_ENDPOINT_URL_S3": self.endpoint,
            "AWS_CONFIG_FILE": "/dev/null",
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        }

    def client(self) -> Any:
        """botocore's own synchronous client, to look at the bucket from the test."""
        import botocore.session

        return botocore.session.get_session().create_client(
            "s3",
            region_name="us-east-1",
            endpoint_url=self.endpoint,
            aws_access_key_id=S3_KEY_ID,
            aws_secret_access_key=S3_SECRET,
        )

    def new_bucket(self) -> str:
        name = f"photos-{next(self._names)}-{time.monotonic_ns() % 10**9}"
        self.client().create_bucket(Bucket=name)
        return name

    def objects(self, bucket: str) -> list[str]:
        listing = self.client().list_objects_v2(Bucket=bucket)
        return sorted(item["Key"] for item in listing.get("Contents", []))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_s3_server(env: Mapping[str, str] | None = None) -> S3Server:
    """moto's server on a free loopback port, started and answering."""
    from tests.helpers import wait_until  # here: after its assertions are set to be rewritten

    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )
    endpoint = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        if process.poll() is not None:
            raise RuntimeError("moto's S3 server ended at its start")
        try:
            httpx.get(f"{endpoint}/moto-api/", timeout=1.0)
        except httpx.TransportError:
            return False
        return True

    try:
        wait_until(answers, timeout=30, interval=0.1)  # its start, on a busy machine
    except BaseException:
        process.kill()
        raise
    return S3Server(endpoint, process)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """One S3-compatible server for the session (each test makes buckets of its own)."""
    server = start_s3_server()
    yield server
    server.process.terminate()
    server.process.wait(timeout=10)
