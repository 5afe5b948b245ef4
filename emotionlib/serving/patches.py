"""Every change this service makes to its libraries' behaviour, in one place, applied by one call.

Patching a library's internals is a last resort; each patch below was measured or found by
a test or the hostile sweep (benchmarks/hostile_sweep.py), says why, and has its own test
(tests/serving/test_patches.py, and the end-to-end tests named below). They reach into
private parts of BentoML, starlette and uvicorn, so ``apply`` first checks that the
installed versions are the ones they were written for (WRITTEN_FOR, the pins of
requirements/serve.txt) and stops the service with a one-line message on any other: an
upgrade is a deliberate act (bump the pins, run the tests, then WRITTEN_FOR).

    patch                            what it changes                        found by
    no_usage_tracking                BentoML's cached do_not_track()        usage debug log: serve_init
    separate_metrics_folder          BentoML's Prometheus folder per home   test: another server's counts
    tune_allocator                   glibc malloc: 4 MiB mmap threshold,    benchmarks/memory_burst.py
                                     2 arenas
    cache_media_types                BentoML IOMixin.mime_type, per class   py-spy, 0.7-1.2 ms/request
    keep_uploads_in_memory           starlette MultiPartParser spooling     privacy: photos on disk
    bound_path_labels                BentoML's request metrics' labels      hostile sweep: /metrics grew
    json_http_errors_in_uvicorn      uvicorn's plain-text 400               hostile sweep: non-JSON 400
    access_log_survives_any_header   BentoML's access log                   hostile sweep: no answer

``no_usage_tracking`` runs first, on its own (service.py calls it before the settings are read
and the versions checked): it must act before anything can fail, since BentoML reports a
command that fails too. The rest run in ``apply``.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import weakref
from importlib import metadata
from pathlib import Path

# The versions the patches were written and tested for (requirements/serve.txt pins them;
# tests/serving/test_patches.py checks both agree).
WRITTEN_FOR = {"bentoml": "1.4.40", "starlette": "1.10.0", "uvicorn": "0.54.0"}


def check_versions(installed: dict[str, str] | None = None) -> None:
    """SystemExit with one line naming every library whose installed version is not WRITTEN_FOR's."""
    if installed is None:
        installed = {name: metadata.version(name) for name in WRITTEN_FOR}
    wrong = [f"{name} {installed[name]} (written for {version})"
             for name, version in WRITTEN_FOR.items() if installed[name] != version]
    if wrong:
        raise SystemExit(f"emotionlib/serving/patches.py patches library internals and was not written for "
                         f"{', '.join(wrong)}: install requirements/serve.txt, or run the tests on these versions "
                         "and update WRITTEN_FOR and the pins")


def apply(max_upload_bytes: int) -> None:
    """Check the versions, then apply every patch (each is idempotent). Call before the services
    are defined: BentoML builds its ASGI apps (and so its middleware) from what it finds then."""
    check_versions()
    separate_metrics_folder()
    tune_allocator()
    cache_media_types()
    keep_uploads_in_memory(max_upload_bytes)
    bound_path_labels()
    json_http_errors_in_uvicorn()
    access_log_survives_any_header()


# --- no_usage_tracking ------------------------------------------------------------------------
DO_NOT_TRACK = "BENTOML_DO_NOT_TRACK"


def no_usage_tracking() -> bool:
    """Turn BentoML's usage tracking off for this process and its workers unless the user set
    BENTOML_DO_NOT_TRACK; True when it is off. A warning says when the user turned it on.

    BentoML posts usage events to t.bentoml.com unless the variable is true: one per command of
    its command line (sent as the command ends, also when it fails), ``serve_init`` when a
    server starts and ``serve_update`` every 12 hours after (bentoml/_internal/utils/analytics/
    usage_stats.py). Setting the variable in service.py was too late for a plain ``bentoml
    serve .``: the command's wrapper (bentoml_cli/utils.py ``bentoml_track_usage``) calls
    ``usage_stats.do_not_track()`` before it imports the service, and that function is an
    lru_cache: measured with ``__BENTOML_DEBUG_USAGE=True``, serve_init, serve_update and the
    command's own event were logged. This sets the variable and clears that cache; BentoML asks
    ``do_not_track()`` again just before it sends each event (``track``, ``track_serve``), so
    none leaves. Safe without the variable: every command that imports service.py (``bentoml
    serve .``, ``bentoml serve face-emotion:latest``, ``bentoml build``). Commands that import
    neither it nor import_model.py (``bentoml containerize``, ``bentoml list``, ...) send their
    own event unless the variable is in the environment (the Makefile, the image and the
    Kubernetes Deployment set it). Tests: test_patches.py and tests/e2e/test_tracking.py.
    """
    os.environ.setdefault(DO_NOT_TRACK, "true")
    from bentoml._internal.utils.analytics import usage_stats

    cached = getattr(usage_stats.do_not_track, "cache_clear", None)
    if cached is not None:  # any other shape is refused by check_versions, after this
        cached()
    off = usage_stats.do_not_track()
    if not off:
        logging.getLogger("emotion").warning(
            "%s=%s: BentoML sends usage events about this server to t.bentoml.com (at start, then every 12 "
            "hours); unset it or set it to true to send none", DO_NOT_TRACK, os.environ[DO_NOT_TRACK])
    return off


# --- separate_metrics_folder ------------------------------------------------------------------
PROMETHEUS_DIR = "PROMETHEUS_MULTIPROC_DIR"
SHARED_FOLDER = "prometheus_multiproc_dir"  # the name of BentoML's one folder per BENTOML_HOME


def separate_metrics_folder() -> str | None:
    """Give this server's processes a Prometheus folder that no other server's start empties.

    ``bentoml serve`` hands its workers one folder per BENTOML_HOME,
    ``$BENTOML_HOME/prometheus_multiproc_dir``, and empties it as it starts
    (bentoml/serving.py ``ensure_prometheus_dir``, called by _bentoml_impl/server/serving.py
    ``serve_http`` before the service is imported, so nothing in service.py runs earlier): a
    second server on the same BENTOML_HOME deleted the first one's counter files, and each then
    reported the other's (measured by the test: the first server's count of refused uploads read
    2, the second server's, instead of its own 3). Called in a worker as service.py is imported
    (before any metric exists; prometheus_client reads the variable when it creates a file and
    when /metrics is collected), this points the variable at a sibling folder named after the
    server: the pid and start time of ``bentoml serve``, the workers' parent, so every worker of
    one server shares it (a restarted one too) and no later server matches it. Folders of
    servers no longer running are removed. Returns the folder, or None where BentoML's shared
    folder is not in use (in-process tests, a folder set by someone else). Tests:
    test_patches.py and tests/e2e/test_metrics_folder.py.
    """
    import psutil

    current = os.environ.get(PROMETHEUS_DIR)
    if not current or Path(current).name != SHARED_FOLDER:
        return None
    shared = Path(current)
    own = shared.with_name(server_folder_name(psutil.Process(os.getppid())))
    own.mkdir(exist_ok=True)
    os.environ[PROMETHEUS_DIR] = str(own)
    remove_folders_of_stopped_servers(shared.parent)
    return str(own)


def server_folder_name(server) -> str:
    """The metrics folder's name for a `bentoml serve` process (a psutil.Process)."""
    return f"{SHARED_FOLDER}.{server.pid}-{round(server.create_time() * 1000)}"


def remove_folders_of_stopped_servers(home: Path) -> list[str]:
    """Remove the metrics folders under home whose server process is gone; their names."""
    import psutil

    removed = []
    for folder in home.glob(f"{SHARED_FOLDER}.*-*"):
        pid = folder.name.rsplit(".", 1)[1].split("-", 1)[0]
        try:
            alive = server_folder_name(psutil.Process(int(pid))) == folder.name
        except (ValueError, psutil.Error):
            alive = False
        if not alive:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder.name)
    return removed


# --- tune_allocator ---------------------------------------------------------------------------
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
MMAP_THRESHOLD = 4 * 1024 * 1024
ARENAS = 2


def tune_allocator() -> bool:
    """Fixed mmap threshold and few arenas in this process; False when not on glibc.

    glibc's malloc keeps freed memory for reuse: its mmap threshold grows with the largest
    block freed (up to 32 MiB), so after a few multi-megabyte uploads and decoded images every
    later buffer of that size comes from the heap arenas, and one arena per decode thread keeps
    its high-water mark. Measured (benchmarks/memory_burst.py, 3 bursts of 64 concurrent 8 MB
    photos): the API worker stayed at 1.75-2.06 GiB with glibc's defaults; with this and the
    idle release (memory.py) the whole server came back within 3% of its baseline. The
    threshold is 4 MiB, not 256 KiB: at 256 KiB every photo-sized buffer was mapped and
    unmapped per request and the API worker spent 28% of a core in the kernel (10% at 4 MiB;
    YuNet at concurrency 16 served 34.4 instead of 28.5-31.0 requests/s).
    """
    from emotionlib.serving.memory import libc

    glibc = libc()
    if glibc is None:
        return False
    return bool(glibc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(glibc.mallopt(M_ARENA_MAX, ARENAS))


# --- cache_media_types ------------------------------------------------------------------------
def cache_media_types() -> None:
    """Remember the media type of BentoML's IO models per class (``IOMixin.mime_type``).

    BentoML 1.4 decides a response's Content-Type by generating the output model's whole JSON
    schema with pydantic, on every response of both services (and on every call the API makes
    to the model worker): measured 0.74 ms per request on the model worker and 1.19 ms on the
    API; py-spy at concurrency 1 had it at ~6% and ~10% of their event loops. A class's fields
    and media type are fixed when the service is defined, so the answer is the same string
    BentoML computes, remembered. Test: test_patches.py (the cached answer is BentoML's own).
    """
    from _bentoml_sdk.io_models import IOMixin

    current = IOMixin.__dict__["mime_type"].__func__
    if getattr(current, "cached", False):
        return
    known: weakref.WeakKeyDictionary[type, str] = weakref.WeakKeyDictionary()

    def mime_type(cls) -> str:
        try:
            return known[cls]
        except KeyError:
            value = known[cls] = current(cls)
            return value

    mime_type.cached = True
    mime_type.uncached = current
    IOMixin.mime_type = classmethod(mime_type)


# --- keep_uploads_in_memory -------------------------------------------------------------------
def keep_uploads_in_memory(max_bytes: int) -> None:
    """Make starlette (and so BentoML's form parsing) keep parts up to max_bytes in memory.

    starlette spools file parts over 1 MiB to a temporary file; uploads are photos of people
    and must not reach the disk, and the upload guard already bounds the body to max_bytes.
    Tests: test_patches.py (a 3 MB part is not rolled to a file) and
    tests/e2e/test_hostile.py::test_uploads_never_reach_the_disk (nothing under TMPDIR).
    """
    from starlette.formparsers import MultiPartParser

    MultiPartParser.spool_max_size = max(MultiPartParser.spool_max_size, max_bytes + 1)


# --- bound_path_labels ------------------------------------------------------------------------
UNMATCHED_PATH = "/__unmatched__"
_REQUEST_PATH = "emotion.request_path"


def bound_path_labels() -> None:
    """Stop BentoML from adding Prometheus series for every path a client invents.

    BentoML's RunnerTrafficMetricsMiddleware labels its request metrics with the raw request
    path, so each unknown path (a scanner's) created new series: the hostile sweep's invented
    paths grew /metrics without bound, and each /ui/<invented>.js made its own series (the
    static mount matches any file name). The replacement labels a request with its path only
    when a route matches it exactly, paths under a mount with the mount's path (``/ui/``),
    every other path with ``/__unmatched__``. Only the label changes: the request is routed
    (and access-logged) by its own path and still gets its 404. Tests: test_patches.py and
    tests/e2e/test_hostile.py::test_invented_paths_add_no_metrics_series.
    """
    from bentoml._internal.server.http import instruments

    base = instruments.RunnerTrafficMetricsMiddleware
    if getattr(base, "bounded_paths", False):
        return

    class BoundedPathMetrics(base):
        bounded_paths = True

        def __init__(self, app, *args, **kwargs):
            async def routed_by_its_own_path(scope, receive, send):
                if _REQUEST_PATH in scope:
                    scope = {**scope, **scope[_REQUEST_PATH]}
                    del scope[_REQUEST_PATH]
                return await app(scope, receive, send)

            super().__init__(routed_by_its_own_path, *args, **kwargs)

        async def __call__(self, scope, receive, send):
            app = scope.get("app")
            if scope["type"] in ("http", "websocket") and app is not None:
                label = path_label(app, scope)
                if label != scope["path"]:
                    own = {key: scope[key] for key in ("path", "raw_path") if key in scope}
                    scope = {**scope, "path": label, "raw_path": label.encode(), _REQUEST_PATH: own}
            return await super().__call__(scope, receive, send)

    instruments.RunnerTrafficMetricsMiddleware = BoundedPathMetrics


def path_label(app, scope) -> str:
    """The metrics label of the request's path: the path when a route matches it (or it plus
    "/": the router redirects /ui to /ui/), a mount's own path for a path under it,
    UNMATCHED_PATH when nothing matches."""
    from starlette.routing import Match, Mount

    path = scope["path"]
    for candidate in [path] + ([path + "/"] if not path.endswith("/") else []):
        for route in app.routes:
            if route.matches({**scope, "path": candidate})[0] != Match.NONE:
                return route.path.rstrip("/") + "/" if isinstance(route, Mount) else path
    return UNMATCHED_PATH


# --- json_http_errors_in_uvicorn --------------------------------------------------------------
def json_http_errors_in_uvicorn() -> None:
    """Make every uvicorn HTTP protocol answer a request it cannot parse in the JSON error shape.

    uvicorn answers malformed HTTP (a broken request line, a header without a colon, a
    negative Content-Length) itself, with a plain-text 400 that never reaches the application
    and so the ErrorShape middleware. Same status, same connection close, JSON body with code
    ``malformed_http``. Tests: test_patches.py and
    tests/e2e/test_hostile.py::test_malformed_http_gets_the_json_shape.
    """
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


def _json_400(self, msg: str) -> None:
    """uvicorn's send_400_response, answering in the JSON shape (same status, same close)."""
    from emotionlib.errors import InputError
    from emotionlib.serving.errors import error_body

    body = json.dumps(error_body(InputError("malformed_http", f"the request is not valid HTTP/1.1: {msg}")))
    head = (f"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n")
    self.transport.write(head.encode("ascii") + body.encode("ascii"))
    self.transport.close()


# --- access_log_survives_any_header -----------------------------------------------------------
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

    It decodes both with bytes.decode() as the answer goes out; the hostile sweep's latin-1
    Content-Type (a byte like 0xE9) raised there, after the status line, and the connection
    was closed without an answer (400, 401 and 404 alike). The replacement shows the access
    log those values escaped (``\\xe9``) and hands the application the request's own headers.
    Tests: test_patches.py and tests/e2e/test_hostile.py::test_content_type_that_is_not_utf8_gets_an_answer.
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
