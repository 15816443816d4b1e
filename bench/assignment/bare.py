"""The floor under ``POST /v1/assign``: a plain ASGI callable, no framework, answering every request with the same
JSON body of about the size of one assignment. Served by the same uvicorn with the same options
(``uvicorn --factory bench.assignment.bare:create_app``), so the gap to it is what the service itself costs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Message, Receive, Send], Awaitable[None]]

BODY = orjson.dumps({
    "user_id": "u-0000000042",
    "assignments": [{
        "experiment": "bench-assign", "variant": "b", "payload": {"title": "Variant B"}, "in_experiment": True,
        "reason": "hashed", "phase": 1, "exposure_logged": True, "exposure": None,
    }],
})
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope: Message, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    # The whole request body is read, as the service must, so both move the same bytes off the socket.
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        if not message.get("more_body", False):
            break
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})


def create_app() -> ASGIApp:
    return app
