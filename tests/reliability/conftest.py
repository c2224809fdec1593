"""Fixtures of the reliability suites, and the hooks that collect their figures.

Every test takes ``trial`` (its figures); after a passing test, every file under its
``tmp_path`` (reports, journal, logs, results) is searched for the AppCode.  At the end of
the session, tests/RELIABILITY.md is rewritten, only when ZUOTANG_WRITE_RELIABILITY=1.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from tests.reliability import render
from tests.reliability.support import FIGURES, Trial, assert_no_secret_in_files

WRITE_ENV = "ZUOTANG_WRITE_RELIABILITY"
REPO_ROOT = Path(__file__).resolve().parents[2]
RELIABILITY_MD = REPO_ROOT / "tests" / "RELIABILITY.md"
OUTCOME = pytest.StashKey[str]()


def _title(request: pytest.FixtureRequest) -> str:
    doc = (request.function.__doc__ or "").strip()
    return doc.splitlines()[0] if doc else request.function.__name__


@pytest.fixture
def trial(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Trial]:
    """This test's figures; its tmp_path is searched for the AppCode once it passed."""
    suite = getattr(request.module, "SUITE", request.module.__name__)
    current = FIGURES.trial(request.node.nodeid, suite, _title(request))
    current.ran_at = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    current.selection = request.config.getoption("markexpr") or ""
    yield current
    current.held = [note.replace(str(tmp_path), "$TMP") for note in current.held]
    if request.node.stash.get(OUTCOME, "") == "passed":
        assert_no_secret_in_files(current, tmp_path)


def _outcome(report: pytest.TestReport) -> str:
    if hasattr(report, "wasxfail"):
        return "xpassed" if report.passed else "xfailed"
    return str(report.outcome)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if report.when == "call" or (report.when == "setup" and report.skipped):
        item.stash[OUTCOME] = _outcome(report)
    elif report.failed:  # an error in setup or teardown (e.g. the AppCode found in a file)
        item.stash[OUTCOME] = "failed"
    else:
        return
    current = FIGURES.trials.get(item.nodeid)
    if current is None:
        return
    current.outcome = item.stash[OUTCOME]
    if report.when == "call":
        current.seconds = report.duration
    if current.outcome == "xfailed":
        current.reason = str(getattr(report, "wasxfail", "")).removeprefix("reason: ")
    elif current.outcome in ("failed", "xpassed"):
        last = report.longreprtext.strip().splitlines()[-1:] or [current.outcome]
        current.reason = f"{report.when}: {last[0][:300]}"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get(WRITE_ENV) == "1" and FIGURES.trials:
        render.write(RELIABILITY_MD, FIGURES, REPO_ROOT)
