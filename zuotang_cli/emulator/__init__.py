"""A faithful local stand-in for the Zuotang scale API
(docs/api-contract.md, "The emulator's switches").

Needs the ``emulator`` extra (starlette, uvicorn, python-multipart).
"""

from __future__ import annotations

from zuotang_cli.emulator.config import EmulatorConfig
from zuotang_cli.emulator.server import RunningEmulator, running_emulator, serve_forever

__all__ = ["EmulatorConfig", "RunningEmulator", "running_emulator", "serve_forever"]
