"""Injectable faults: the kinds, the ``--faults`` spec parser and the per-call draw."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping

from zuotang_cli.protocol import rules

GATEWAY_FAULTS = ("429", "403", "500", "503", "504", "reset", "slow", "breaker")
"""Faults the gateway answers itself: nothing is processed and nothing is billed.
``429`` is a throttle in the configured ``throttle_style``; ``403`` is always the older
instances' ``403 Throttled by USER Flow Control`` (no code, no Retry-After), so one run
can meet both styles the contract lists.  ``breaker`` opens the circuit breaker (see
:mod:`zuotang_cli.emulator.breaker`)."""
LINK_FAULTS = ("truncate", "expire", "refuse")
"""Faults of a successful (billed) call that spoil the download of its result: cut short
once, expired at once, or ``refuse``: every download of it refused with a 403 that does
not say the link expired, as a proxy or firewall in front of the storage host answers."""
REPLY_FAULTS = ("async",)
"""``async``: the call is answered with a task id only, as the vendor's asynchronous API
does, whatever ``sync=1`` asked and whatever ``replies`` says: the result is to be fetched
by polling the task (billed as any task under the billing rule)."""
STATE_FAULTS: dict[str, int] = {
    f"state{state}": state for state in rules.STATE_MEANINGS if state != rules.STATE_DONE
}
"""``state-8`` and friends: a 200 reply carrying that failing or unfinished state."""
FAULT_KINDS = (*GATEWAY_FAULTS, *LINK_FAULTS, *REPLY_FAULTS, *STATE_FAULTS)


def validate_faults(faults: Mapping[str, float]) -> dict[str, float]:
    """Check kinds and probabilities; return a plain copy. Raises ValueError."""
    unknown = [kind for kind in faults if kind not in FAULT_KINDS]
    if unknown:
        raise ValueError(f"unknown fault kind {unknown[0]!r} (known: {', '.join(FAULT_KINDS)})")
    for kind, probability in faults.items():
        if not (isinstance(probability, (int, float)) and 0.0 <= probability <= 1.0):
            raise ValueError(f"fault {kind!r}: probability {probability!r} is not in [0, 1]")
    total = math.fsum(faults.values())
    if total > 1.0 + 1e-9:
        raise ValueError(f"fault probabilities sum to {total:g}, over 1")
    return {kind: float(probability) for kind, probability in faults.items()}


def validate_caps(caps: Mapping[str, int]) -> dict[str, int]:
    """Check fault caps (kind -> most times it is injected in a run). Raises ValueError."""
    for kind, cap in caps.items():
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r} (known: {', '.join(FAULT_KINDS)})")
        if isinstance(cap, bool) or not isinstance(cap, int) or cap < 0:
            raise ValueError(f"fault cap {kind!r}: {cap!r} is not a count >= 0")
    return dict(caps)


def parse_caps(spec: str) -> dict[str, int]:
    """Parse ``breaker=1,slow=20`` (empty means no caps)."""
    caps: dict[str, int] = {}
    for item in spec.split(","):
        kind, sep, value = (part.strip() for part in item.partition("="))
        if not item.strip():
            continue
        if not sep or not kind or not value.isdigit():
            raise ValueError(f"fault cap {item.strip()!r} is not KIND=COUNT")
        caps[kind] = int(value)
    return validate_caps(caps)


def parse_faults(spec: str) -> dict[str, float]:
    """Parse ``429=0.05,reset=0.02,state-8=0.03`` (empty means no faults)."""
    faults: dict[str, float] = {}
    for item in spec.split(","):
        item = item.strip()
        if not item:
            continue
        kind, sep, value = item.partition("=")
        kind = kind.strip()
        if not sep or not kind:
            raise ValueError(f"fault {item!r} is not KIND=PROBABILITY")
        if kind in faults:
            raise ValueError(f"fault {kind!r} is given twice")
        try:
            faults[kind] = float(value)
        except ValueError:
            raise ValueError(f"fault {kind!r}: {value.strip()!r} is not a number") from None
        if not math.isfinite(faults[kind]):
            raise ValueError(f"fault {kind!r}: {value.strip()!r} is not a probability")
    return validate_faults(faults)


def draw_fault(faults: Mapping[str, float], rng: random.Random) -> str | None:
    """At most one fault per call: one uniform draw against cumulative probabilities."""
    point = rng.random()
    cumulative = 0.0
    for kind, probability in faults.items():
        cumulative += probability
        if point < cumulative:
            return kind
    return None
