"""ASGI guard in front of POST /emotion: size limit and multipart checks.

BentoML's own form parser answers 500 to some malformed uploads (bentoml 1.4.40
json.loads() a binary part it does not know, raising UnicodeDecodeError), and it reads
uploads of any size. This middleware buffers the body up to the limit, checks the form
the way the API documents it, and only then hands the untouched bytes to BentoML.
Every rejection is a JSON body of the InputError shape.
"""
from __future__ import annotations

from dataclasses import dataclass

from starlette.datastructures import Headers, UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse

from emotionlib.errors import InputError
from emotionlib.metrics import metrics

FILE_FIELD = "image"
BOOL_FIELDS = {"detect"}


@dataclass(frozen=True)
class FormSpec:
    """The fields one route takes: its file field (up to max_files of them), true/false
    fields, and text fields whose value the API itself checks (e.g. ``boxes``)."""
    file_field: str = FILE_FIELD
    max_files: int = 1
    bool_fields: frozenset = frozenset(BOOL_FIELDS)
    text_fields: frozenset = frozenset()

    def names(self) -> list[str]:
        return [self.file_field, *sorted(self.bool_fields | self.text_fields)]
BOOL_VALUES = {"true": True, "1": True, "yes": True, "on": True,
               "false": False, "0": False, "no": False, "off": False}


def parse_bool(name: str, value: str) -> bool:
    try:
        return BOOL_VALUES[value.strip().lower()]
    except KeyError:
        raise InputError(400, "invalid_field", f"field {name!r} must be true or false, got {value[:40]!r}") from None


class UploadGuard:
    def __init__(self, app, path: str = "/emotion", max_bytes: int = 10 * 1024 * 1024, form: FormSpec = FormSpec()):
        self.app = app
        self.path = path
        self.max_bytes = max_bytes
        self.form = form

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
        spec = self.form
        try:
            form = await request.form(max_files=spec.max_files + 4, max_fields=16)
        except Exception as exc:  # starlette raises MultiPartException / HTTPException / ValueError
            detail = getattr(exc, "detail", None) or getattr(exc, "message", None) or str(exc)
            raise InputError(400, "malformed_multipart", f"the multipart/form-data body cannot be parsed: {detail}") from None
        try:
            check_form(form, spec)
        finally:
            await form.close()


def check_form(form, spec: FormSpec) -> None:
    """Raise the InputError for the first problem of a parsed form against ``spec``."""
    field = spec.file_field
    names = list(form.keys())
    unknown = [name for name in names if name not in spec.names()]
    if field not in names:
        hint = f" (got {unknown})" if unknown else ""
        raise InputError(400, "missing_field",
                         f"missing field {field!r}: send the photo as a file field named {field!r}{hint}")
    if unknown:
        raise InputError(400, "unknown_field", f"unexpected form field(s) {unknown}; "
                         f"the API takes {field!r} and optionally {spec.names()[1:]}")
    files = form.getlist(field)
    if len(files) > spec.max_files:
        raise InputError(400, "too_many_files", f"send at most {spec.max_files} {field!r} file(s), got {len(files)}"
                         if spec.max_files > 1 else f"send exactly one {field!r} file, got {len(files)}")
    if not all(isinstance(item, UploadFile) for item in files):
        raise InputError(400, "not_a_file", f"field {field!r} must be a file upload "
                         f"(curl: -F \"{field}=@photo.jpg\")")
    for name in (spec.bool_fields | spec.text_fields) & set(names):
        values = form.getlist(name)
        if len(values) != 1 or not isinstance(values[0], str):
            raise InputError(400, "invalid_field", f"field {name!r} must be given once, as text")
        if name in spec.bool_fields:
            parse_bool(name, values[0])
