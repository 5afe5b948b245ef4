"""Every HTTP error decision: the status each error code answers with (one table), the one
JSON shape ``{"error", "code", "status"}`` of every answer of 400 and above, and the helpers
that give every endpoint and every other layer that shape.

- Our errors (emotionlib.errors.EmotionError: the pipeline's InputError, the upload guard's
  and the model worker's) carry a code; ``STATUS`` maps it to the HTTP status, and
  ``error_response`` makes the answer (counted in emotion_rejected_requests_total).
- ``answers_errors`` wraps every endpoint: any EmotionError it raises becomes that answer.
- ``ErrorShape`` (ASGI middleware) rewrites the answers the other layers make in their own
  ways (starlette's router: 404/405 as text; BentoML: ``{"error": ...}`` for its validation
  errors, a traceback page for a crash), naming them by status (``FOREIGN_CODES``).
  WebSocket handshakes (there is no WebSocket endpoint) get a 403 in the shape. uvicorn's own
  400 never reaches the application: patches.json_http_errors_in_uvicorn shapes it.
"""
from __future__ import annotations

import functools
import json
import logging

from emotionlib.errors import EmotionError

logger = logging.getLogger("emotion")

# The pipeline's (emotionlib.errors.InputError) for photos only and for clips only (emotionlib.video);
# the OpenAPI document lists each group on the endpoints that take its kind of file.
PHOTO_STATUS: dict[str, int] = {
    "not_an_image": 400, "corrupt_image": 400, "truncated_image": 400, "too_many_scans": 400, "invalid_boxes": 400,
    "image_too_large": 413, "unsupported_image_type": 415,
}
VIDEO_STATUS: dict[str, int] = {
    "not_a_video": 400, "no_video_track": 400, "no_frames": 400, "corrupt_video": 400, "truncated_video": 400,
    "invalid_frame_rate": 400, "invalid_frame_count": 400, "invalid_fps": 400,
    "video_too_large": 413, "video_too_long": 413, "frame_too_large": 413,
    "unsupported_video_type": 415, "audio_only": 415, "unsupported_video_codec": 415,
}
# Every code our code raises -> its HTTP status (tests/serving/test_errors.py checks that every
# code raised anywhere is here).
STATUS: dict[str, int] = {
    # the pipeline's for either kind of file
    "empty_file": 400, "invalid_field": 400,
    **PHOTO_STATUS,
    **VIDEO_STATUS,
    # the HTTP layer's: form fields, uploads, access, the task routes BentoML adds that we refuse
    "missing_field": 400, "unknown_field": 400, "not_a_file": 400, "too_many_files": 400,
    "malformed_multipart": 400, "malformed_http": 400, "unauthorized": 401, "forbidden": 403,
    "not_supported": 405, "incomplete_upload": 408, "upload_too_large": 413, "unsupported_media_type": 415,
    # not the client's fault: retry later
    "overloaded": 503, "model_timeout": 503, "model_busy": 503, "not_ready": 503,
}
# Answers other layers made (the status is theirs) -> the code they are given.
FOREIGN_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                 405: "method_not_allowed", 408: "incomplete_upload", 413: "upload_too_large",
                 415: "unsupported_media_type", 422: "invalid_field", 429: "overloaded", 500: "internal_error",
                 503: "overloaded", 504: "timeout"}
MESSAGES = {404: "no such path; the API is POST /emotion (see /docs.json)",
            405: "method not allowed on this path",
            503: "the service is not ready or is overloaded; retry in a moment",
            500: "internal error; the server logged it"}


def status_of(error: EmotionError) -> int:
    return STATUS[error.code]


def error_body(error: EmotionError) -> dict:
    """The JSON body of an error answer (also a photo's entry in /emotion/batch)."""
    return {"error": error.message, "code": error.code, "status": status_of(error)}


def refused(error: EmotionError) -> dict:
    """error_body, counted in emotion_rejected_requests_total by its code."""
    from emotionlib.serving.metrics import metrics

    metrics().rejected.labels(reason=error.code).inc()
    return error_body(error)


def error_response(error: EmotionError, headers: dict[str, str] | None = None):
    """The answer to an error (counted): its status and JSON body; 408 and 413 close the
    connection (the rest of the body was not read), 503 says when to retry."""
    from starlette.responses import JSONResponse

    response = JSONResponse(refused(error), status_code=status_of(error), headers=headers)
    if response.status_code in (408, 413):
        response.headers["Connection"] = "close"
    if response.status_code == 503:
        response.headers["Retry-After"] = "1"
    return response


async def reject(error: EmotionError, scope, receive, send, headers: dict[str, str] | None = None) -> None:
    """Answer an ASGI request with the error (for middleware: the upload guard, the API key)."""
    await error_response(error, headers)(scope, receive, send)


def answers_errors(endpoint):
    """Decorator for an async endpoint: an EmotionError it raises becomes its JSON answer."""
    @functools.wraps(endpoint)
    async def answered(*args, **kwargs):
        try:
            return await endpoint(*args, **kwargs)
        except EmotionError as error:
            return error_response(error)

    return answered


def foreign_body(status: int, detail: str = "") -> dict:
    """The shaped body for another layer's answer of ``status``; ``detail`` is its text."""
    message = MESSAGES.get(status) or detail.strip() or f"HTTP {status}"
    if status in (404, 405) and detail.strip() and detail.strip() not in ("Not Found", "Method Not Allowed"):
        message = detail.strip()
    code = FOREIGN_CODES.get(status, "client_error" if status < 500 else "server_error")
    return {"error": message[:500], "code": code, "status": status}


def _is_shaped(body: bytes) -> bool:
    try:
        parsed = json.loads(body)
    except ValueError:
        return False
    return isinstance(parsed, dict) and {"error", "code", "status"} <= set(parsed)


def _detail(body: bytes) -> str:
    try:
        parsed = json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace")[:300]
    if isinstance(parsed, dict):
        for key in ("error", "detail", "message"):
            if key in parsed:
                return str(parsed[key])
    return ""


class ErrorShape:
    """ASGI middleware: any answer >= 400 that is not already shaped is re-written as JSON."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket":
            return await _refuse_websocket(scope, receive, send)
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        held: dict = {}
        forwarded = False  # the answer's start went out: no other answer can be sent

        async def downstream(message):
            nonlocal forwarded
            forwarded = forwarded or message["type"] == "http.response.start"
            await send(message)

        async def shaped_send(message):
            if message["type"] == "http.response.start" and message["status"] >= 400:
                held["start"], held["body"] = message, b""
                return None
            if message["type"] == "http.response.body" and "start" in held:
                held["body"] += message.get("body", b"")
                if message.get("more_body", False):
                    return None
                return await _send_shaped(downstream, held["start"], held["body"], scope)
            return await downstream(message)

        try:
            await self.app(scope, receive, shaped_send)
        except Exception as exc:
            if forwarded:
                raise
            if scope["path"].rstrip("/") == "/readyz":  # BentoML's probe of a worker still starting
                logger.warning("not ready: %s", type(exc).__name__)
                return await _send_shaped(downstream, {"status": 503, "headers": []}, b"", scope, "not_ready")
            logger.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            await _send_shaped(downstream, {"status": 500, "headers": []}, b"", scope)


async def _refuse_websocket(scope, receive, send) -> None:
    """The API has no WebSocket endpoint. A handshake gets 403 in the JSON shape where the
    server offers ASGI's denial response (uvicorn's own refusal is a 403 with no body)."""
    message = await receive()
    if message["type"] != "websocket.connect" or "websocket.http.response" not in scope.get("extensions", {}):
        return await send({"type": "websocket.close", "code": 1008})
    body = json.dumps(foreign_body(403, "this service has no WebSocket endpoints; the API is plain HTTP "
                                        "(POST /emotion)")).encode()
    await send({"type": "websocket.http.response.start", "status": 403,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "websocket.http.response.body", "body": body})


async def _send_shaped(send, start, body: bytes, scope, code: str | None = None) -> None:
    status = start["status"]
    if not _is_shaped(body):
        detail = "" if status >= 500 else _detail(body)
        shaped = foreign_body(status, detail)
        if code:
            shaped["code"] = code
        body = json.dumps(shaped).encode()
    headers = [(k, v) for k, v in start.get("headers", [])
               if k.lower() not in (b"content-type", b"content-length")]
    headers += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
