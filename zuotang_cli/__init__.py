"""zuotang: batch client for the Zuotang (佐糖) photo clarity / upscale API.

The Python API (imported lazily, so ``zuotang --version`` stays fast)::

    from zuotang_cli import enhance, ScaleClient

    outcome = await enhance(["urls.txt"], appcode=..., output_dir="out", scale=2)
    for record in outcome.records:
        print(record.outcome, record.output, record.width, record.height)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "BatchOutcome",
    "ExitStatus",
    "HaltError",
    "Outcome",
    "Record",
    "Reply",
    "ScaleClient",
    "TroubleError",
    "UsageError",
    "Verdict",
    "ZuotangError",
    "__version__",
    "enhance",
]

_LAZY = {
    "BatchOutcome": "zuotang_cli.app.client",
    "ScaleClient": "zuotang_cli.app.client",
    "enhance": "zuotang_cli.app.client",
    "Reply": "zuotang_cli.protocol.api",
    "Verdict": "zuotang_cli.protocol.api",
    "Record": "zuotang_cli.models",
    "Outcome": "zuotang_cli.models",
    "ExitStatus": "zuotang_cli.status",
    "ZuotangError": "zuotang_cli.errors",
    "UsageError": "zuotang_cli.errors",
    "HaltError": "zuotang_cli.errors",
    "TroubleError": "zuotang_cli.errors",
}

if TYPE_CHECKING:
    from zuotang_cli.app.client import BatchOutcome, ScaleClient, enhance
    from zuotang_cli.errors import HaltError, TroubleError, UsageError, ZuotangError
    from zuotang_cli.models import Outcome, Record
    from zuotang_cli.protocol.api import Reply, Verdict
    from zuotang_cli.status import ExitStatus


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'zuotang_cli' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
