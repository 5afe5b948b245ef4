"""Prometheus metrics of the service, shown on /metrics beside BentoML's own.

Created on first use, inside the serving processes: prometheus_client must see
PROMETHEUS_MULTIPROC_DIR (set by BentoML for each worker, moved to the server's own folder by
patches.separate_metrics_folder) before any metric exists. (The endpoint labels of BentoML's
own request metrics are bounded by patches.bound_path_labels.)
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
