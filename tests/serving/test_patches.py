"""emotionlib.serving.patches: the version check, and each patch on its own (the hostile
end-to-end tests check the same patches through a real server)."""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import pytest


@pytest.fixture(scope="module")
def services(bundled_model_store):
    import service

    return service.EmotionModel, service.EmotionAPI


def every_spec(services):
    for svc in services:
        for method in svc.apis.values():
            yield from (method.input_spec, method.output_spec)


def test_usage_tracking_is_off_although_bentoml_asked_first(monkeypatch):
    """BentoML's command line asks do_not_track() before it imports service.py and caches the
    answer; no_usage_tracking sets the variable and makes BentoML ask again."""
    from bentoml._internal.utils.analytics import usage_stats

    from emotionlib.serving.patches import no_usage_tracking

    monkeypatch.delenv("BENTOML_DO_NOT_TRACK", raising=False)
    usage_stats.do_not_track.cache_clear()
    assert usage_stats.do_not_track() is False  # what the command line saw and cached
    try:
        assert no_usage_tracking() is True
        assert usage_stats.do_not_track() is True
        monkeypatch.setenv("BENTOML_DO_NOT_TRACK", "false")  # the user's own choice is kept
        assert no_usage_tracking() is False
    finally:
        monkeypatch.setenv("BENTOML_DO_NOT_TRACK", "true")
        usage_stats.do_not_track.cache_clear()


def test_cached_media_type_is_bentomls_own_answer(services):
    from _bentoml_sdk.io_models import IOMixin

    patched = IOMixin.__dict__["mime_type"].__func__
    assert getattr(patched, "cached", False), "service.py installs the cache at import"
    for spec in every_spec(services):
        assert spec.mime_type() == patched.uncached(spec), spec
    emotion = services[1].apis["emotion"]
    assert emotion.input_spec.mime_type() == "multipart/form-data"
    assert emotion.output_spec.mime_type() == "application/json"


def test_schema_is_generated_once_per_class(services, monkeypatch):
    from emotionlib.serving.patches import cache_media_types

    cache_media_types()  # idempotent: a second call keeps the one cache
    output = services[0].apis["predict"].output_spec
    expected = output.mime_type()  # fills the cache if no earlier call did
    calls = []
    original = output.model_json_schema.__func__
    monkeypatch.setattr(output, "model_json_schema",
                        classmethod(lambda cls, *a, **k: calls.append(1) or original(cls, *a, **k)))
    first = [output.mime_type() for _ in range(5)]
    assert first == [expected] * 5 and calls == []  # answered from the cache, no schema built


@pytest.mark.parametrize("size", [3 * 1024 * 1024])
def test_large_parts_stay_in_memory(size):
    from starlette.requests import Request

    from emotionlib.serving.patches import keep_uploads_in_memory
    from emotionlib.serving.upload import check_form

    keep_uploads_in_memory(10 * 1024 * 1024)
    boundary = "b"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"x.jpg\"\r\n\r\n".encode()
            + b"\xff" * size + f"\r\n--{boundary}--\r\n".encode())
    scope = {"type": "http", "method": "POST", "path": "/emotion",
             "headers": [(b"content-type", f"multipart/form-data; boundary={boundary}".encode())]}

    from emotionlib.serving.upload import FormSpec

    async def parse():
        sent = False

        async def receive():
            nonlocal sent
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        form = await Request(scope, receive).form()
        upload = form["image"]
        rolled = upload.file._rolled  # SpooledTemporaryFile: True once written to a temporary file
        await form.close()
        await check_form(scope, body, FormSpec(files={"image": (1, 1)}, bools=frozenset({"detect"})))
        return rolled

    assert asyncio.run(parse()) is False


def test_allocator_tuning_on_glibc():
    import platform

    from emotionlib.serving.memory import release_free_memory
    from emotionlib.serving.patches import tune_allocator

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("mallopt/malloc_trim are glibc's")
    assert tune_allocator() is True
    release_free_memory()


# --- the version check -------------------------------------------------------------------------
def test_unknown_library_versions_are_refused_in_one_line():
    from emotionlib.serving.patches import WRITTEN_FOR, check_versions

    check_versions(dict(WRITTEN_FOR))  # the versions it was written for: no complaint
    with pytest.raises(SystemExit) as stopped:
        check_versions({**WRITTEN_FOR, "starlette": "1.11.0", "uvicorn": "0.60.1"})
    message = str(stopped.value)
    assert "\n" not in message
    assert "starlette 1.11.0 (written for 1.10.0)" in message and "uvicorn 0.60.1 (written for 0.54.0)" in message
    assert "bentoml" not in message


def test_the_versions_written_for_are_the_pinned_ones():
    from emotionlib.serving.patches import WRITTEN_FOR
    from tests.serving.test_requirements import pins

    pinned = pins("serve.txt")
    assert {name: pinned[name] for name in WRITTEN_FOR} == WRITTEN_FOR


def test_the_service_stops_at_start_on_another_bentoml():
    """Importing service.py (what `bentoml serve` does first) with another bentoml installed
    stops with the one-line message, exit status 1, before any service is defined."""
    from tests.helpers import ROOT

    code = ("import importlib.metadata as m; real = m.version; "
            "m.version = lambda name: '1.5.0' if name == 'bentoml' else real(name); import service")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("emotionlib/serving/patches.py patches library")
    assert "bentoml 1.5.0 (written for 1.4.40)" in result.stderr and "Traceback" not in result.stderr


# --- bound_path_labels -------------------------------------------------------------------------
def test_metrics_label_invented_paths_as_one_and_route_by_the_real_path():
    from bentoml._internal.server.http import instruments
    from prometheus_client import REGISTRY
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Mount, Route

    from emotionlib.serving.patches import bound_path_labels

    bound_path_labels()

    async def ok(request):
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/emotion", ok, methods=["POST"]), Mount("/ui", app=Starlette())])
    routed = []

    async def inner(scope, receive, send):
        routed.append(scope["path"])
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    middleware = instruments.RunnerTrafficMetricsMiddleware(inner, namespace="patch_test")
    paths = ["/invented-one", "/invented-two", "/ui/invented.js", "/emotion"]

    async def requests():
        async def send(message):
            pass

        async def receive():
            return {"type": "http.request", "body": b""}

        for path in paths:
            await middleware({"type": "http", "path": path, "raw_path": path.encode(), "method": "GET",
                              "headers": [], "app": app}, receive, send)

    asyncio.run(requests())
    assert routed == paths  # each request is routed by its own path
    labels = {sample.labels["endpoint"] for family in REGISTRY.collect() if family.name.startswith("patch_test")
              for sample in family.samples if "endpoint" in sample.labels}
    assert labels == {"/__unmatched__", "/ui/", "/emotion"}


# --- json_http_errors_in_uvicorn ---------------------------------------------------------------
def test_uvicorn_answers_malformed_http_in_the_json_shape():
    from uvicorn.protocols.http.h11_impl import H11Protocol

    from emotionlib.serving.patches import json_http_errors_in_uvicorn

    json_http_errors_in_uvicorn()

    class Transport:
        written, closed = b"", False

        def write(self, data):
            self.written += data

        def close(self):
            self.closed = True

    protocol = H11Protocol.__new__(H11Protocol)  # only the transport is used
    protocol.transport = Transport()
    protocol.send_400_response("Invalid HTTP request received.")
    head, _, body = protocol.transport.written.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400") and b"application/json" in head and protocol.transport.closed
    assert json.loads(body) == {"error": "the request is not valid HTTP/1.1: Invalid HTTP request received.",
                                "code": "malformed_http", "status": 400}


# --- access_log_survives_any_header ------------------------------------------------------------
def test_the_access_log_answers_a_content_type_that_is_not_utf8():
    from bentoml._internal.server.http import access

    from emotionlib.serving.patches import access_log_survives_any_header

    access_log_survives_any_header()
    latin1 = [(b"content-type", b"multipart/form-data; boundary=\xe9\xff"), (b"content-length", b"0")]
    seen = []

    async def app(scope, receive, send):
        seen.append(dict(scope["headers"])[b"content-type"])
        await send({"type": "http.response.start", "status": 400, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"{}"})

    def call(middleware_class):
        sent = []

        async def send(message):
            sent.append(message["type"])

        async def receive():
            return {"type": "http.request", "body": b""}

        middleware = middleware_class(app, has_request_content_type=True, has_request_content_length=True)
        asyncio.run(middleware({"type": "http", "method": "POST", "path": "/emotion", "raw_path": b"/emotion",
                                "headers": latin1, "client": ("127.0.0.1", 1), "query_string": b"",
                                "scheme": "http", "http_version": "1.1", "server": ("127.0.0.1", 9000)}, receive, send))
        return sent

    assert call(access.AccessLogMiddleware) == ["http.response.start", "http.response.body"]
    assert seen == [b"multipart/form-data; boundary=\xe9\xff"]  # the app got the request's own bytes
    with pytest.raises(UnicodeDecodeError):  # what BentoML's own access log does with it
        call(access.AccessLogMiddleware.__mro__[1])


def test_a_worker_moves_to_its_servers_own_metrics_folder(tmp_path, monkeypatch):
    """In a worker (here: this process, its parent standing for `bentoml serve`) BentoML's
    shared folder is swapped for one named after the server; any other folder is left alone."""
    import psutil

    from emotionlib.serving.patches import PROMETHEUS_DIR, separate_metrics_folder, server_folder_name

    shared = tmp_path / "prometheus_multiproc_dir"
    shared.mkdir()
    monkeypatch.setenv(PROMETHEUS_DIR, str(shared))
    own = separate_metrics_folder()
    assert own == os.environ[PROMETHEUS_DIR] == str(tmp_path / server_folder_name(psutil.Process(os.getppid())))
    assert os.path.isdir(own)
    assert separate_metrics_folder() is None  # already moved: idempotent
    monkeypatch.setenv(PROMETHEUS_DIR, str(tmp_path / "someone-elses"))
    assert separate_metrics_folder() is None and os.environ[PROMETHEUS_DIR] == str(tmp_path / "someone-elses")


def test_folders_of_stopped_servers_are_removed(tmp_path):
    import psutil

    from emotionlib.serving.patches import remove_folders_of_stopped_servers, server_folder_name

    running = tmp_path / server_folder_name(psutil.Process(os.getpid()))
    stopped = tmp_path / running.name.replace("-", "-1", 1)  # same pid, another start time
    gone = tmp_path / "prometheus_multiproc_dir.999999999-1"
    for folder in (running, stopped, gone):
        folder.mkdir()
        (folder / "counter_1.db").write_bytes(b"x")
    assert sorted(remove_folders_of_stopped_servers(tmp_path)) == sorted([stopped.name, gone.name])
    assert running.is_dir() and not stopped.exists() and not gone.exists()
