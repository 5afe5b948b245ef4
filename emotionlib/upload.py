"""ASGI guard in front of POST /emotion: size limit and multipart checks.

BentoML's own form parser answers 500 to some malformed uploads (bentoml 1.4.40
json.loads() a binary part it does not know, raising UnicodeDecodeError), and it reads
uploads of any size. This middleware buffers the body up to the limit, checks the form
the way the API documents it, and only then hands the untouched bytes to BentoML.
Every rejection is a JSON body of the InputError shape.
"""
from __future__ import annotations

from starlette.datastructures import Headers, UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse

from emotionlib.errors import InputError
from emotionlib.metrics import metrics

FILE_FIELD = "image"
BOOL_FIELDS = {"detect"}
BOOL_VALUES = {"true": True, "1": True, "yes": True, "on": True,
               "false": False, "0": False, "no": False, "off": False}


def parse_bool(name: str, value: str) -> bool:
    try:
        return BOOL_VALUES[value.strip().lower()]
    except KeyError:
        raise InputError(400, "invalid_field", f"field {name!r} must be true or false, got {value[:40]!r}") from None


class UploadGuard:
    def __init__(self, app, path: str = "/emotion", max_bytes: int = 10 * 1024 * 1024):
        self.app = app
        self.path = path
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"].rstrip("/") != self.path or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        try:
            body = await self._check(scope, receive)
        except InputError as error:
            metrics().rejected.labels(reason=error.code).inc()
            response = JSONResponse(error.to_dict(), status_code=error.status)
            if error.status == 413:
                response.headers["Connection"] = "close"
            return await response(scope, receive, send)

        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)

    def _too_large(self, size: str) -> InputError:
        mb = self.max_bytes / (1024 * 1024)
        return InputError(413, "upload_too_large", f"the upload is {size}; the limit is {mb:g} MB")

    async def _check(self, scope, receive) -> bytes:
        headers = Headers(scope=scope)
        media_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type != "multipart/form-data":
            raise InputError(415, "unsupported_media_type",
                             f"send multipart/form-data with the photo in a file field named {FILE_FIELD!r} "
                             f"(got Content-Type {media_type or 'none'!r})")
        declared = headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.max_bytes:
            raise self._too_large(f"{int(declared):,} bytes")
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise InputError(400, "incomplete_upload", "the client disconnected during the upload")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                raise self._too_large(f"over {self.max_bytes:,} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        await self._check_form(scope, body)
        return body

    async def _check_form(self, scope, body: bytes) -> None:
        sent = False

        async def once():
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        request = Request(scope, once)
        try:
            form = await request.form(max_files=4, max_fields=16)
        except Exception as exc:  # starlette raises MultiPartException / HTTPException / ValueError
            detail = getattr(exc, "detail", None) or getattr(exc, "message", None) or str(exc)
            raise InputError(400, "malformed_multipart", f"the multipart/form-data body cannot be parsed: {detail}") from None
        try:
            names = list(form.keys())
            unknown = [name for name in names if name != FILE_FIELD and name not in BOOL_FIELDS]
            if FILE_FIELD not in names:
                hint = f" (got {unknown})" if unknown else ""
                raise InputError(400, "missing_field",
                                 f"missing field {FILE_FIELD!r}: send the photo as a file field named "
                                 f"{FILE_FIELD!r}{hint}")
            if unknown:
                raise InputError(400, "unknown_field", f"unexpected form field(s) {unknown}; "
                                 f"the API takes {FILE_FIELD!r} and optionally 'detect'")
            images = form.getlist(FILE_FIELD)
            if len(images) != 1:
                raise InputError(400, "too_many_files", f"send exactly one {FILE_FIELD!r} file, got {len(images)}")
            if not isinstance(images[0], UploadFile):
                raise InputError(400, "not_a_file", f"field {FILE_FIELD!r} must be a file upload "
                                 f"(curl: -F \"{FILE_FIELD}=@photo.jpg\")")
            for name in BOOL_FIELDS & set(names):
                values = form.getlist(name)
                if len(values) != 1 or not isinstance(values[0], str):
                    raise InputError(400, "invalid_field", f"field {name!r} must be given once, as text")
                parse_bool(name, values[0])
        finally:
            await form.close()
