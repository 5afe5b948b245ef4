"""Prometheus metrics of the service, shown on /metrics beside BentoML's own.

Created on first use, inside the serving processes: BentoML sets
PROMETHEUS_MULTIPROC_DIR at worker start-up, after service.py is imported, and
prometheus_client must see it before any metric exists.
"""
from __future__ import annotations

import functools
from types import SimpleNamespace

SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
COUNTS = (0, 1, 2, 3, 4, 5, 8, 12, 16, 24, 32, 48, 64, 100, 128)


@functools.cache
def metrics() -> SimpleNamespace:
    from prometheus_client import Counter, Histogram

    return SimpleNamespace(
        faces=Histogram("emotion_faces_per_request", "Faces found per accepted request", buckets=COUNTS),
        detection=Histogram("emotion_detection_seconds", "Decode + face detection + preprocessing time per request",
                            buckets=SECONDS),
        batch_size=Histogram("emotion_model_batch_size", "Faces per batch seen by the model worker", buckets=COUNTS),
        inference=Histogram("emotion_inference_seconds", "Model forward time per batch", buckets=SECONDS),
        model_retries=Counter("emotion_model_retries", "Model worker calls retried after a dropped connection"),
        rejected=Counter("emotion_rejected_requests", "Requests answered with a 4xx, by reason", ["reason"]),
    )


UNMATCHED_PATH = "/__unmatched__"


_REQUEST_PATH = "emotion.request_path"


def bound_path_labels() -> None:
    """Stop BentoML from adding Prometheus series for every path a client invents.

    BentoML's RunnerTrafficMetricsMiddleware labels its request metrics with the raw
    request path, so each unknown path (a scanner's) created new series. The replacement
    below labels a request with its path only when a route matches it exactly; paths under
    a mount (the page's static files, /ui/...) with the mount's path, ``/ui/`` (any file name
    matches a mount, so /ui/<anything> made a series each); every other path with
    ``/__unmatched__``. Only the label changes: the request is routed by its own path and
    still gets its 404. It must run before the app is built (service import).
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
