"""The upload guard's spooled routes (emotionlib/serving/spool.py) around a small app: the file
streams into a private temporary file, the app gets a small body with a token for it and no
credentials, and the file is gone when the request is over, however it ends."""
from __future__ import annotations

import os
import stat

import pytest
from pydantic import TypeAdapter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from emotionlib.serving.spool import UploadedFile
from emotionlib.serving.upload import FormSpec, UploadGuard, UploadLimits
from emotionlib.video import tempfiles

SPEC = FormSpec(files={"video": (1, 1)}, bools=frozenset({"detect"}), texts=frozenset({"fps"}),
                max_bytes=4 * 2**20, spool=frozenset({"video"}))
CLIP = os.urandom(3 * 2**20 + 17)  # 3 MiB: over starlette's 1 MiB in-memory part size


def app_with(seen: dict, fail: bool = False, limits=UploadLimits()):
    async def handler(request: Request):
        body = await request.body()
        form = await request.form()
        path = TypeAdapter(UploadedFile).validate_python(form["video"])
        seen.update(body=body, headers=dict(request.headers), fields={k: v for k, v in form.items() if k != "video"},
                    path=path, mode=stat.S_IMODE(os.stat(path).st_mode), data=path.read_bytes())
        if fail:
            raise RuntimeError("the handler failed")
        return JSONResponse({"ok": True})

    return UploadGuard(Starlette(routes=[Route("/video", handler, methods=["POST"])]), {"/video": SPEC}, limits)


def post(client, data=CLIP, **form):
    return client.post("/video", files={"video": ("holiday.mp4", data, "video/mp4")}, data=form or None,
                       headers={"Authorization": "Bearer a-secret-key-of-the-client", "Cookie": "session=42"})


def test_the_file_arrives_in_a_private_file_and_the_app_gets_a_small_body():
    seen = {}
    with TestClient(app_with(seen)) as client:
        response = post(client, fps="2", detect="no")
    assert response.status_code == 200, response.text
    assert seen["data"] == CLIP and seen["mode"] == 0o600
    assert seen["path"].parent == tempfiles.folder()
    assert len(seen["body"]) < 1024 and CLIP[1000:1064] not in seen["body"]
    assert seen["fields"] == {"fps": "2", "detect": "no"}
    assert "authorization" not in seen["headers"] and "cookie" not in seen["headers"]
    assert int(seen["headers"]["content-length"]) == len(seen["body"])
    assert not seen["path"].exists() and tempfiles.leftovers() == []


def test_the_file_is_removed_when_the_app_fails():
    seen = {}
    with TestClient(app_with(seen, fail=True), raise_server_exceptions=False) as client:
        assert post(client).status_code == 500
    assert seen["data"] == CLIP and not seen["path"].exists() and tempfiles.leftovers() == []


@pytest.mark.parametrize("case, code", [
    ("too large", "upload_too_large"),
    ("unknown field", "unknown_field"),
    ("missing file", "missing_field"),
    ("text for the file", "not_a_file"),
    ("bad bool", "invalid_field"),
    ("not multipart", "unsupported_media_type"),
    ("broken multipart", "malformed_multipart"),
    ("huge text field", "invalid_field"),
])
def test_refused_forms_leave_no_file(case, code):
    seen = {}
    with TestClient(app_with(seen)) as client:
        if case == "too large":
            response = post(client, os.urandom(4 * 2**20 + 1))
        elif case == "unknown field":
            response = post(client, colour="blue")
        elif case == "missing file":
            response = client.post("/video", files={"image": ("a.mp4", CLIP, "video/mp4")})
        elif case == "text for the file":
            response = client.post("/video", data={"video": "not a file"},
                                   files={"fps": ("x.txt", b"2", "text/plain")})
        elif case == "bad bool":
            response = post(client, detect="perhaps")
        elif case == "not multipart":
            response = client.post("/video", content=CLIP, headers={"Content-Type": "video/mp4"})
        elif case == "broken multipart":
            response = client.post("/video", content=b"--xyz\r\nno headers end" + CLIP[:1000],
                                   headers={"Content-Type": "multipart/form-data; boundary=xyz"})
        else:
            response = post(client, fps="1" * 70_000)
    assert 400 <= response.status_code < 500 and response.json()["code"] == code, response.text
    assert seen == {} and tempfiles.leftovers() == []


def test_a_client_gone_mid_upload_leaves_no_file():
    import asyncio

    async def scenario():
        messages = [{"type": "http.request", "body": b"--b\r\nContent-Disposition: form-data; name=\"video\"; "
                     b"filename=\"a.mp4\"\r\n\r\n" + CLIP[:200_000], "more_body": True},
                    {"type": "http.disconnect"}]
        sent = []

        async def receive():
            return messages.pop(0)

        async def send(message):
            sent.append(message)

        scope = {"type": "http", "method": "POST", "path": "/video", "headers": [
            (b"content-type", b"multipart/form-data; boundary=b")], "query_string": b""}
        await app_with({})(scope, receive, send)
        return sent

    sent = asyncio.run(scenario())
    assert sent[0]["status"] == 408 and tempfiles.leftovers() == []


def test_a_token_that_is_not_a_spooled_file_is_refused():
    from pydantic import ValidationError
    from starlette.datastructures import UploadFile
    import io

    with pytest.raises(ValidationError, match="no longer here"):
        TypeAdapter(UploadedFile).validate_python(UploadFile(io.BytesIO(b"0" * 32), filename="upload"))


def test_a_client_gone_while_its_clip_is_analysed_stops_the_work_and_removes_the_file():
    """stop_when_gone: the synchronous video routes' handlers are cancelled when the client
    disconnects before the answer starts (a task's route is not: it runs on after its answer)."""
    import asyncio
    import dataclasses

    state = {}

    async def handler(request: Request):
        form = await request.form()
        state["path"] = TypeAdapter(UploadedFile).validate_python(form["video"])
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            state["cancelled"] = True
            raise
        return JSONResponse({})

    app = UploadGuard(Starlette(routes=[Route("/video", handler, methods=["POST"])]),
                      {"/video": dataclasses.replace(SPEC, stop_when_gone=True)})
    body = (b"--b\r\nContent-Disposition: form-data; name=\"video\"; filename=\"a.mp4\"\r\n\r\n" + CLIP[:5000]
            + b"\r\n--b--\r\n")

    async def scenario():
        messages = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive():
            if messages:
                return messages.pop(0)
            await asyncio.sleep(0.3)
            return {"type": "http.disconnect"}

        sent = []

        async def send(message):
            sent.append(message)

        scope = {"type": "http", "method": "POST", "path": "/video", "query_string": b"",
                 "headers": [(b"content-type", b"multipart/form-data; boundary=b")]}
        await asyncio.wait_for(app(scope, receive, send), 5)
        return sent

    assert asyncio.run(scenario()) == []
    assert state["cancelled"] and not state["path"].exists() and tempfiles.leftovers() == []


def test_a_spooled_body_counts_in_the_bodies_in_progress_until_its_request_ends():
    """Its file may be in memory (a tmpfs) and lives until the request ends (a task's: after it
    ran), so it is held as an in-memory body is: while one 3 MiB clip is processed, a second
    that would pass 5 MiB in all is 503 overloaded; afterwards the room is whole again."""
    import asyncio

    import httpx

    async def scenario():
        gate, seen = asyncio.Event(), {}

        async def handler(request: Request):
            await request.form()
            seen["held"] = guard.body_bytes
            await gate.wait()
            return JSONResponse({"ok": True})

        guard = UploadGuard(Starlette(routes=[Route("/video", handler, methods=["POST"])]), {"/video": SPEC},
                            UploadLimits(max_bytes_in_progress=5 * 2**20))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=guard), base_url="http://t") as client:
            first = asyncio.create_task(client.post("/video", files={"video": ("a.mp4", CLIP, "video/mp4")}))
            await asyncio.sleep(0.3)
            refused = await client.post("/video", files={"video": ("b.mp4", CLIP, "video/mp4")})
            gate.set()
            return seen["held"], await first, refused, guard.body_bytes

    held, first, refused, after = asyncio.run(scenario())
    assert len(CLIP) < held < len(CLIP) + 1024  # the clip and its multipart framing, though on disk
    assert first.status_code == 200
    assert refused.status_code == 503 and refused.json()["code"] == "overloaded"
    assert after == 0 and tempfiles.leftovers() == []
