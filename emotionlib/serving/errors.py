"""One error shape for every answer of 400 and above: ``{"error", "code", "status"}``.

Our own code raises InputError, already in that shape. The layers around it answer in
their own ways: starlette's router (404, 405 as plain text), BentoML (``{"error": ...}``
for its validation errors, a traceback page for a crash) and uvicorn (plain text 400 for
a request it cannot parse). ``ErrorShape`` rewrites the ASGI answers; ``json_http_errors_in_uvicorn``
does the same for uvicorn's own 400, which never reaches the application, and
``access_log_survives_any_header`` keeps BentoML's access log from dropping an answer.
WebSocket handshakes (there is no WebSocket endpoint) get a 403 in the shape.
"""
from __future__ import annotations

import json
import logging

from emotionlib.errors import InputError

logger = logging.getLogger("emotion")

CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
         405: "method_not_allowed", 408: "incomplete_upload", 413: "upload_too_large",
         415: "unsupported_media_type", 422: "invalid_field", 429: "overloaded", 500: "internal_error",
         503: "overloaded", 504: "timeout"}
MESSAGES = {404: "no such path; the API is POST /emotion (see /docs.json)",
            405: "method not allowed on this path",
            503: "the service is not ready or is overloaded; retry in a moment",
            500: "internal error; the server logged it"}


def error_body(status: int, detail: str = "") -> dict:
    """The shaped body for an answer of ``status``; ``detail`` is the other layer's text."""
    message = MESSAGES.get(status) or detail.strip() or f"HTTP {status}"
    if status in (404, 405) and detail.strip() and detail.strip() not in ("Not Found", "Method Not Allowed"):
        message = detail.strip()
    code = CODES.get(status, "client_error" if status < 500 else "server_error")
    return InputError(status, code, message[:500]).to_dict()


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
    body = json.dumps(error_body(403, "this service has no WebSocket endpoints; the API is plain HTTP "
                                      "(POST /emotion)")).encode()
    await send({"type": "websocket.http.response.start", "status": 403,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "websocket.http.response.body", "body": body})


async def _send_shaped(send, start, body: bytes, scope, code: str | None = None) -> None:
    status = start["status"]
    if not _is_shaped(body):
        detail = "" if status >= 500 else _detail(body)
        shaped = error_body(status, detail)
        if code:
            shaped["code"] = code
        body = json.dumps(shaped).encode()
    headers = [(k, v) for k, v in start.get("headers", [])
               if k.lower() not in (b"content-type", b"content-length")]
    headers += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def _json_400(self, msg: str) -> None:
    """uvicorn's send_400_response, answering in the JSON shape (same status, same close)."""
    body = json.dumps(InputError(400, "malformed_http", f"the request is not valid HTTP/1.1: {msg}").to_dict())
    head = (f"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n")
    self.transport.write(head.encode("ascii") + body.encode("ascii"))
    self.transport.close()


_LOGGED_HEADERS = (b"content-type", b"content-length")
_REQUEST_HEADERS = "emotion.request_headers"


def _utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def access_log_survives_any_header() -> None:
    """Keep BentoML's access log from dropping answers to requests whose Content-Type or
    Content-Length is not UTF-8.

    It decodes both with bytes.decode() as the answer goes out; a byte like 0xE9 raised
    there, after the status line, and the client's connection was closed without an answer.
    The replacement shows the access log those values escaped (``\\xe9``) and hands the
    application the request's own headers. Must run before the app is built (service import).
    """
    from bentoml._internal.server.http import access

    base = access.AccessLogMiddleware
    if getattr(base, "any_header", False):
        return

    class AnyHeaderAccessLog(base):
        any_header = True

        def __init__(self, app, **options):
            async def with_request_headers(scope, receive, send):
                if _REQUEST_HEADERS in scope:
                    scope = {**scope, "headers": scope[_REQUEST_HEADERS]}
                    del scope[_REQUEST_HEADERS]
                return await app(scope, receive, send)

            super().__init__(with_request_headers, **options)

        async def __call__(self, scope, receive, send):
            headers = scope.get("headers", [])
            if any(name in _LOGGED_HEADERS and not _utf8(value) for name, value in headers):
                logged = [(name, value.decode("utf-8", "backslashreplace").encode() if name in _LOGGED_HEADERS
                           else value) for name, value in headers]
                scope = {**scope, "headers": logged, _REQUEST_HEADERS: headers}
            return await super().__call__(scope, receive, send)

    access.AccessLogMiddleware = AnyHeaderAccessLog


def json_http_errors_in_uvicorn() -> None:
    """Make every uvicorn HTTP protocol answer unparsable requests in the JSON shape."""
    import importlib

    for module, name in (("uvicorn.protocols.http.h11_impl", "H11Protocol"),
                         ("uvicorn.protocols.http.httptools_impl", "HttpToolsProtocol"),
                         ("uvicorn.protocols.http.zttp_impl", "ZttpProtocol")):
        try:
            protocol = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):  # an optional parser that is not installed
            continue
        if hasattr(protocol, "send_400_response"):
            protocol.send_400_response = _json_400
