"""UploadGuard and ApiKeyGuard as ASGI middleware around a small app (no model needed)."""
from __future__ import annotations

import asyncio
import time

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from emotionlib.errors import InputError
from emotionlib.serving.access import ApiKeyGuard
from emotionlib.serving.upload import FormSpec, UploadGuard, UploadLimits

ROUTES = {"/emotion": FormSpec(files={"image": (1, 1)}, bools=frozenset({"detect"})),
          "/emotion/batch": FormSpec(files={"images": (1, 3)}, texts=frozenset({"boxes"}))}


def app_with(limits=UploadLimits(), gate: asyncio.Event | None = None, api_key=None, on_idle=None,
             idle_delay_s=0.0):
    async def handler(request: Request):
        form = await request.form()
        if gate is not None:
            await gate.wait()
        return JSONResponse({"fields": sorted(form.keys())})

    app = Starlette(routes=[Route("/emotion", handler, methods=["POST"]),
                            Route("/emotion/batch", handler, methods=["POST"])])
    return ApiKeyGuard(UploadGuard(app, ROUTES, limits, on_idle, idle_delay_s), api_key=api_key)


def files(name="image", count=1):
    return [(name, (f"{i}.jpg", b"\xff\xd8data", "image/jpeg")) for i in range(count)]


def test_routes_are_data():
    with TestClient(app_with()) as client:
        assert client.post("/emotion/batch", files=files("images", 3)).json() == {"fields": ["images"]}
        body = client.post("/emotion/batch", files=files("images", 4)).json()
        assert body["code"] == "too_many_files"
        body = client.post("/emotion/batch", files=files("image")).json()
        assert body["code"] == "missing_field" and "'images'" in body["error"]
        assert client.post("/emotion", files=files(), data={"detect": "off"}).status_code == 200
        assert client.post("/emotion", files=files(), data={"boxes": "[]"}).json()["code"] == "unknown_field"


def test_busy_processing_slots_answer_503_with_retry_after():
    async def scenario():
        gate = asyncio.Event()
        import httpx

        app = app_with(UploadLimits(max_processing=1), gate)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            first = asyncio.create_task(client.post("/emotion", files=files()))
            await asyncio.sleep(0.2)
            second = await client.post("/emotion", files=files())
            gate.set()
            return await first, second

    first, second = asyncio.run(scenario())
    assert first.status_code == 200
    assert second.status_code == 503 and second.headers["retry-after"] == "1"
    assert second.json()["code"] == "overloaded" and second.json()["status"] == 503


def test_bodies_in_progress_share_one_byte_limit():
    """A body is counted from its Content-Length (or as it arrives) until its request ends:
    while a 60 KB request is processed, another that would pass 100 KB in all is refused, one
    that fits is not, and once both end the room is whole again."""
    def photo(size):
        return [("image", ("a.jpg", b"\xff" * size, "image/jpeg"))]

    async def scenario():
        gate = asyncio.Event()
        import httpx

        app = app_with(UploadLimits(max_bytes_in_progress=100_000), gate)
        guard = app.app  # the UploadGuard inside the key guard
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            first = asyncio.create_task(client.post("/emotion", files=photo(60_000)))
            await asyncio.sleep(0.2)
            held = guard.body_bytes
            refused = await client.post("/emotion", files=photo(50_000))
            fits = asyncio.create_task(client.post("/emotion", files=photo(20_000)))
            await asyncio.sleep(0.2)
            gate.set()
            return held, await first, refused, await fits, guard.body_bytes

    held, first, refused, fits, after = asyncio.run(scenario())
    assert 60_000 < held < 61_000  # the body, with its multipart framing
    assert first.status_code == 200 and fits.status_code == 200
    assert refused.status_code == 503 and refused.json()["code"] == "overloaded"
    assert "MiB" in refused.json()["error"]
    assert after == 0


def test_a_content_length_of_any_length_is_read_without_error():
    """A Content-Length of thousands of digits (int() refuses more than 4,300) is 413, not a crash."""
    async def scenario():
        guard = UploadGuard(None, ROUTES)
        scope = {"type": "http", "method": "POST", "path": "/emotion",
                 "headers": [(b"content-type", b"multipart/form-data; boundary=x"),
                             (b"content-length", b"9" * 5000)]}
        with pytest.raises(InputError) as info:
            await guard._receive(scope, None, 1000, [0], consume=[].append)
        return info.value

    error = asyncio.run(scenario())
    assert error.code == "upload_too_large" and "99999" in error.message


def test_api_key_in_constant_time_compare_and_open_probes():
    with TestClient(app_with(api_key="k" * 20)) as client:
        assert client.post("/emotion", files=files()).json()["code"] == "unauthorized"
        assert client.post("/emotion", files=files(), headers={"Authorization": "Bearer nope"}).status_code == 401
        assert client.post("/emotion", files=files(), headers={"Authorization": "Bearer " + "k" * 20}).status_code == 200
        assert client.get("/livez").status_code == 404  # open (not refused with 401): the app has no such route


def test_idle_hook_runs_when_the_last_request_ends():
    calls = []
    with TestClient(app_with(on_idle=lambda: calls.append(1))) as client:
        client.post("/emotion", files=files())
        client.post("/emotion", files=files())
    assert calls == [1, 1]


def test_idle_hook_waits_for_a_quiet_period():
    # Steady traffic must not pay for the release (it stalls the event loop): only once no
    # request has come for idle_delay_s does the hook run, and then once.
    calls = []
    with TestClient(app_with(on_idle=lambda: calls.append(1), idle_delay_s=0.4)) as client:
        for _ in range(5):
            assert client.post("/emotion", files=files()).status_code == 200
            time.sleep(0.1)
        assert calls == []
        time.sleep(0.6)
        assert calls == [1]


def test_idle_hook_runs_after_a_refused_request_too():
    # A sweep of bad uploads ends with refusals: memory must still be given back afterwards.
    calls = []
    with TestClient(app_with(on_idle=lambda: calls.append(1))) as client:
        refused = client.post("/emotion", content=b"x" * 100, headers={"Content-Type": "text/plain"})
        assert refused.status_code == 415
    assert calls == [1]
