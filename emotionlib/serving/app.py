"""The ASGI layers around the API service's endpoints, outermost first: every error answer in
the JSON shape (errors.ErrorShape), the API key (access.ApiKeyGuard), the upload guard
(upload.UploadGuard: deadlines, body limits, form checks per route, processing slots) with
the memory release once the worker is idle; the page GET /ui (static files), and the API page
GET / with its OpenAPI document GET /docs.json (docspage: no third-party requests)."""
from __future__ import annotations

import logging
import time
from pathlib import Path

from starlette.staticfiles import StaticFiles

from emotionlib.serving.access import ApiKeyGuard
from emotionlib.serving.docspage import docs_pages
from emotionlib.serving.errors import ErrorShape
from emotionlib.serving.memory import release_free_memory
from emotionlib.serving.upload import ROUTES, FormSpec, UploadGuard, UploadLimits

logger = logging.getLogger("emotion")
UI = Path(__file__).resolve().parent / "ui"


def release_memory_when_idle() -> None:
    started = time.perf_counter()
    release_free_memory()
    logger.debug("idle for 1 s: memory released in %.0f ms", 1000 * (time.perf_counter() - started))


def wrap(service, settings) -> None:
    """Add the layers to a BentoML service class (before it is served), with the service's settings."""
    limits = settings.limits
    batch_form = FormSpec(files={"images": (1, limits.max_batch_images)}, bools=frozenset({"detect"}),
                          texts=frozenset({"min_detection_confidence"}), max_bytes=limits.max_batch_upload_bytes)
    video_form = FormSpec(files={"video": (1, 1)}, bools=frozenset({"detect"}),
                          texts=frozenset({"fps", "min_detection_confidence"}), max_bytes=limits.max_video_bytes)
    service.add_asgi_middleware(ErrorShape)
    service.add_asgi_middleware(ApiKeyGuard, api_key=settings.access.api_key)
    # idle_delay_s: the release stalls the event loop, so it waits for a quiet second.
    service.add_asgi_middleware(UploadGuard, limits=UploadLimits.from_settings(limits),
                                routes={**ROUTES, "/emotion/batch": batch_form, "/emotion/video": video_form,
                                        "/emotion/video/annotate": video_form}, on_idle=release_memory_when_idle,
                                idle_delay_s=1.0)
    # The page to try the API in a browser (static files, no external assets).
    service.mount_asgi_app(StaticFiles(directory=UI, html=True), path="/ui")
    # The API page at / and /docs.json, without BentoML's third-party requests.
    service.mount_asgi_app(docs_pages(service), path="/")
