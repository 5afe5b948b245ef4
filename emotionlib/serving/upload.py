"""ASGI guard in front of the upload routes: deadlines, limits and multipart checks.

Per request on a guarded route (``ROUTES``: one small ``FormSpec`` per path, so a new
endpoint is a new entry, not new code):

1. Uploads in progress are counted apart from requests being processed: at most
   ``max_uploads`` bodies arrive at once, and all the bodies the worker holds (arriving or
   being processed) add up to at most ``max_bytes_in_progress`` (503 ``overloaded`` above
   either, checked against Content-Length first, then as bytes arrive; a spooled body counts
   too: its temporary files may be in memory, and it holds them until its request ends), and
   each must arrive within ``timeout_s`` and at an average of at least ``min_bytes_per_s``
   after the first ``grace_s`` seconds (408 ``incomplete_upload`` otherwise). A client that
   trickles its body therefore holds an upload place for seconds, never a processing slot.
2. The body (at most ``max_bytes``, 413 above) is parsed in memory, or, for the route's
   ``spool`` fields (videos), streamed into private temporary files (spool.py), and checked
   against the route's FormSpec (400 with a precise code).
3. Only then is a processing slot taken (``max_processing``; 503 ``overloaded`` when all
   are busy) and the untouched body (a spooled form's: its text fields and a token per
   file) handed to BentoML. BentoML's own ``max_concurrency``
   is not used: it counts a request from its first header, uploads included.

Every rejection is an answer of emotionlib.serving.errors (the one JSON error shape).
Photos stay in memory:
``patches.keep_uploads_in_memory`` stops starlette from spooling large parts to temporary files,
and ``UploadedBytes`` (the handler's parameter type) hands a part to the handler as bytes,
instead of BentoML's default for ``Path`` parameters (a copy in a temporary file).
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Annotated, Callable, Mapping

import anyio
from pydantic import WrapValidator
from starlette.datastructures import Headers, UploadFile
from starlette.formparsers import MultiPartParser

from emotionlib.errors import EmotionError, InputError
from emotionlib.serving.errors import reject
from emotionlib.serving.spool import SpoolingForm

BOOL_VALUES = {"true": True, "1": True, "yes": True, "on": True,
               "false": False, "0": False, "no": False, "off": False}
# The longest text field: room for the most boxes a request may give (1,000 at the highest
# EMOTION_MAX_FACES_PER_IMAGE, about 40 characters each); anything longer is refused by name.
MAX_TEXT_CHARS = 64 * 1024


@dataclass(frozen=True)
class FormSpec:
    """The multipart fields one route accepts.

    files: file field -> (fewest, most) parts; the first one is the main field, named in
    the ``missing_field`` message. bools: text fields that must be a boolean spelling.
    texts: other text fields, passed through for the handler to validate. max_bytes: this
    route's body limit, when not UploadLimits.max_bytes. spool: file fields streamed into
    private temporary files as they arrive (spool.py; the handler's parameter is
    spool.UploadedFile) instead of read into memory. stop_when_gone: the handler is cancelled
    when the client disconnects before the answer starts (long work for one client: a clip).
    """
    files: Mapping[str, tuple[int, int]]
    bools: frozenset[str] = frozenset()
    texts: frozenset[str] = frozenset()
    max_bytes: int | None = None
    spool: frozenset[str] = frozenset()
    stop_when_gone: bool = False

    @property
    def main(self) -> str:
        return next(iter(self.files))

    @property
    def names(self) -> list[str]:
        return [*self.files, *sorted(self.bools), *sorted(self.texts)]


_ONE_PHOTO = dict(files={"image": (1, 1)}, bools=frozenset({"detect"}),
                  texts=frozenset({"boxes", "min_detection_confidence"}))
ROUTES: dict[str, FormSpec] = {
    "/emotion": FormSpec(**_ONE_PHOTO),
    "/emotion/annotate": FormSpec(**_ONE_PHOTO),
    "/emotion/batch": FormSpec(files={"images": (1, 16)}, bools=frozenset({"detect"}),
                               texts=frozenset({"min_detection_confidence"})),
}


@dataclass(frozen=True)
class UploadLimits:
    max_bytes: int = 10 * 1024 * 1024
    timeout_s: float = 30.0
    min_bytes_per_s: float = 16 * 1024
    grace_s: float = 5.0
    max_uploads: int = 64
    max_processing: int = 32
    max_bytes_in_progress: int = 256 * 1024 * 1024

    @classmethod
    def from_settings(cls, limits) -> "UploadLimits":
        """From the service's limits (emotionlib.serving.settings.Limits)."""
        return cls(max_bytes=limits.max_upload_bytes, timeout_s=limits.upload_timeout_s,
                   min_bytes_per_s=limits.upload_min_kib_s * 1024, grace_s=limits.upload_grace_s,
                   max_uploads=limits.max_uploads_in_progress, max_processing=limits.max_requests_in_progress,
                   max_bytes_in_progress=limits.max_upload_bytes_in_progress)


def parse_bool(name: str, value: str) -> bool:
    try:
        return BOOL_VALUES[value.strip().lower()]
    except KeyError:
        raise InputError("invalid_field", f"field {name!r} must be true or false "
                         f"(also 1/0, yes/no, on/off), got {value[:40]!r}") from None


class _InMemoryParser(MultiPartParser):
    """starlette's multipart parser with file parts kept in memory (the body is bounded)."""
    spool_max_size = 2**31


def _read_in_memory(value, handler):
    if isinstance(value, UploadFile):
        value.file.seek(0)
        return value.file.read()
    if isinstance(value, bytes):
        return value
    if isinstance(value, PurePath):  # an in-process call with a file on disk
        return Path(value).read_bytes()
    return handler(value)


# A file parameter of a BentoML API that arrives as bytes, never written to disk. It is
# still declared as a Path, so BentoML documents and parses it as a multipart file field.
UploadedBytes = Annotated[Path, WrapValidator(_read_in_memory)]


def overloaded(what: str) -> EmotionError:
    return EmotionError("overloaded", f"the server is busy ({what}); retry in a moment")


class UploadGuard:
    def __init__(self, app, routes: Mapping[str, FormSpec] | None = None, limits: UploadLimits = UploadLimits(),
                 on_idle=None, idle_delay_s: float = 0.0):
        """on_idle: called once no request has been in progress for idle_delay_s (e.g. to return
        memory: that work stalls the event loop, so it must not run between requests of steady
        traffic; measured: sequential requests stalled 1.3-1.9 s every ~20 requests when it ran
        1 s after every request)."""
        self.app = app
        self.routes = dict(ROUTES if routes is None else routes)
        self.limits = limits
        self.on_idle = on_idle
        self.idle_delay_s = idle_delay_s
        self.uploading = 0
        self.processing = 0
        self.body_bytes = 0  # of the bodies arriving or being processed
        self.started = 0  # guarded requests so far: an idle period is over when it changes

    def _after_request(self) -> None:
        if self.on_idle is None or self.processing or self.uploading:
            return
        if self.idle_delay_s <= 0:
            self.on_idle()
            return
        started = self.started

        def fire():
            if self.started == started:  # no request since: still idle
                self.on_idle()

        asyncio.get_running_loop().call_later(self.idle_delay_s, fire)

    async def __call__(self, scope, receive, send):
        spec = self.routes.get(scope["path"].rstrip("/") or "/") if scope["type"] == "http" else None
        if spec is None or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        self.started += 1
        try:
            return await self._guarded(scope, receive, send, spec)
        finally:  # after every guarded request, refused ones included (they may hold big uploads)
            self._after_request()

    async def _guarded(self, scope, receive, send, spec):
        held = [0]  # this request's body bytes counted in self.body_bytes (in memory or spooled), until it ends
        try:
            return await self._admitted(scope, receive, send, spec, held)
        finally:
            self.body_bytes -= held[0]

    async def _admitted(self, scope, receive, send, spec, held):
        # A spooled form's files live until the request's call returns (a task's: after it ran).
        with contextlib.ExitStack() as stack:
            try:
                if self.uploading >= self.limits.max_uploads:
                    raise overloaded(f"{self.uploading} uploads in progress")
                self.uploading += 1
                try:
                    _check_media_type(scope)
                    max_bytes = spec.max_bytes or self.limits.max_bytes
                    if spec.spool:  # into private files as it arrives
                        form = SpoolingForm(_media(scope)[1], spec.spool)
                        stack.callback(form.close)
                        await self._receive(scope, receive, max_bytes, held, form.write)
                    else:  # into memory
                        chunks: list[bytes] = []
                        await self._receive(scope, receive, max_bytes, held, chunks.append)
                        pending = [b"".join(chunks)]
                        del chunks
                finally:
                    self.uploading -= 1
                if spec.spool:
                    _check_fields(form.form(), spec)
                    body, content_type = form.finish()
                    scope, pending = _forwarded(scope, content_type, len(body)), [body]
                    del body
                else:
                    await check_form(scope, pending[0], spec)
                if self.processing >= self.limits.max_processing:
                    raise overloaded(f"{self.processing} requests in progress")
            except EmotionError as error:
                return await reject(error, scope, receive, send)
            return await self._process(scope, receive, send, pending, spec.stop_when_gone)

    async def _process(self, scope, receive, send, pending: list[bytes], stop_when_gone: bool = False):
        """The request on to the app with its body (handed over once: BentoML's parse then
        holds the only copy), in a processing slot."""
        async def replay():
            if pending:
                return {"type": "http.request", "body": pending.pop(), "more_body": False}
            return await receive()

        self.processing += 1
        try:
            if not stop_when_gone:
                return await self.app(normalized(scope), replay, send)
            return await _stopped_when_gone(self.app, normalized(scope), replay, receive, send)
        finally:
            self.processing -= 1

    def _hold(self, held: list[int], nbytes: int) -> None:
        """Count nbytes more of this request's body (held[0]) in the worker's bodies, or 503."""
        if self.body_bytes + nbytes > self.limits.max_bytes_in_progress:
            raise overloaded(f"request bodies in progress hold {self.body_bytes / (1024 * 1024):,.0f} MiB")
        self.body_bytes += nbytes
        held[0] += nbytes

    @staticmethod
    def _too_large(size: str, max_bytes: int) -> InputError:
        mib = max_bytes / (1024 * 1024)
        return InputError("upload_too_large", f"the upload is {size}; the limit is {mib:g} MiB")

    async def _receive(self, scope, receive, max_bytes: int, held: list[int], consume: Callable[[bytes], None]) -> None:
        """The body, chunk by chunk to ``consume``, within the limits (InputError otherwise); its
        bytes counted in ``held`` and the worker's bodies in progress as they are promised or come."""
        headers = Headers(scope=scope)
        declared = headers.get("content-length")
        declared = declared.strip() if declared else ""
        if declared.isascii() and declared.isdigit():
            if len(declared) > 18 or int(declared) > max_bytes:  # 18 digits: int() of any length is not needed
                raise self._too_large(f"{declared[:40]} bytes" if len(declared) > 18 else f"{int(declared):,} bytes",
                                      max_bytes)
            self._hold(held, int(declared))  # the whole body's room, before any of it arrives
        limits, started = self.limits, time.monotonic()
        size = 0
        while True:
            # The average rate may not drop below the minimum once the grace time is over.
            allowed = min(limits.timeout_s, limits.grace_s + size / limits.min_bytes_per_s)
            wait = started + allowed - time.monotonic()
            message = None
            if wait > 0:
                with anyio.move_on_after(wait):
                    message = await receive()
            if message is None:
                raise InputError("incomplete_upload",
                                 f"the upload did not arrive in time: {size:,} bytes in {allowed:.0f} s "
                                 f"(the body must arrive within {limits.timeout_s:g} s, at least "
                                 f"{limits.min_bytes_per_s / 1024:g} KiB/s after the first {limits.grace_s:g} s)")
            if message["type"] == "http.disconnect":
                raise InputError("incomplete_upload", "the client disconnected during the upload")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > max_bytes:
                raise self._too_large(f"over {max_bytes:,} bytes", max_bytes)
            if size > held[0]:  # more than declared (or nothing declared): count it as it comes
                self._hold(held, size - held[0])
            consume(chunk)
            if not message.get("more_body", False):
                return


async def _stopped_when_gone(app, scope, replay, receive, send) -> None:
    """Run the app (its body from ``replay``), cancelled if the client disconnects
    (``receive``, after the body) before its answer starts."""
    answering, failure = False, None

    async def watched_send(message):
        nonlocal answering
        answering = answering or message["type"] == "http.response.start"
        await send(message)

    async with anyio.create_task_group() as group:
        async def watch():
            while (await receive())["type"] != "http.disconnect":
                pass
            if not answering:
                group.cancel_scope.cancel()

        async def run():
            nonlocal failure
            try:
                await app(scope, replay, watched_send)
            except Exception as error:  # noqa: BLE001 - raised below as itself, not in an ExceptionGroup
                failure = error
            group.cancel_scope.cancel()  # done: stop watching

        group.start_soon(watch)
        group.start_soon(run)
    if failure is not None:
        raise failure


def _check_media_type(scope) -> None:
    media_type = _media(scope)[0]
    if media_type != "multipart/form-data":
        raise InputError("unsupported_media_type", "send multipart/form-data with the photo or video as a file "
                         f"field (got Content-Type {media_type[:60] or 'none'!r})")


def _media(scope) -> tuple[str, str]:
    """(media type in lower case, the whole Content-Type) of a request."""
    value = Headers(scope=scope).get("content-type", "")
    return value.split(";")[0].strip().lower(), value


# Not passed on with a spooled form: BentoML keeps a task's request (its headers too) in its
# result store, and the key and cookies have been checked by then.
_NOT_FORWARDED = {b"authorization", b"cookie", b"content-type", b"content-length", b"transfer-encoding"}


def _forwarded(scope, content_type: str, length: int):
    """The scope of a spooled form's request as BentoML gets it: the new body's Content-Type and
    Content-Length, without the credentials."""
    headers = [(k, v) for k, v in scope["headers"] if k.lower() not in _NOT_FORWARDED]
    headers += [(b"content-type", content_type.encode("latin-1")), (b"content-length", str(length).encode())]
    return {**scope, "headers": headers}


def normalized(scope):
    """The scope with its Content-Type media type in lower case (media types are
    case-insensitive; BentoML picks its parser by comparing the exact string)."""
    headers = []
    for name, value in scope["headers"]:
        if name.lower() == b"content-type":
            media, sep, params = value.partition(b";")
            value = media.strip().lower() + sep + params
        headers.append((name, value))
    return {**scope, "headers": headers}


async def check_form(scope, body: bytes, spec: FormSpec) -> None:
    """Parse the multipart body in memory and check it against the route's FormSpec."""
    async def stream():
        yield body

    # max_part_size (text parts only): the body's own bound; _check_fields names a field that is too long.
    parser = _InMemoryParser(Headers(scope=normalized(scope)), stream(), max_fields=16,
                             max_files=max(16, sum(most for _, most in spec.files.values()) + 1),
                             max_part_size=max(len(body), MAX_TEXT_CHARS) + 1)
    try:
        form = await parser.parse()
    except Exception as exc:  # noqa: BLE001 - starlette raises MultiPartException, ValueError, KeyError ...
        detail = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        raise InputError("malformed_multipart",
                         f"the multipart/form-data body cannot be parsed: {detail[:200]}") from None
    try:
        _check_fields(form, spec)
    finally:
        await form.close()


def _check_fields(form, spec: FormSpec) -> None:
    names = list(dict.fromkeys(form.keys()))
    unknown = [name for name in names if name not in spec.names]
    if spec.main not in names:
        hint = f" (got {unknown})" if unknown else ""
        raise InputError("missing_field", f"missing field {spec.main!r}: send the photo as a file field "
                         f"named {spec.main!r}{hint}")
    if unknown:
        raise InputError("unknown_field", f"unexpected form field(s) {unknown}; this endpoint takes "
                         f"{spec.names}")
    for name, (fewest, most) in spec.files.items():
        parts = form.getlist(name)
        if not fewest <= len(parts) <= most:
            count = f"exactly {most}" if fewest == most else f"{fewest} to {most}"
            raise InputError("too_many_files", f"send {count} {name!r} file(s), got {len(parts)}")
        if any(not isinstance(part, UploadFile) for part in parts):
            raise InputError("not_a_file", f"field {name!r} must be a file upload "
                             f"(curl: -F \"{name}=@photo.jpg\")")
    for name in (spec.bools | spec.texts) & set(names):
        values = form.getlist(name)
        if len(values) != 1 or not isinstance(values[0], str):
            raise InputError("invalid_field", f"field {name!r} must be given once, as text")
        if len(values[0]) > MAX_TEXT_CHARS:
            raise InputError("invalid_field", f"field {name!r} is {len(values[0]):,} characters long; at most "
                             f"{MAX_TEXT_CHARS:,} are accepted")
        if name in spec.bools:
            parse_bool(name, values[0])
        readable_by_bentoml(name, values[0])


def readable_by_bentoml(name: str, value: str) -> None:
    """400 for a text field that BentoML's form parsing would answer 500 for.

    BentoML reads every text field with json.loads, keeping the text when it is not JSON,
    and catches only JSONDecodeError: an integer of more than 4,300 digits (ValueError) or
    lists nested thousands deep (RecursionError) escaped as 500s.
    """
    try:
        json.loads(value)
    except json.JSONDecodeError:
        pass
    except (ValueError, RecursionError) as exc:
        reason = "nested too deep" if isinstance(exc, RecursionError) else str(exc).split(":")[0].lower()
        raise InputError("invalid_field", f"field {name!r} cannot be read ({reason})") from None
