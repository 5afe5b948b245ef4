"""The ASGI layers around the API service's endpoints, outermost first: every error answer in
the JSON shape (errors.ErrorShape), the API key (access.ApiKeyGuard), the task routes the
video task does not offer (RefusedRoutes), the upload guard
(upload.UploadGuard: deadlines, body limits, form checks per route, processing slots) with
the memory release once the worker is idle; the page GET /ui (static files), and the API page
GET / with its OpenAPI document GET /docs.json (docspage: no third-party requests)."""
from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

from starlette.staticfiles import StaticFiles

from emotionlib.serving.access import ApiKeyGuard
from emotionlib.serving.docspage import docs_pages
from emotionlib.serving.errors import ErrorShape, reject
from emotionlib.serving.memory import release_free_memory
from emotionlib.serving.upload import ROUTES, FormSpec, UploadGuard, UploadLimits
from emotionlib.serving.video import REFUSED, TASK_ROUTE

logger = logging.getLogger("emotion")
UI = Path(__file__).resolve().parent / "ui"


def release_memory_when_idle() -> None:
    started = time.perf_counter()
    release_free_memory()
    logger.debug("idle for 1 s: memory released in %.0f ms", 1000 * (time.perf_counter() - started))


class RefusedRoutes:
    """ASGI middleware: the REFUSED routes answer their error (JSON shape)."""

    def __init__(self, app, routes: dict):
        self.app, self.routes = app, routes

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            error = self.routes.get((scope["method"], scope["path"].rstrip("/")))
            if error is not None:
                return await reject(error, scope, receive, send)
        return await self.app(scope, receive, send)


def wrap(service, settings) -> None:
    """Add the layers to a BentoML service class (before it is served), with the service's settings."""
    limits = settings.limits
    batch_form = FormSpec(files={"images": (1, limits.max_batch_images)}, bools=frozenset({"detect"}),
                          texts=frozenset({"min_detection_confidence"}), max_bytes=limits.max_batch_upload_bytes)
    # a clip is streamed into a private file as it arrives (spool.py), never held in memory
    video_form = FormSpec(files={"video": (1, 1)}, bools=frozenset({"detect"}),
                          texts=frozenset({"fps", "min_detection_confidence"}),
                          max_bytes=limits.max_video_upload_bytes, spool=frozenset({"video"}))
    # a synchronous clip's work stops when its client is gone; a task's goes on
    video_now = dataclasses.replace(video_form, stop_when_gone=True)
    service.add_asgi_middleware(ErrorShape)
    service.add_asgi_middleware(ApiKeyGuard, api_key=settings.access.api_key)
    service.add_asgi_middleware(RefusedRoutes, routes=REFUSED)
    # idle_delay_s: the release stalls the event loop, so it waits for a quiet second.
    service.add_asgi_middleware(UploadGuard, limits=UploadLimits.from_settings(limits),
                                routes={**ROUTES, "/emotion/batch": batch_form, "/emotion/video": video_now,
                                        "/emotion/video/annotate": video_now, f"{TASK_ROUTE}/submit": video_form},
                                on_idle=release_memory_when_idle, idle_delay_s=1.0)
    # The page to try the API in a browser (static files, no external assets).
    service.mount_asgi_app(StaticFiles(directory=UI, html=True), path="/ui")
    # The API page at / and /docs.json, without BentoML's third-party requests.
    service.mount_asgi_app(docs_pages(service), path="/")
