"""ErrorShape, the middleware that gives every answer >= 400 the JSON error shape."""
from __future__ import annotations

import asyncio

import pytest

from emotionlib.serving.errors import ErrorShape


def test_an_error_after_the_answer_went_out_is_not_answered_twice():
    """When sending a shaped answer's body fails (BentoML's access log did, for a Content-Type
    that is not UTF-8), its status line is already out: the error goes up as it is, no
    second (500) answer is started on the same connection."""
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b"Not Found"})

    sent = []

    async def send(message):
        sent.append((message["type"], message.get("status")))
        if message["type"] == "http.response.body":
            raise UnicodeDecodeError("utf-8", b"\xe9", 0, 1, "invalid continuation byte")

    with pytest.raises(UnicodeDecodeError):
        asyncio.run(ErrorShape(app)({"type": "http", "path": "/nope", "method": "GET"}, None, send))
    assert sent == [("http.response.start", 404), ("http.response.body", None)]
