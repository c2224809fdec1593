"""The errors the Alibaba API Gateway answers itself, by gateway style.

``modern`` instances name every error in ``X-Ca-Error-Code``; ``classic`` ones (the
marketplace's sample code, docs/api-contract.md) send only ``X-Ca-Error-Message``, answer
a wrong AppCode with 400 and throttle with a bare 403. No module here needs Starlette.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

GATEWAY_STYLES = ("modern", "classic")


@dataclass(frozen=True)
class GatewayError:
    status: int
    message: str
    code: str | None = None
    retry_after: int | None = None


MODERN: dict[str, GatewayError] = {
    "missing-appcode": GatewayError(400, "Missing AppCode", "A400MA"),
    "invalid-appcode": GatewayError(401, "Invalid AppCode `not exists`", "A401AC"),
    "throttled-429": GatewayError(429, "Throttled by USER Flow Control", "T429QL", retry_after=1),
    "throttled-403": GatewayError(403, "Throttled by USER Flow Control"),
    "quota": GatewayError(403, "Quota Exhausted", "B403MQ"),
    "wrong-path": GatewayError(404, "API Not Found"),
    "body-too-large": GatewayError(413, "Request body too Large", "I413RL"),
    "unsupported-multipart": GatewayError(400, "Unsupported Multipart"),
    "500": GatewayError(500, "Internal Error", "D500IE"),
    "503": GatewayError(503, "Service Unavailable", "D503BB"),
    "504": GatewayError(504, "Backend Service Timeout", "D504TO"),
    "breaker": GatewayError(503, "Backend Circuit Breaker Open", "D503CB"),
}
"""Newer instances. ``wrong-path`` and ``unsupported-multipart`` carry no code: none is known."""


def _classic() -> dict[str, GatewayError]:
    bare = {
        name: dataclasses.replace(error, code=None, retry_after=None)
        for name, error in MODERN.items()
    }
    bare["invalid-appcode"] = GatewayError(400, "Invalid AppCode `not exists`")
    bare["throttled-429"] = bare["throttled-403"]
    bare["wrong-path"] = GatewayError(400, "Invalid Url")
    return bare


CLASSIC = _classic()
"""Older instances: message only, never a code nor Retry-After; throttling is always 403."""
ERRORS = {"modern": MODERN, "classic": CLASSIC}


def gateway_error(style: str, name: str, *, throttle_style: str = "429") -> GatewayError:
    """The error ``name`` (a key of :data:`MODERN`, or ``throttled``) in ``style``."""
    if name == "throttled":
        name = f"throttled-{throttle_style}"
    return ERRORS[style][name]


def parse_refusal(text: str) -> GatewayError:
    """``"403 User Arrears"`` or ``"403 Quota Exhausted|B403MQ"`` → GatewayError.

    Raises ValueError for anything else (status 400-599, a non-empty message).
    """
    status_text, _, rest = text.strip().partition(" ")
    message, sep, code = rest.partition("|")
    message, code = message.strip(), code.strip()
    if not status_text.isdigit() or not 400 <= int(status_text) <= 599:
        raise ValueError(f"refuse-with {text!r}: must start with an HTTP status 400-599")
    if not message:
        raise ValueError(f"refuse-with {text!r}: a message must follow the status")
    if sep and (not code or any(ch.isspace() for ch in code)):
        raise ValueError(f"refuse-with {text!r}: the code after '|' must be one word")
    return GatewayError(int(status_text), message, code or None)
