"""What the API worker does with a request's photos: the pipeline's steps off the event loop,
the faces of several photos in one call to the model worker, that call's deadline, and the
annotated image.

The pipeline decides everything about a photo (emotionlib.EmotionPipeline.locate); here it
runs in worker threads, at most EMOTION_MAX_DECODES_IN_PROGRESS at once, and is timed in the
metrics. Before a photo is decoded, the memory its pixels will take is reserved in the
worker's one budget (emotionlib.serving.budget, EMOTION_MAX_IMAGE_MEMORY_MB), from its header,
and given back once the pixels are gone (for the annotated image: once its answer is gone).
"""
from __future__ import annotations

import base64
import json
import logging
import time
from dataclasses import dataclass
from http import HTTPStatus
from typing import Awaitable, Callable, Sequence

import anyio
import numpy as np

from emotionlib import render
from emotionlib.decode import image_size
from emotionlib.errors import EmotionError, InputError
from emotionlib.pipeline import EmotionPipeline, Face, Located
from emotionlib.serving.budget import MemoryBudget, Reservation, bytes_needed
from emotionlib.serving.metrics import metrics

logger = logging.getLogger("emotion")


class ModelWorker:
    """Calls the model worker's ``predict`` (uint8 faces -> probabilities) with a deadline.

    Past ``timeout_s``: EmotionError ``model_timeout``; when the worker refuses (its queue
    waited past EMOTION_MODEL_MAX_WAIT_MS): ``model_busy``. A connection the worker closed as
    it was reused is retried once, inside the deadline (counted in emotion_model_retries_total).
    """

    def __init__(self, predict: Callable[[np.ndarray], Awaitable[np.ndarray]], timeout_s: float,
                 on_answer: Callable[[], None] = lambda: None):
        """on_answer: called after each answer (an answer proves the worker is up: readiness)."""
        self.predict, self.timeout_s, self.on_answer = predict, timeout_s, on_answer
        self.retried = False

    async def __call__(self, pixels: np.ndarray) -> np.ndarray:
        import aiohttp
        from bentoml.exceptions import BentoMLException

        try:
            with anyio.fail_after(self.timeout_s):
                try:
                    probabilities = await self.predict(pixels)
                except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as error:
                    metrics().model_retries.inc()
                    if not self.retried:  # once per worker; the counter has the rest
                        self.retried = True
                        logger.warning("model worker connection dropped (%r); retrying once (logged once, "
                                       "see emotion_model_retries_total)", error)
                    probabilities = await self.predict(pixels)
            self.on_answer()
            return probabilities
        except TimeoutError:
            raise EmotionError("model_timeout", f"the model worker did not answer within {self.timeout_s:g} s") \
                from None
        except BentoMLException as error:
            if error.error_code != HTTPStatus.SERVICE_UNAVAILABLE:
                raise
            raise EmotionError("model_busy", f"the model worker is overloaded: {error}") from None


@dataclass
class Annotated:
    """An annotated photo's answer: its faces (as /emotion answers them), the body (the image,
    or with ``as_json`` the JSON object with the image inline), its media type, and the memory
    reservation the body holds until it is gone (``Reservation.hold_until_gone``)."""
    faces: list[dict]
    body: bytes | memoryview
    media_type: str
    reservation: Reservation


class Photos:
    """The pipeline (without a classifier), the model worker and the memory budget, for the endpoints."""

    def __init__(self, pipeline: EmotionPipeline, model: ModelWorker, max_in_progress: int, budget: MemoryBudget):
        self.pipeline, self.model, self.budget = pipeline, model, budget
        self.slots = anyio.CapacityLimiter(max_in_progress)

    async def reserve(self, photo: bytes, use: str) -> Reservation:
        """The memory a photo's pixels will take for ``use`` (budget.BYTES_PER_PIXEL), worked out
        from its header (InputError for a photo that cannot be decoded, as decoding would say)."""
        width, height = await anyio.to_thread.run_sync(image_size, photo, self.pipeline.options.max_image_pixels)
        needed = bytes_needed(width, height, use, self.pipeline.options.detect_max_side)
        return await self.budget.reserve(needed, f"a {width}x{height} photo")

    async def locate(self, photo: bytes, **request) -> Located:
        """pipeline.locate in a worker thread (EmotionError for a bad photo or field), with the
        memory of the photo's pixels reserved while they exist."""
        reservation = await self.reserve(photo, "faces")
        try:
            return await self._locate(photo, **request)
        finally:
            reservation.release()

    async def _locate(self, photo: bytes, **request) -> Located:
        started = time.perf_counter()
        located = await anyio.to_thread.run_sync(lambda: self.pipeline.locate(photo, **request), limiter=self.slots)
        metrics().detection.observe(time.perf_counter() - started)
        metrics().faces.observe(len(located.detections))
        return located

    async def locate_each(self, photos: Sequence[bytes], max_bytes: int, **request) -> list[Located | EmotionError]:
        """``locate`` for every photo at once; a photo over ``max_bytes`` or that fails gets its
        own error in its place (one bad photo does not fail the others). An error that is not
        the photo's (the server is overloaded: no memory for it in time) is the request's: the
        first one raised, the other photos cancelled."""
        entries: list[Located | EmotionError | None] = [None] * len(photos)

        async def one(index: int, data: bytes) -> None:
            try:
                if len(data) > max_bytes:
                    raise InputError("upload_too_large", f"photo {index} is {len(data):,} bytes; the limit per "
                                     f"photo is {max_bytes / (1024 * 1024):g} MiB")
                entries[index] = await self.locate(data, **request)
            except InputError as error:
                entries[index] = error

        try:
            async with anyio.create_task_group() as group:
                for index, data in enumerate(photos):
                    group.start_soon(one, index, data)
        except BaseExceptionGroup as errors:  # the task group's: e.g. one photo's 503 overloaded
            ours = errors.subgroup(lambda error: isinstance(error, EmotionError))
            if ours is None:
                raise
            while isinstance(ours, BaseExceptionGroup):
                ours = ours.exceptions[0]
            raise ours from None
        return entries

    async def faces(self, located: Sequence[Located]) -> list[list[Face]]:
        """The faces of several photos, all classified in one model call."""
        pixels = [item.pixels for item in located if item.detections]
        probabilities = await self.model(np.concatenate(pixels)) if pixels else np.zeros((0, 6))
        result, start = [], 0
        for item in located:
            result.append(self.pipeline.faces(item.detections, probabilities[start:start + len(item.detections)]))
            start += len(item.detections)
        return result

    async def annotated(self, photo: bytes, as_json: bool = False, **request) -> Annotated:
        """The upright photo with its faces drawn, in the photo's own format (JPEG in, JPEG out),
        or as JSON with the image inline; the memory is reserved from before decoding until the
        answer is encoded, then only the answer's own size, until the caller lets it go."""
        reservation = await self.reserve(photo, "annotate")
        try:
            located = await self._locate(photo, keep_image=True, **request)
            faces = [face.to_dict() for face in (await self.faces([located]))[0]]
            fmt = render.output_format(photo)
            image, located = located.image, None  # drawn on in place and spent: no copy, nothing else holds it
            body = await anyio.to_thread.run_sync(render.annotate, image, faces, fmt, True, limiter=self.slots)
            del image
            media_type = render.MEDIA_TYPES[fmt]
            if as_json:
                body = json_with_image(faces, body, media_type)
                media_type = "application/json"
            reservation.shrink(len(body))
            return Annotated(faces, body, media_type, reservation)
        except BaseException:
            reservation.release()
            raise


def json_with_image(faces: list[dict], image: bytes, media_type: str) -> memoryview:
    """``{"faces": [...], "media_type": ..., "image": base64}`` as bytes, the base64 written in
    pieces straight into the answer (no second copy of it)."""
    head = json.dumps({"faces": faces, "media_type": media_type}, separators=(",", ":"))[:-1].encode()
    head += b',"image":"'
    tail = b'"}'
    size = 4 * ((len(image) + 2) // 3)
    out = bytearray(len(head) + size + len(tail))
    out[:len(head)] = head
    step, at = 3 * (1 << 20), len(head)
    for start in range(0, len(image), step):
        piece = base64.b64encode(image[start:start + step])
        out[at:at + len(piece)] = piece
        at += len(piece)
    out[at:] = tail
    return memoryview(out)
