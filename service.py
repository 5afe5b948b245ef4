"""Face emotion recognition: POST a photo to /emotion, get every face with its emotion.

Two BentoML services: EmotionAPI (HTTP entry on port 9000: decoding, face detection and
cropping with emotionlib.pipeline.EmotionPipeline) and EmotionModel (the classifier on ONNX
Runtime behind a greedy batcher, so faces from concurrent requests share one forward pass;
crops travel between them as uint8 48x48).
"""
from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Annotated, Any, Literal

# Faces are personal data: no usage statistics to BentoML's vendor, even from a plain
# `bentoml serve .` (make serve, the image and the manifests set it too).
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")

import anyio
import bentoml
import numpy as np
from PIL.Image import Image
from pydantic import BaseModel, Field
from starlette.responses import Response
from starlette.staticfiles import StaticFiles

from bentoml.exceptions import BentoMLException, ServiceUnavailable

from emotionlib import render
from emotionlib.serving.access import ApiKeyGuard
from emotionlib.serving.batching import GreedyBatcher, QueueTimeout
from emotionlib.detectors import set_detect_threads
from emotionlib.geometry import Detection
from emotionlib.errors import EmotionError, InputError
from emotionlib.serving.errors import ErrorShape, answers_errors, refused
from emotionlib.serving.fields import check_inside, parse_boxes, parse_confidence
from emotionlib.serving.memory import release_free_memory
from emotionlib.serving.metrics import metrics
from emotionlib.pipeline import EmotionPipeline
from emotionlib.serving import patches
from emotionlib.serving.settings import Settings
from emotionlib.serving.upload import ROUTES, FormSpec, UploadedBytes, UploadGuard, UploadLimits

# Every EMOTION_* variable, validated once: a bad value stops the service here, naming it.
SETTINGS = Settings.from_env()

logger = logging.getLogger("emotion")
logger.setLevel(SETTINGS.service.log_level)

# Every library patch (emotionlib/serving/patches.py), after checking the library versions.
patches.apply(max_upload_bytes=max(SETTINGS.limits.max_upload_bytes, SETTINGS.limits.max_batch_upload_bytes))

EMOTION_MODEL = bentoml.models.BentoModel(SETTINGS.model.model_tag)


def stored_model():
    """The model in the store, or a start-up error that says how to get one there."""
    stored = EMOTION_MODEL.stored
    if stored is None:
        raise RuntimeError(
            f"no model {SETTINGS.model.model_tag!r} in the BentoML model store "
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
    detection_confidence: float | None = Field(
        None, ge=0, le=1, description="the face detector's score (null for given boxes and detect=false)")


# The model worker's deadline (EMOTION_MODEL_TIMEOUT_S) is shorter than the client's 60 s.
# runner_connection: BentoML's internal client otherwise closes its aiohttp session every 100
# calls while other calls are still in flight on it: the "dropped connections" under load.
@bentoml.service(name="emotion_model", workers=1, traffic={"timeout": SETTINGS.model.model_timeout_s},
                 runner_connection={"max_requests": 2**31 - 1, "max_age": 1e9})
class EmotionModel:
    """Owns the classifier (ONNX Runtime); uint8 (N, S, S) faces -> (N, 6) EMOTIONS probabilities."""

    bento_model = EMOTION_MODEL

    def __init__(self) -> None:
        from emotionlib.classifier import Classifier

        self.classifier = Classifier.from_store(stored_model(), SETTINGS.model.model_threads)
        self.classifier.warm_up()  # before /readyz says ready
        self.batcher = GreedyBatcher(self.classify, SETTINGS.model.model_max_batch_faces, SETTINGS.model.model_max_wait_ms / 1000)
        logger.info("loaded %s (%s)", stored_model().tag, ", ".join(self.classifier.labels))

    def classify(self, faces: np.ndarray) -> np.ndarray:
        started = time.perf_counter()
        probs = self.classifier(faces)
        metrics().batch_size.observe(len(faces))
        metrics().inference.observe(time.perf_counter() - started)
        return probs.astype(np.float32)

    @bentoml.api
    async def predict(self, faces: np.ndarray) -> np.ndarray:
        """Faces of concurrent calls share one forward pass (emotionlib.serving.batching)."""
        try:
            return await self.batcher(faces)
        except QueueTimeout as error:
            raise ServiceUnavailable(str(error)) from None


# Checked by emotionlib.serving.fields (400s in the API's error shape), so typed Any for BentoML.
BoxesField = Annotated[Any, Field(description="JSON list of [x, y, w, h] boxes to classify instead of detecting faces, "
                                              "e.g. [[10, 20, 100, 120]]")]
ConfidenceField = Annotated[Any, Field(description="0 to 1: drop detected faces the detector scores lower "
                                                   "(default EMOTION_MIN_DETECTION_CONFIDENCE)")]


@bentoml.service(
    name="emotion_api",
    http={"port": 9000},
    workers=SETTINGS.service.api_workers,
    # No BentoML max_concurrency: it counts a request from its first byte, so slow uploads
    # took every slot. UploadGuard limits uploads and processing separately.
    traffic={"timeout": 60},
)
class EmotionAPI:
    model = bentoml.depends(EmotionModel)

    def __init__(self) -> None:
        set_detect_threads(SETTINGS.service.detect_threads)
        size = stored_model().info.metadata["input_size"]
        self.pipeline = EmotionPipeline(options=SETTINGS.detection, input_size=size)
        self.decode_slots = anyio.CapacityLimiter(SETTINGS.limits.max_decodes_in_progress)
        self.retried = False

    async def classify(self, pixels: np.ndarray) -> np.ndarray:
        """The model worker's answer within EMOTION_MODEL_TIMEOUT_S (EmotionError model_timeout
        otherwise, model_busy when it refuses). A connection the worker closed as it was reused
        is retried once, inside that deadline."""
        import aiohttp

        try:
            with anyio.fail_after(SETTINGS.model.model_timeout_s):
                try:
                    return await self.model.to_async.predict(pixels)
                except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as error:
                    metrics().model_retries.inc()
                    if not self.retried:  # once per worker; the counter has the rest
                        self.retried = True
                        logger.warning("model worker connection dropped (%r); retrying once (logged once, "
                                       "see emotion_model_retries_total)", error)
                    return await self.model.to_async.predict(pixels)
        except TimeoutError:
            raise EmotionError("model_timeout", f"the model worker did not answer within "
                               f"{SETTINGS.model.model_timeout_s:g} s") from None
        except BentoMLException as error:
            if error.error_code != HTTPStatus.SERVICE_UNAVAILABLE:
                raise
            raise EmotionError("model_busy", f"the model worker is overloaded: {error}") from None

    def prepare(self, data: bytes, detect: bool, boxes: list | None, min_confidence: float,
                keep_image: bool) -> Prepared:
        """Decode, find faces (or take the given boxes) and cut their crops (CPU work, run
        off the event loop). keep_image: also keep the upright image (to draw on)."""
        if boxes is None and not keep_image:  # bytes: a large JPEG is decoded at reduced size
            rgb, located = None, self.pipeline.locate(data, detect)
        else:
            rgb = self.pipeline.decode(data)
            if boxes is not None:
                check_inside(boxes, rgb.shape[1], rgb.shape[0])
            located = self.pipeline.locate(rgb, detect, boxes)
        detections, pixels = located.detections, located.pixels
        if min_confidence > 0:  # given boxes (score None) are kept
            keep = [i for i, d in enumerate(detections) if d.score is None or d.score >= min_confidence]
            detections, pixels = [detections[i] for i in keep], pixels[keep]
        return Prepared(rgb if keep_image else None, detections, pixels)

    async def prepare_async(self, data: bytes, detect: bool = True, boxes: Any = None,
                            min_confidence: Any = None, keep_image: bool = False) -> Prepared:
        """``prepare`` in a worker thread, bounded by EMOTION_MAX_DECODES_IN_PROGRESS, with the
        form fields parsed; InputError for a bad photo or field."""
        started = time.perf_counter()
        given = None if boxes is None else parse_boxes(boxes, SETTINGS.detection.max_faces_per_image)
        threshold = SETTINGS.detection.min_detection_confidence if min_confidence is None else parse_confidence(min_confidence)
        prepared = await anyio.to_thread.run_sync(self.prepare, data, detect, given, threshold, keep_image,
                                                  limiter=self.decode_slots)
        metrics().detection.observe(time.perf_counter() - started)
        metrics().faces.observe(len(prepared.detections))
        return prepared

    async def faces_of(self, prepared: list[Prepared]) -> list[list[Face]]:
        """The faces of several photos, all classified in one model call."""
        pixels = [p.pixels for p in prepared if p.detections]
        probs = await self.classify(np.concatenate(pixels)) if pixels else np.zeros((0, 6))
        result, start = [], 0
        for item in prepared:
            rows = probs[start:start + len(item.detections)]
            start += len(item.detections)
            result.append([Face(**face.as_dict()) for face in self.pipeline.faces(item.detections, rows)])
        return result

    @bentoml.api(route="/emotion")
    @answers_errors
    async def emotion(self, image: UploadedBytes, detect: bool = True, boxes: BoxesField = None,
                      min_detection_confidence: ConfidenceField = None) -> list[Face]:
        """Every face in a JPEG or PNG photo with its emotion, left to right.

        `detect=false` treats the whole image as one already-cropped face; `boxes` (a JSON
        list of [x, y, w, h]) classifies exactly those regions instead of detecting faces;
        `min_detection_confidence` (0-1) drops detected faces the detector scores lower.
        """
        prepared = await self.prepare_async(image, detect, boxes, min_detection_confidence)
        return (await self.faces_of([prepared]))[0]

    @bentoml.api(route="/emotion/annotate")
    @answers_errors
    async def annotate(self, image: UploadedBytes, detect: bool = True, boxes: BoxesField = None,
                       min_detection_confidence: ConfidenceField = None) -> Image:
        """The photo (JPEG in: JPEG out; PNG in: PNG out), upright, with each face's box and
        `emotion confidence` label drawn; the faces' JSON (as /emotion answers it) is in
        the `X-Emotion-Faces` response header."""
        prepared = await self.prepare_async(image, detect, boxes, min_detection_confidence, keep_image=True)
        faces = [face.model_dump() for face in (await self.faces_of([prepared]))[0]]
        fmt = render.output_format(image)
        body = await anyio.to_thread.run_sync(render.annotate, prepared.rgb, faces, fmt, limiter=self.decode_slots)
        return Response(body, media_type=render.MEDIA_TYPES[fmt],
                        headers={FACES_HEADER: json.dumps(faces, separators=(",", ":"))})

    @bentoml.api(route="/emotion/batch")
    @answers_errors
    async def batch(self, images: list[UploadedBytes], detect: bool = True,
                    min_detection_confidence: ConfidenceField = None) -> list[dict]:
        """Many photos in one request (repeat the file field `images`). One entry per photo,
        in request order: `{"faces": [...]}`, or that photo's own error object."""
        # a bad form field is the request's error, not a photo's
        threshold = None if min_detection_confidence is None else parse_confidence(min_detection_confidence)
        entries: list[Any] = [None] * len(images)

        async def one(index: int, data: bytes) -> None:
            try:
                if len(data) > SETTINGS.limits.max_upload_bytes:
                    raise InputError("upload_too_large", f"photo {index} is {len(data):,} bytes; "
                                     f"the limit per photo is {SETTINGS.limits.max_upload_mb:g} MiB")
                entries[index] = await self.prepare_async(data, detect, None, threshold)
            except InputError as error:
                entries[index] = error

        async with anyio.create_task_group() as group:
            for index, data in enumerate(images):
                group.start_soon(one, index, data)
        good = [entry for entry in entries if isinstance(entry, Prepared)]
        faces = iter(await self.faces_of(good))
        return [{"faces": [f.model_dump() for f in next(faces)]} if isinstance(entry, Prepared)
                else refused(entry) for entry in entries]


FACES_HEADER = "X-Emotion-Faces"


@dataclass
class Prepared:
    """One photo ready for the model: its detections, their uint8 crops and (to draw on) the
    upright image."""
    rgb: np.ndarray | None
    detections: list[Detection]
    pixels: np.ndarray


def release_memory_when_idle() -> None:
    started = time.perf_counter()
    release_free_memory()
    logger.debug("idle for 1 s: memory released in %.0f ms", 1000 * (time.perf_counter() - started))


# Outermost first: every error answer shaped, then the API key, then the upload checks.
EmotionAPI.add_asgi_middleware(ErrorShape)
EmotionAPI.add_asgi_middleware(ApiKeyGuard, api_key=SETTINGS.access.api_key)
BATCH_FORM = FormSpec(files={"images": (1, SETTINGS.limits.max_batch_images)}, bools=frozenset({"detect"}),
                      texts=frozenset({"min_detection_confidence"}), max_bytes=SETTINGS.limits.max_batch_upload_bytes)
# idle_delay_s: the release stalls the event loop, so it waits for a quiet second.
EmotionAPI.add_asgi_middleware(UploadGuard, limits=UploadLimits.from_settings(SETTINGS.limits),
                               routes={**ROUTES, "/emotion/batch": BATCH_FORM}, on_idle=release_memory_when_idle,
                               idle_delay_s=1.0)
# The page to try the API in a browser (static files, no external assets): GET /ui
EmotionAPI.mount_asgi_app(StaticFiles(directory=Path(__file__).parent / "emotionlib" / "serving" / "ui", html=True), path="/ui")
