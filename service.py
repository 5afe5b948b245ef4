"""Face emotion recognition: POST a photo to /emotion, get every face with its emotion.

Two BentoML services: EmotionAPI (HTTP entry on port 9000: decoding, Haar face detection,
preprocessing) and EmotionModel (the Keras classifier behind an adaptive-batching API,
so faces from concurrent requests share one forward pass).
"""
from __future__ import annotations

import logging
import os
import time
from typing import Literal

# Faces are personal data: no usage statistics to BentoML's vendor, even from a plain
# `bentoml serve .` (make serve, the image and the manifests set it too).
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")

import anyio
import bentoml
import numpy as np
from pydantic import BaseModel, Field
from starlette.responses import JSONResponse

from emotionlib.access import ApiKeyGuard
from emotionlib.detect import Box, HaarParams
from emotionlib.errors import InputError
from emotionlib.errorshape import ErrorShape, json_http_errors_in_uvicorn
from emotionlib.labels import EMOTIONS, fold_probabilities
from emotionlib.locate import locate_faces
from emotionlib.memory import release_free_memory_soon, tune_allocator
from emotionlib.metrics import bound_path_labels, metrics
from emotionlib.preprocess import preprocess_batch
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


@bentoml.service(name="emotion_model", workers=1, traffic={"timeout": 60})
class EmotionModel:
    """Owns the Keras classifier; returns (N, 6) probabilities in EMOTIONS order."""

    bento_model = EMOTION_MODEL

    def __init__(self) -> None:
        import keras

        stored = stored_model()
        meta = stored.info.metadata
        self.labels = list(meta["labels"])
        self.model = keras.models.load_model(stored.path_of(meta["file"]), compile=False)
        shape = (1, meta["input_size"], meta["input_size"], meta["channels"])
        self.predict(np.zeros(shape, np.float32))  # warm up before /readyz says ready
        logger.info("loaded %s (%s)", stored.tag, ", ".join(self.labels))

    @bentoml.api(batchable=True, max_batch_size=SETTINGS.max_batch_size,
                 max_latency_ms=SETTINGS.max_latency_ms)
    def predict(self, faces: np.ndarray) -> np.ndarray:
        started = time.perf_counter()
        probs = np.asarray(self.model(faces, training=False))
        metrics().batch_size.observe(len(faces))
        metrics().inference.observe(time.perf_counter() - started)
        return fold_probabilities(probs, self.labels)


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
        meta = stored_model().info.metadata
        self.input = dict(size=meta["input_size"], channels=meta["channels"], scaling=meta["scaling"])
        self.decode_slots = anyio.CapacityLimiter(SETTINGS.decode_concurrency)

    def prepare(self, image: bytes, detect: bool) -> tuple[list[Box], np.ndarray]:
        """Decode, find faces and preprocess them (CPU work, run off the event loop)."""
        boxes, crops = locate_faces(image, detect, HaarParams.from_settings(SETTINGS), SETTINGS.max_pixels,
                                    crop_side=self.input["size"])
        return boxes, preprocess_batch(crops, **self.input)

    async def predict(self, batch: np.ndarray) -> np.ndarray:
        """Call the model worker; retry once when it closed an idle keep-alive connection
        just as we reused it (aiohttp ServerDisconnectedError, seen under load)."""
        import aiohttp

        try:
            return await self.model.to_async.predict(batch)
        except aiohttp.ClientConnectionError:
            logger.warning("model worker connection dropped; retrying once")
            return await self.model.to_async.predict(batch)

    @bentoml.api(route="/emotion")
    async def emotion(self, image: UploadedBytes, detect: bool = True) -> list[Face]:
        """Every face in a JPEG or PNG photo with its emotion, left to right.

        `detect=false` treats the whole image as one already-cropped face.
        """
        started = time.perf_counter()
        try:
            boxes, batch = await anyio.to_thread.run_sync(self.prepare, image, detect, limiter=self.decode_slots)
        except InputError as error:
            metrics().rejected.labels(reason=error.code).inc()
            return JSONResponse(error.to_dict(), status_code=error.status)
        metrics().detection.observe(time.perf_counter() - started)
        metrics().faces.observe(len(boxes))
        if not boxes:
            return []
        scores = await self.predict(batch)
        faces = []
        for box, row in zip(boxes, np.asarray(scores, dtype=float)):
            best = int(row.argmax())
            faces.append(Face(bounding_box=box.as_list(), emotion=EMOTIONS[best], confidence=round(row[best], 4),
                              scores={name: round(p, 4) for name, p in zip(EMOTIONS, row)}))
        return faces


# Outermost first: every error answer shaped, then the API key, then the upload checks.
EmotionAPI.add_asgi_middleware(ErrorShape)
EmotionAPI.add_asgi_middleware(ApiKeyGuard, api_key=SETTINGS.api_key)
EmotionAPI.add_asgi_middleware(UploadGuard, limits=UploadLimits.from_settings(SETTINGS),
                               on_idle=release_free_memory_soon)
