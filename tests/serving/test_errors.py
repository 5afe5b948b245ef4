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


def raised_codes() -> set[str]:
    """Every code the source raises an EmotionError or InputError with."""
    import re

    from tests.helpers import ROOT

    pattern = re.compile(r"(?:InputError|EmotionError)\(\s*f?\"(\{reason\}_image|\w+)\"")
    codes = set()
    for path in [ROOT / "service.py", *(ROOT / "emotionlib").rglob("*.py")]:
        for code in pattern.findall(path.read_text()):
            codes |= {"truncated_image", "corrupt_image"} if code == "{reason}_image" else {code}
    return codes


def test_every_raised_code_has_one_status():
    from emotionlib.serving.errors import STATUS

    codes = raised_codes()
    assert len(codes) >= 20 and {"not_an_image", "invalid_boxes", "overloaded", "model_timeout"} <= codes
    assert codes <= set(STATUS), codes - set(STATUS)
    assert all(400 <= status < 600 for status in STATUS.values())


def test_an_endpoint_answers_any_error_in_the_json_shape():
    import json

    from emotionlib.errors import EmotionError, InputError
    from emotionlib.serving.errors import answers_errors

    @answers_errors
    async def endpoint(kind: str, image: bytes = b"") -> list:
        if kind == "input":
            raise InputError("not_an_image", "the uploaded file is text, not a JPEG or PNG image")
        if kind == "busy":
            raise EmotionError("model_busy", "the model worker is overloaded")
        return []

    assert asyncio.run(endpoint("fine")) == []
    bad, busy = asyncio.run(endpoint("input")), asyncio.run(endpoint(kind="busy"))
    assert (bad.status_code, json.loads(bad.body)) == (400, {"error": "the uploaded file is text, not a JPEG or "
                                                             "PNG image", "code": "not_an_image", "status": 400})
    assert busy.status_code == 503 and json.loads(busy.body)["code"] == "model_busy"
    assert busy.headers["retry-after"] == "1"
    import inspect

    assert list(inspect.signature(endpoint).parameters) == ["kind", "image"]  # what BentoML reads
