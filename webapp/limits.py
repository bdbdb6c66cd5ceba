"""The request-size limit in front of Gradio: a JSON request body (an API call, a queue join) larger than a
stroke payload can legitimately be is refused with HTTP 413 and a message before Gradio reads it, so an
oversized ``/retrieve`` call costs neither the time nor the memory of parsing it. File uploads
(multipart) keep Gradio's own ``max_file_size``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from sketchdown.sketch.strokes import MAX_JSON_CHARS

# bytes of one JSON request: the stroke JSON (at most MAX_JSON_CHARS characters, ASCII in practice) plus the
# other arguments and Gradio's envelope; a stroke payload up to the library's cap still reaches the library
MAX_JSON_REQUEST_BYTES = MAX_JSON_CHARS + 2**20


def _too_large_body(limit: int) -> bytes:
    mb = limit / 1e6
    return json.dumps({"error": f"request too large: at most {mb:.0f} MB (a stroke payload is at most "
                                f"{MAX_JSON_CHARS / 1e6:.0f} MB of JSON)"}).encode()


class RequestSizeLimit:
    """ASGI middleware: 413 for a non-multipart request whose body exceeds ``limit`` bytes, judged from its
    Content-Length before any byte is read; a body sent without one (chunked) is cut off at the limit."""

    def __init__(self, app: Callable, limit: int = MAX_JSON_REQUEST_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        if scope.get("type") != "http" or scope.get("method") not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        if headers.get(b"content-type", b"").lower().startswith(b"multipart/"):
            await self.app(scope, receive, send)  # uploads: Gradio's max_file_size applies
            return
        try:
            declared = int(headers.get(b"content-length", b"-1"))
        except ValueError:
            declared = -1
        if declared > self.limit:
            await self._refuse(send)
            return
        await self.app(scope, self._counting(receive), send)

    def _counting(self, receive: Callable) -> Callable:
        """``receive`` that ends the request (as a disconnect) once more than ``limit`` bytes have come."""
        seen = 0

        async def wrapped() -> dict[str, Any]:
            nonlocal seen
            message = await receive()
            if message.get("type") == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    return {"type": "http.disconnect"}
            return message

        return wrapped

    async def _refuse(self, send: Callable) -> None:
        body = _too_large_body(self.limit)
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})
