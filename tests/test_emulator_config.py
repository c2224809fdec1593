"""Pure units of the emulator: settings, fault specs, flow control, quota."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zuotang_cli.cli.main import main
from zuotang_cli.emulator import EmulatorConfig
from zuotang_cli.emulator.config import parse_latency
from zuotang_cli.emulator.faults import FAULT_KINDS, STATE_FAULTS, draw_fault, parse_faults
from zuotang_cli.emulator.limits import FlowControl, Quota
from zuotang_cli.emulator.scale import appcode_of
from zuotang_cli.status import ExitStatus


def test_defaults_match_the_documented_ones() -> None:
    config = EmulatorConfig()
    assert config.qps == 2.0
    assert config.latency == (1.0, 2.0)
    assert config.link_ttl == 3600.0
    assert config.quota is None
    assert config.appcodes == frozenset()
    assert config.faults == {}
    assert config.throttle_style == "429"
    assert config.return_type == 1
    assert not config.cheap
    assert config.slow_seconds == 120.0
    assert config.service_timeout == 30.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1-2", (1.0, 2.0)), ("0", (0.0, 0.0)), ("0.5", (0.5, 0.5)), (" 1.5-3 ", (1.5, 3.0))],
)
def test_parse_latency(text: str, expected: tuple[float, float]) -> None:
    assert parse_latency(text) == expected


@pytest.mark.parametrize("text", ["", "a-b", "1-", "-1", "1-2-3"])
def test_parse_latency_rejects_garbage(text: str) -> None:
    with pytest.raises(ValueError, match="latency"):
        parse_latency(text)


def test_parse_faults_reads_every_kind() -> None:
    spec = "429=0.05,500=0.05,reset=0.02,slow=0.01,state-8=0.03,state-2=0.01,state-1=0.02,"
    spec += "truncate=0.02,expire=0.02"
    faults = parse_faults(spec)
    assert faults["state-8"] == 0.03
    assert list(faults)[:3] == ["429", "500", "reset"]
    assert parse_faults("") == {}
    assert parse_faults(" 503 = 0.5 , ") == {"503": 0.5}
    assert set(STATE_FAULTS.values()) == {0, 2, 3, 4, -1, -2, -3, -5, -7, -8}
    assert "state1" not in FAULT_KINDS


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("teapot=0.1", "unknown fault kind 'teapot'"),
        ("state1=0.1", "unknown fault kind 'state1'"),
        ("500=1.5", "not in \\[0, 1\\]"),
        ("500=-0.1", "not in \\[0, 1\\]"),
        ("500=0.6,503=0.6", "sum to 1.2, over 1"),
        ("500", "not KIND=PROBABILITY"),
        ("500=x", "not a number"),
        ("500=nan", "not a probability"),
        ("500=0.1,500=0.2", "given twice"),
    ],
)
def test_bad_fault_specs_are_value_errors(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        EmulatorConfig.from_options(faults=spec)


@pytest.mark.parametrize(
    "overrides",
    [
        {"qps": 0},
        {"latency": (2.0, 1.0)},
        {"latency": (-1.0, 1.0)},
        {"throttle_style": "418"},
        {"return_type": 4},
        {"quota": -1},
        {"gateway_style": "legacy"},
        {"billing": "never"},
        {"replies": "maybe"},
        {"body_accept": "json"},
        {"reply_shape": "pretty"},
        {"link_style": "s3"},
        {"body_limit": 0},
        {"breaker_seconds": -1.0},
        {"refuse_with": "nope"},
        {"link_ttl": -1.0},
        {"appcodes": frozenset({""})},
        {"faults": {"500": 2.0}},
        {"serve_dir": Path("/no/such/folder")},
    ],
)
def test_direct_construction_is_checked(overrides: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        EmulatorConfig(**overrides)  # type: ignore[arg-type]


def test_from_options_converts_cli_strings(samples_dir: Path) -> None:
    config = EmulatorConfig.from_options(
        qps=5,
        latency="0-0.5",
        appcodes=["a", "b", "a"],
        serve_dir=str(samples_dir),
        faults="429=0.1",
        seed=3,
        throttle_style="403",
        return_type=2,
        cheap=True,
        slow_seconds=1.0,
    )
    assert config.latency == (0.0, 0.5)
    assert config.appcodes == frozenset({"a", "b"})
    assert config.serve_dir == samples_dir
    assert config.faults == {"429": 0.1}
    assert (config.throttle_style, config.return_type, config.cheap) == ("403", 2, True)


def test_cli_turns_bad_options_into_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["emulator", "--port", "0", "--faults", "500=0.7,503=0.7"])
    assert exit_info.value.code == ExitStatus.USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "sum to 1.4" in err


def test_draw_fault_uses_cumulative_probabilities() -> None:
    faults = {"500": 0.25, "reset": 0.25}
    rng = random.Random(7)
    draws = [draw_fault(faults, rng) for _ in range(4000)]
    assert 800 < draws.count("500") < 1200
    assert 800 < draws.count("reset") < 1200
    assert draws == [draw_fault(faults, r) for r in [random.Random(7)] for _ in range(4000)]
    assert draw_fault({"500": 1.0}, rng) == "500"
    assert draw_fault({}, rng) is None


@pytest.mark.parametrize(
    ("header", "code"),
    [
        ("APPCODE abc", "abc"),
        ("APPCODE  abc", None),
        ("appcode abc", None),
        ("APPCODE ", None),
        ("Bearer abc", None),
        (None, None),
    ],
)
def test_appcode_header(header: str | None, code: str | None) -> None:
    assert appcode_of(header) == code


def test_flow_control_window_is_half_open() -> None:
    flow = FlowControl(2)
    assert flow.admit("a", 10.0)
    assert flow.admit("a", 10.5)
    assert not flow.admit("a", 10.9)  # two accepted in (9.9, 10.9]
    assert flow.admit("b", 10.9)  # per AppCode
    assert flow.admit("a", 11.0)  # 10.0 left the window (10.0, 11.0]
    assert not flow.admit("a", 11.4)
    assert flow.admit("a", 11.5)


@given(
    qps=st.integers(min_value=1, max_value=5),
    gaps=st.lists(st.floats(min_value=0.0, max_value=0.7), min_size=1, max_size=60),
)
def test_flow_control_never_exceeds_qps_and_refuses_only_when_full(
    qps: int, gaps: list[float]
) -> None:
    flow = FlowControl(qps)
    accepted: list[float] = []
    now = 100.0
    for gap in gaps:
        now += gap
        in_window = sum(1 for t in accepted if now - 1.0 < t <= now)
        admitted = flow.admit("k", now)
        assert admitted == (in_window < qps)
        if admitted:
            accepted.append(now)


def test_quota_holds_slots_for_calls_in_flight() -> None:
    quota = Quota(2)
    assert quota.hold()
    assert quota.hold()
    assert not quota.hold()
    quota.release(billed=False)
    assert quota.hold()
    quota.release(billed=True)
    quota.release(billed=True)
    assert not quota.hold()
    assert quota.billed == 2
    unlimited = Quota(None)
    assert all(unlimited.hold() for _ in range(100))


def test_fault_caps_are_read_and_checked() -> None:
    config = EmulatorConfig.from_options(faults="breaker=0.01", fault_caps=" breaker = 1 ,")
    assert config.fault_caps == {"breaker": 1}
    for bad in ("breaker", "breaker=-1", "breaker=x", "nonsense=1"):
        with pytest.raises(ValueError):
            EmulatorConfig.from_options(fault_caps=bad)
