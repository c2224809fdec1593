"""The replies the gateway and the service send, including deliberately broken ones."""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from zuotang_cli.emulator.gateway import GatewayError

REQUEST_ID = "X-Ca-Request-Id"
ERROR_CODE = "X-Ca-Error-Code"
ERROR_MESSAGE = "X-Ca-Error-Message"


def gateway_reply(error: GatewayError, request_id: str) -> Response:
    """An error the gateway answers itself: empty body, the facts in X-Ca-* headers."""
    headers = {REQUEST_ID: request_id, ERROR_MESSAGE: error.message}
    if error.code is not None:
        headers[ERROR_CODE] = error.code
    if error.retry_after is not None:
        headers["Retry-After"] = str(error.retry_after)
    return Response(b"", status_code=error.status, headers=headers)


def json_reply(payload: dict[str, Any], request_id: str, status: int = 200) -> Response:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    return Response(
        body,
        status_code=status,
        headers={REQUEST_ID: request_id},
        media_type="application/json; charset=utf-8",
    )


def image_reply(data: bytes, content_type: str, request_id: str) -> Response:
    """``return_type=3``: the HTTP-200 reply is the result image itself."""
    return Response(data, headers={REQUEST_ID: request_id}, media_type=content_type)


def bad_request(message: str, request_id: str) -> Response:
    """The service's own 400 (no X-Ca-Error-Code: it did not come from the gateway)."""
    return json_reply({"status": 400, "message": message, "data": None}, request_id, 400)


def storage_error(status: int, code: str, message: str) -> Response:
    """An object-storage style XML error for result links."""
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    )
    return Response(body, status_code=status, media_type="application/xml")


class CutShortResponse(Response):
    """Announces the full Content-Length, sends half the body, then drops the connection.

    The server logs nothing about it (see ``server.quiet_broken_replies``); the client
    sees a transport error (httpx: ``RemoteProtocolError``).
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        half = bytes(self.body[: len(self.body) // 2])
        await send({"type": "http.response.body", "body": half, "more_body": True})
