"""Face emotion recognition: POST a photo to /emotion, get every face with its emotion.

Two BentoML services: EmotionAPI (HTTP entry on port 9000: decoding, Haar face detection,
preprocessing) and EmotionModel (the Keras classifier behind an adaptive-batching API,
so faces from concurrent requests share one forward pass).
"""
from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

# Faces are personal data: no usage statistics to BentoML's vendor, even from a plain
# `bentoml serve .` (make serve, the image and the manifests set it too).
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")

import anyio
import bentoml
import numpy as np
from PIL.Image import Image
from pydantic import BaseModel, Field
from starlette.responses import JSONResponse, Response
from starlette.staticfiles import StaticFiles

from emotionlib import render
from emotionlib.access import ApiKeyGuard
from emotionlib.boxes import check_inside, parse_boxes
from emotionlib.decode import decode_image
from emotionlib.detect import Box, HaarParams, detect_faces
from emotionlib.errors import InputError
from emotionlib.errorshape import ErrorShape, json_http_errors_in_uvicorn
from emotionlib.framing import crop_face
from emotionlib.labels import EMOTIONS, fold_probabilities
from emotionlib.locate import locate_faces
from emotionlib.metrics import bound_path_labels, metrics
from emotionlib.preprocess import preprocess_batch
from emotionlib.settings import Settings
from emotionlib.upload import ROUTES, FormSpec, UploadedBytes, UploadGuard, UploadLimits, keep_uploads_in_memory

# Every EMOTION_* variable, validated once: a bad value stops the service here, naming it.
SETTINGS = Settings.from_env()

logger = logging.getLogger("emotion")
logger.setLevel(SETTINGS.log_level)

# Uploads stay in memory; unknown paths share one metrics label; uvicorn's own 400s are JSON.
keep_uploads_in_memory(max(SETTINGS.max_upload_bytes, SETTINGS.max_batch_upload_bytes))
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

    def prepare(self, data: bytes, detect: bool, boxes: list[Box] | None = None, keep_image: bool = False) -> Prepared:
        """Decode, find faces (or take the given boxes) and preprocess them (CPU work, run
        off the event loop). keep_image: also return the full upright image (to draw on)."""
        params = HaarParams.from_settings(SETTINGS)
        if boxes is None and not keep_image:
            found, crops = locate_faces(data, detect, params, SETTINGS.max_pixels, crop_side=self.input["size"])
            return Prepared(None, found, preprocess_batch(crops, **self.input))
        rgb = decode_image(data, SETTINGS.max_pixels)
        height, width = rgb.shape[:2]
        detector = "none"
        if boxes is not None:
            check_inside(boxes, width, height)
        elif detect:
            boxes, detector = detect_faces(rgb, params), "haar"
        else:
            boxes = [Box(0, 0, width, height)]
        crops = [crop_face(rgb, box, detector) for box in boxes]
        return Prepared(rgb if keep_image else None, boxes, preprocess_batch(crops, **self.input))

    async def prepare_async(self, data: bytes, detect: bool, boxes: Any = None, keep_image: bool = False) -> Prepared:
        """``prepare`` in a worker thread, bounded by EMOTION_DECODE_CONCURRENCY; InputError
        for a bad photo or bad boxes (counted in the rejection metric)."""
        started = time.perf_counter()
        try:
            given = None if boxes is None else parse_boxes(boxes, SETTINGS.max_faces)
            prepared = await anyio.to_thread.run_sync(self.prepare, data, detect, given, keep_image,
                                                      limiter=self.decode_slots)
        except InputError as error:
            metrics().rejected.labels(reason=error.code).inc()
            raise
        metrics().detection.observe(time.perf_counter() - started)
        metrics().faces.observe(len(prepared.boxes))
        return prepared

    async def predict(self, batch: np.ndarray) -> np.ndarray:
        """Call the model worker; retry once when it closed an idle keep-alive connection
        just as we reused it (aiohttp ServerDisconnectedError, seen under load)."""
        import aiohttp

        if not len(batch):
            return np.zeros((0, len(EMOTIONS)), np.float32)
        try:
            return await self.model.to_async.predict(batch)
        except aiohttp.ClientConnectionError:
            logger.warning("model worker connection dropped; retrying once")
            return await self.model.to_async.predict(batch)

    async def classify(self, prepared: list[Prepared]) -> list[list[Face]]:
        """Faces of several prepared photos, all in one model call."""
        scores = np.asarray(await self.predict(np.concatenate([p.batch for p in prepared])), dtype=float)
        result, start = [], 0
        for item in prepared:
            rows = scores[start:start + len(item.boxes)]
            start += len(item.boxes)
            result.append([to_face(box, row) for box, row in zip(item.boxes, rows)])
        return result

    @bentoml.api(route="/emotion")
    async def emotion(self, image: UploadedBytes, detect: bool = True, boxes: Any = None) -> list[Face]:
        """Every face in a JPEG or PNG photo with its emotion, left to right.

        `detect=false` treats the whole image as one already-cropped face; `boxes` (a JSON
        list of [x, y, w, h]) classifies exactly those regions instead of detecting faces.
        """
        try:
            prepared = await self.prepare_async(image, detect, boxes)
        except InputError as error:
            return error_response(error)
        return (await self.classify([prepared]))[0]

    @bentoml.api(route="/emotion/annotate")
    async def annotate(self, image: UploadedBytes, detect: bool = True, boxes: Any = None) -> Image:
        """The photo (JPEG in: JPEG out; PNG in: PNG out), upright, with each face's box and
        `emotion confidence` label drawn; the faces' JSON (as /emotion answers it) is in
        the `X-Emotion-Faces` response header."""
        try:
            prepared = await self.prepare_async(image, detect, boxes, keep_image=True)
        except InputError as error:
            return error_response(error)
        faces = [face.model_dump() for face in (await self.classify([prepared]))[0]]
        fmt = render.output_format(image)
        body = await anyio.to_thread.run_sync(render.annotate, prepared.rgb, faces, fmt, limiter=self.decode_slots)
        return Response(body, media_type=render.MEDIA_TYPES[fmt],
                        headers={FACES_HEADER: json.dumps(faces, separators=(",", ":"))})

    @bentoml.api(route="/emotion/batch")
    async def batch(self, images: list[UploadedBytes], detect: bool = True) -> list[dict]:
        """Many photos in one request (repeat the file field `images`). One entry per photo,
        in request order: `{"faces": [...]}`, or that photo's own error object."""
        entries: list[Any] = [None] * len(images)

        async def one(index: int, data: bytes) -> None:
            try:
                if len(data) > SETTINGS.max_upload_bytes:
                    raise InputError(413, "upload_too_large", f"photo {index} is {len(data):,} bytes; "
                                     f"the limit per photo is {SETTINGS.max_upload_mb:g} MiB")
                entries[index] = await self.prepare_async(data, detect)
            except InputError as error:
                entries[index] = error.to_dict()

        async with anyio.create_task_group() as group:
            for index, data in enumerate(images):
                group.start_soon(one, index, data)
        good = [entry for entry in entries if isinstance(entry, Prepared)]
        faces = iter(await self.classify(good)) if good else iter(())
        return [{"faces": [f.model_dump() for f in next(faces)]} if isinstance(entry, Prepared) else entry
                for entry in entries]


FACES_HEADER = "X-Emotion-Faces"


@dataclass
class Prepared:
    """One photo ready for the model: its face boxes, their tensor and (to draw on) the image."""
    rgb: np.ndarray | None
    boxes: list[Box]
    batch: np.ndarray


def to_face(box: Box, row: np.ndarray) -> Face:
    best = int(row.argmax())
    return Face(bounding_box=box.as_list(), emotion=EMOTIONS[best], confidence=round(row[best], 4),
                scores={name: round(p, 4) for name, p in zip(EMOTIONS, row)})


def error_response(error: InputError) -> JSONResponse:
    return JSONResponse(error.to_dict(), status_code=error.status)


# Outermost first: every error answer shaped, then the API key, then the upload checks.
EmotionAPI.add_asgi_middleware(ErrorShape)
EmotionAPI.add_asgi_middleware(ApiKeyGuard, api_key=SETTINGS.api_key)
EmotionAPI.add_asgi_middleware(UploadGuard, limits=UploadLimits.from_settings(SETTINGS), routes={
    **ROUTES, "/emotion/batch": FormSpec(files={"images": (1, SETTINGS.max_batch_images)}, bools=frozenset({"detect"}),
                                         max_bytes=SETTINGS.max_batch_upload_bytes)})
# The page to try the API in a browser (static files, no external assets): GET /ui
EmotionAPI.mount_asgi_app(StaticFiles(directory=Path(__file__).parent / "emotionlib" / "ui", html=True), path="/ui")
