"""Face emotion recognition: POST a photo to /emotion, get every face with its emotion.

Two BentoML services: EmotionAPI (HTTP entry on port 9000: decoding, face detection and
cropping with emotionlib.pipeline.EmotionPipeline) and EmotionModel (the classifier on ONNX
Runtime behind a greedy batcher, so faces from concurrent requests share one forward pass;
crops travel between them as uint8 48x48).
"""
from __future__ import annotations

import logging
import os
import time
from http import HTTPStatus
from typing import Literal

# Faces are personal data: no usage statistics to BentoML's vendor, even from a plain
# `bentoml serve .` (make serve, the image and the manifests set it too).
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")

import anyio
import bentoml
import numpy as np
from pydantic import BaseModel, Field
from starlette.responses import JSONResponse

from bentoml.exceptions import BentoMLException, ServiceUnavailable

from emotionlib.access import ApiKeyGuard
from emotionlib.batching import GreedyBatcher, QueueTimeout
from emotionlib.detect import set_detect_threads
from emotionlib.errors import InputError
from emotionlib.errorshape import ErrorShape, json_http_errors_in_uvicorn
from emotionlib.memory import release_free_memory_soon, tune_allocator
from emotionlib.metrics import bound_path_labels, metrics
from emotionlib.pipeline import EmotionPipeline
from emotionlib.settings import Settings
from emotionlib.upload import UploadedBytes, UploadGuard, UploadLimits, keep_uploads_in_memory

# Every EMOTION_* variable, validated once: a bad value stops the service here, naming it.
SETTINGS = Settings.from_env()

logger = logging.getLogger("emotion")
logger.setLevel(SETTINGS.log_level)

# Uploads stay in memory; unknown paths share one metrics label; uvicorn's own 400s are JSON;
# freed memory goes back to the system (emotionlib/memory.py: measured).
tune_allocator()
keep_uploads_in_memory(SETTINGS.max_upload_bytes)
bound_path_labels()
json_http_errors_in_uvicorn()

EMOTION_MODEL = bentoml.models.BentoModel(SETTINGS.model_tag)


def stored_model():
    """The model in the store, or a start-up error that says how to get one there."""
    stored = EMOTION_MODEL.stored
    if stored is None:
        raise RuntimeError(
            f"no model {SETTINGS.model_tag!r} in the BentoML model store "
            f"({os.environ.get('BENTOML_HOME', '~/bentoml')}); run `python import_model.py` first"
        )
    return stored


# Fail at import, before any worker starts, rather than serving 500s without a model.
stored_model()


class Face(BaseModel):
    bounding_box: list[int] = Field(description="[x, y, width, height] in pixels of the upright image")
    emotion: Literal["happy", "sad", "angry", "fear", "surprise", "neutral"]
    confidence: float = Field(ge=0, le=1, description="probability of `emotion`")
    scores: dict[str, float] = Field(description="probability of each of the six emotions; sums to 1")


# The model worker's deadline (EMOTION_MODEL_TIMEOUT_S) is shorter than the client's 60 s.
# runner_connection: BentoML's internal client otherwise closes its aiohttp session every 100
# calls while other calls are still in flight on it: the "dropped connections" under load.
@bentoml.service(name="emotion_model", workers=1, traffic={"timeout": SETTINGS.model_timeout_s},
                 runner_connection={"max_requests": 2**31 - 1, "max_age": 1e9})
class EmotionModel:
    """Owns the classifier (ONNX Runtime); uint8 (N, S, S) faces -> (N, 6) EMOTIONS probabilities."""

    bento_model = EMOTION_MODEL

    def __init__(self) -> None:
        from emotionlib.runtime import Classifier

        self.classifier = Classifier.from_store(stored_model(), SETTINGS.model_threads)
        self.classifier.warm_up()  # before /readyz says ready
        self.batcher = GreedyBatcher(self.classify, SETTINGS.max_batch_size, SETTINGS.max_latency_ms / 1000)
        logger.info("loaded %s (%s)", stored_model().tag, ", ".join(self.classifier.labels))

    def classify(self, faces: np.ndarray) -> np.ndarray:
        started = time.perf_counter()
        probs = self.classifier(faces)
        metrics().batch_size.observe(len(faces))
        metrics().inference.observe(time.perf_counter() - started)
        return probs.astype(np.float32)

    @bentoml.api
    async def predict(self, faces: np.ndarray) -> np.ndarray:
        """Faces of concurrent calls share one forward pass (emotionlib.batching)."""
        try:
            return await self.batcher(faces)
        except QueueTimeout as error:
            raise ServiceUnavailable(str(error)) from None


@bentoml.service(
    name="emotion_api",
    http={"port": 9000},
    workers=SETTINGS.api_workers,
    # No BentoML max_concurrency: it counts a request from its first byte, so slow uploads
    # took every slot. UploadGuard limits uploads and processing separately.
    traffic={"timeout": 60},
)
class EmotionAPI:
    model = bentoml.depends(EmotionModel)

    def __init__(self) -> None:
        set_detect_threads(SETTINGS.detect_threads)
        size = stored_model().info.metadata["input_size"]
        self.pipeline = EmotionPipeline(settings=SETTINGS, input_size=size)
        self.decode_slots = anyio.CapacityLimiter(SETTINGS.decode_concurrency)
        self.retried = False

    async def classify(self, pixels: np.ndarray) -> np.ndarray:
        """The model worker's answer within EMOTION_MODEL_TIMEOUT_S (TimeoutError otherwise).
        A connection the worker closed as it was reused is retried once, inside that deadline."""
        import aiohttp

        with anyio.fail_after(SETTINGS.model_timeout_s):
            try:
                return await self.model.to_async.predict(pixels)
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as error:
                metrics().model_retries.inc()
                if not self.retried:  # once per worker; the counter has the rest
                    self.retried = True
                    logger.warning("model worker connection dropped (%r); retrying once (logged once, "
                                   "see emotion_model_retries_total)", error)
                return await self.model.to_async.predict(pixels)

    @bentoml.api(route="/emotion")
    async def emotion(self, image: UploadedBytes, detect: bool = True) -> list[Face]:
        """Every face in a JPEG or PNG photo with its emotion, left to right.

        `detect=false` treats the whole image as one already-cropped face.
        """
        started = time.perf_counter()
        try:
            located = await anyio.to_thread.run_sync(
                lambda: self.pipeline.locate(image, detect), limiter=self.decode_slots)
        except InputError as error:
            metrics().rejected.labels(reason=error.code).inc()
            return JSONResponse(error.to_dict(), status_code=error.status)
        metrics().detection.observe(time.perf_counter() - started)
        metrics().faces.observe(len(located.detections))
        if not located.detections:
            return []
        try:
            probs = await self.classify(located.pixels)
        except TimeoutError:
            return busy(f"the model worker did not answer within {SETTINGS.model_timeout_s:g} s", "model_timeout")
        except BentoMLException as error:
            if error.error_code != HTTPStatus.SERVICE_UNAVAILABLE:
                raise
            return busy(f"the model worker is overloaded: {error}", "model_busy")
        return [Face(**face.as_dict()) for face in self.pipeline.faces(located.detections, probs)]


def busy(message: str, code: str) -> JSONResponse:
    return JSONResponse({"error": message, "code": code, "status": 503}, status_code=503)


# Outermost first: every error answer shaped, then the API key, then the upload checks.
EmotionAPI.add_asgi_middleware(ErrorShape)
EmotionAPI.add_asgi_middleware(ApiKeyGuard, api_key=SETTINGS.api_key)
EmotionAPI.add_asgi_middleware(UploadGuard, limits=UploadLimits.from_settings(SETTINGS),
                               on_idle=release_free_memory_soon)
