"""Uploads streamed into private temporary files as they arrive (videos: FFmpeg reads files, and
a clip of up to EMOTION_MAX_VIDEO_MB is not held in memory), for the upload guard.

``SpoolingForm`` takes the body chunk by chunk (python-multipart's streaming parser, the one
starlette uses): the parts of the route's file fields go straight into files of
emotionlib.video.tempfiles (0600 in a per-user 0700 folder, removed on every way out), text
fields are kept (at most 64 KiB each). ``finish()`` checks the form against the route's
FormSpec and gives the body BentoML gets instead: the same text fields, and in place of each
file a part holding a random token (32 hex digits) that ``UploadedFile`` (the handler's
parameter type) turns into the file's path. So the clip never passes through BentoML's form
parsing, and what BentoML keeps of a request (a task's input in its result store,
BENTOML_HOME/task_result.db) holds the fields and a token, not the clip. The files and
tokens live until ``close()``: the guard closes the form when the request's ASGI call
returns, which for a task is after the task has run (BentoML runs a submitted task in the
submitting request's call, once its answer is sent). A process killed mid-request leaves its
files behind; tempfiles.remove_stale deletes them when the next process starts.
"""
from __future__ import annotations

import contextlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Annotated

from pydantic import WrapValidator
from starlette.datastructures import FormData, UploadFile

from emotionlib.errors import InputError
from emotionlib.video import tempfiles

MAX_TEXT_BYTES = 64 * 1024
MAX_PARTS = 16
# token -> the spooled file, for the requests in progress in this process
_FILES: dict[str, Path] = {}


@dataclass
class _Part:
    name: str = ""
    filename: str | None = None
    headers: list = None
    data: bytearray = None
    fd: int | None = None
    path: Path | None = None
    size: int = 0


class SpoolingForm:
    """One multipart body, streamed: ``write(chunk)`` as it arrives, then ``finish()``;
    ``close()`` removes the files.

    spooled: the file fields written to files; max_parts: most parts of any kind.
    """

    def __init__(self, content_type: str, spooled: frozenset[str], max_parts: int = MAX_PARTS):
        from python_multipart.multipart import MultipartParser, parse_options_header

        _, params = parse_options_header(content_type)
        boundary = params.get(b"boundary")
        if not boundary:
            raise InputError("malformed_multipart", "the multipart/form-data body has no boundary")
        self.spooled, self.max_parts = spooled, max_parts
        self.parts: list[_Part] = []
        self._stack = contextlib.ExitStack()
        self._header_name, self._header_value = b"", b""
        self.tokens: dict[str, str] = {}  # field -> token
        callbacks = {"on_part_begin": self._begin, "on_part_data": self._data, "on_part_end": self._end,
                     "on_header_field": self._field, "on_header_value": self._value,
                     "on_header_end": self._header_end, "on_headers_finished": self._headers_done}
        self._parser = MultipartParser(boundary, callbacks)

    # ----- python-multipart's callbacks -----

    def _begin(self) -> None:
        if len(self.parts) >= self.max_parts:
            raise InputError("malformed_multipart", f"the form has more than {self.max_parts} parts")
        self.parts.append(_Part(headers=[], data=bytearray()))

    def _field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        self.parts[-1].headers.append((self._header_name.lower(), self._header_value))
        self._header_name, self._header_value = b"", b""

    def _headers_done(self) -> None:
        from python_multipart.multipart import parse_options_header

        part = self.parts[-1]
        disposition = dict(part.headers).get(b"content-disposition", b"")
        _, options = parse_options_header(disposition)
        if b"name" not in options:
            raise InputError("malformed_multipart", "a part of the form has no name")
        part.name = options[b"name"].decode("utf-8", "replace")
        if b"filename" in options:
            part.filename = options[b"filename"].decode("utf-8", "replace")
        if part.filename is not None and part.name in self.spooled:
            path = self._stack.enter_context(tempfiles.temporary_file(".upload"))
            part.path, part.fd = path, os.open(path, os.O_WRONLY)
            self._stack.callback(os.close, part.fd)

    def _data(self, data: bytes, start: int, end: int) -> None:
        part = self.parts[-1]
        part.size += end - start
        if part.fd is not None:
            view = memoryview(data)[start:end]
            while view:
                view = view[os.write(part.fd, view):]
        elif part.filename is not None:
            pass  # a file field the route does not take: the form's check refuses it by name
        elif part.size > MAX_TEXT_BYTES:
            raise InputError("invalid_field", f"field {part.name!r} is over {MAX_TEXT_BYTES // 1024} KiB")
        else:
            part.data += data[start:end]

    def _end(self) -> None:
        pass

    # ----- use -----

    def write(self, chunk: bytes) -> None:
        """Parse a chunk of the body (file data goes to its file at once)."""
        try:
            self._parser.write(chunk)
        except InputError:
            raise
        except Exception as exc:  # noqa: BLE001 - python-multipart raises its own errors and ValueError
            raise InputError("malformed_multipart", f"the multipart/form-data body cannot be parsed: "
                             f"{str(exc)[:200] or type(exc).__name__}") from None

    def form(self) -> FormData:
        """The form as starlette would give it (files as empty UploadFiles), to check it."""
        import io

        return FormData([(p.name, UploadFile(io.BytesIO(), filename=p.filename) if p.filename is not None
                          else p.data.decode("utf-8", "replace")) for p in self.parts])

    def finish(self) -> tuple[bytes, str]:
        """The body that goes on (text fields as sent, each spooled file as its token) and its
        Content-Type. Call after the last chunk and the form's checks."""
        try:
            self._parser.finalize()
        except Exception as exc:  # noqa: BLE001
            raise InputError("malformed_multipart", f"the multipart/form-data body ends early: {exc}") from None
        boundary = secrets.token_hex(16)
        out = bytearray()
        for part in self.parts:
            out += f"--{boundary}\r\n".encode()
            if part.path is not None:
                token = secrets.token_hex(16)
                _FILES[token] = part.path
                self._stack.callback(_FILES.pop, token, None)
                self.tokens[part.name] = token
                out += (f'Content-Disposition: form-data; name="{part.name}"; filename="upload"\r\n'
                        "Content-Type: application/octet-stream\r\n\r\n").encode() + token.encode()
            else:
                out += b"".join(name + b": " + value + b"\r\n" for name, value in part.headers) + b"\r\n"
                out += part.data if part.filename is None else b""
            out += b"\r\n"
        out += f"--{boundary}--\r\n".encode()
        return bytes(out), f"multipart/form-data; boundary={boundary}"

    def close(self) -> None:
        """Remove the files and forget their tokens (idempotent)."""
        self._stack.close()


def spooled_path(token: str) -> Path | None:
    return _FILES.get(token)


def _spooled(value, handler):
    if isinstance(value, UploadFile):
        value.file.seek(0)
        token = value.file.read(64).decode("ascii", "replace")
        path = _FILES.get(token)
        if path is None:
            raise ValueError("the uploaded file is no longer here (a task's clip is removed when the task ends)")
        return path
    if isinstance(value, PurePath):  # an in-process call with a file on disk: used in place
        return Path(value)
    return handler(value)


# A file parameter of a BentoML API whose upload the guard streamed into a private temporary
# file (FormSpec.spool): the handler gets the file's path. Declared as a Path, so BentoML
# documents and parses it as a multipart file field.
UploadedFile = Annotated[Path, WrapValidator(_spooled)]
