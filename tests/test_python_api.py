"""The Python API: what `from zuotang_cli import ...` gives programs that embed zuotang."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import zuotang_cli
from zuotang_cli import Outcome, Record, ScaleClient, Verdict, enhance
from zuotang_cli.status import ExitStatus


def test_enhance_runs_a_batch_and_returns_typed_records(tmp_path: Path, emulator: Any) -> None:
    emu = emulator(qps=50)
    urls = [emu.file_url("harbour-320x240.jpg"), emu.file_url("missing.png"), "ftp://x"]
    seen: list[Record] = []
    outcome = asyncio.run(
        enhance(
            urls,
            appcode="api-code",
            endpoint=emu.endpoint,
            output_dir=tmp_path / "out",
            scale=2,
            qps=50,
            on_record=seen.append,
        )
    )
    assert outcome.exit_status is ExitStatus.SOME_FAILED
    assert outcome.records == seen
    by_outcome = {r.outcome: r for r in outcome.records}
    done = by_outcome[Outcome.DONE]
    assert (done.width, done.height) == (640, 480)
    assert done.output is not None and Path(done.output).is_file()
    assert by_outcome[Outcome.FAILED].state == -3
    assert by_outcome[Outcome.INVALID].input == "ftp://x"
    again = asyncio.run(
        enhance(
            urls[:1],
            appcode="api-code",
            endpoint=emu.endpoint,
            output_dir=tmp_path / "out",
            scale=2,
        )
    )
    assert [r.outcome for r in again.records] == [Outcome.SKIPPED]
    assert emu.stats()["billed"] == 2  # the done one and the -3 (an HTTP 200: every-200)


def test_scale_client_makes_one_classified_call(emulator: Any, samples_dir: Path) -> None:
    emu = emulator(qps=50)

    async def go() -> tuple[Any, Any]:
        async with ScaleClient("api-code", endpoint=emu.endpoint) as client:
            by_url = await client.scale(emu.file_url("garden-480x640.png"), scale=1)
            by_file = await client.scale(samples_dir / "harbour-320x240.jpg", type="face")
            return by_url, by_file

    by_url, by_file = asyncio.run(go())
    assert by_url.verdict is Verdict.SUCCESS and by_url.state == 1 and by_url.image
    assert by_file.verdict is Verdict.SUCCESS
    assert "api-code" not in repr(ScaleClient("api-code"))


def test_the_api_is_imported_lazily() -> None:
    code = (
        "import sys, zuotang_cli; "
        "assert 'httpx' not in sys.modules, 'httpx imported'; "
        "zuotang_cli.enhance; assert 'httpx' in sys.modules"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert set(zuotang_cli.__all__) >= {"enhance", "ScaleClient", "Record", "Outcome"}


def test_enhance_takes_the_commands_options_and_checks(tmp_path: Path, emulator: Any) -> None:
    """The same code path as the CLI: its options by name, its checks, its dry run."""
    import pytest

    from zuotang_cli.errors import UsageError

    emu = emulator(qps=50, fail_first="state-8")
    url = emu.file_url("harbour-320x240.jpg")
    common: dict[str, Any] = {"appcode": "api-code", "endpoint": emu.endpoint, "qps": 50}
    plan = asyncio.run(enhance([url], output_dir=tmp_path / "o", dry_run=True, **common))
    assert emu.stats()["calls"] == 0 and plan.records == []
    assert plan.plan == [(url, "call", "")]
    assert not (tmp_path / "o").exists()  # a dry run creates nothing
    outcome = asyncio.run(
        enhance([url], output_dir=tmp_path / "o", paid_retries=0, billing="every-200", **common)
    )
    assert outcome.records[0].error_class == "state-8"
    assert emu.stats()["billed"] == 1  # one paid failure, not retried (paid_retries=0)
    with pytest.raises(UsageError, match="no such file or directory"):
        asyncio.run(enhance([str(tmp_path / "nope.txt")], output_dir=tmp_path / "o", **common))
    with pytest.raises(UsageError, match="unexpected keyword"):
        asyncio.run(enhance([url], output_dir=tmp_path / "o", colour="red", **common))
