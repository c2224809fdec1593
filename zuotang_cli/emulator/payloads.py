"""The JSON the service answers, in the two shapes: ``real`` (as real replies look,
docs/api-contract.md) and ``doc`` (as the marketplace document shows them)."""

from __future__ import annotations

import uuid
from typing import Any

from zuotang_cli.protocol import rules

SUCCESS = "success"


def new_task_id(shape: str) -> str:
    """Real task ids are dashed UUIDs; the document's examples are 32 hex digits."""
    return str(uuid.uuid4()) if shape == "real" else uuid.uuid4().hex


def envelope(data: dict[str, Any], shape: str, message: str = SUCCESS) -> dict[str, Any]:
    """``{status, data}``; the ``doc`` shape adds ``message`` (a failure's reason)."""
    if shape == "doc":
        return {"status": 200, "message": message, "data": data}
    return {"status": 200, "data": data}


def final_data(
    *,
    shape: str,
    task_id: str,
    kind: str,
    state: int,
    detail: str,
    image: str,
    size: tuple[int, int] | None,
    return_type: int,
    times: tuple[int, int, int],
) -> dict[str, Any]:
    """``data`` of a finished call. ``times``: created, processed (work began), completed.

    ``real``: ``type`` is the string sent, a failure carries ``state_detail`` and no
    image, a success ``processed_at``, ``image_width`` and ``image_height``. ``doc``:
    ``type`` is 1, ``image`` is ``""`` on failure, the reason goes in ``message``.
    """
    created_at, processed_at, completed_at = times
    done = state == rules.STATE_DONE
    if shape == "doc":
        return {
            "state": state,
            "progress": 100 if done else 0,
            "task_id": task_id,
            "image": image if done else "",
            "return_type": return_type,
            "type": 1,
            "created_at": created_at,
            "completed_at": completed_at,
        }
    data: dict[str, Any] = {
        "task_id": task_id,
        "state": state,
        "progress": 100 if done else 0,
        "return_type": return_type,
        "type": kind,
        "created_at": created_at,
        "processed_at": processed_at,
        "completed_at": completed_at,
    }
    if done:
        assert size is not None
        data.update(image=image, image_width=size[0], image_height=size[1])
    else:
        data["state_detail"] = detail
    return data


def created_data(task_id: str) -> dict[str, Any]:
    """The answer of an asynchronous POST: only the task id."""
    return {"task_id": task_id}


def running_data(task_id: str, state: int, progress: int) -> dict[str, Any]:
    """A poll of a task still processing."""
    return {"task_id": task_id, "state": state, "progress": progress}


def task_not_found() -> dict[str, Any]:
    """The service's 404 (HTTP and JSON status alike, as the document's table says)."""
    return {"status": 404, "message": "task not found", "data": None}
