"""What the API worker does with a request's photos: the pipeline's steps off the event loop,
the faces of several photos in one call to the model worker, and that call's deadline.

The pipeline decides everything about a photo (emotionlib.EmotionPipeline.locate); here it
runs in worker threads, at most EMOTION_MAX_DECODES_IN_PROGRESS at once (each holds a
decoded image), and is timed in the metrics.
"""
from __future__ import annotations

import logging
import time
from http import HTTPStatus
from typing import Awaitable, Callable, Sequence

import anyio
import numpy as np

from emotionlib import render
from emotionlib.errors import EmotionError, InputError
from emotionlib.pipeline import EmotionPipeline, Face, Located
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


class Photos:
    """The pipeline (without a classifier) and the model worker, for the endpoints."""

    def __init__(self, pipeline: EmotionPipeline, model: ModelWorker, max_in_progress: int):
        self.pipeline, self.model = pipeline, model
        self.slots = anyio.CapacityLimiter(max_in_progress)

    async def locate(self, photo: bytes, **request) -> Located:
        """pipeline.locate in a worker thread (EmotionError for a bad photo or field)."""
        started = time.perf_counter()
        located = await anyio.to_thread.run_sync(lambda: self.pipeline.locate(photo, **request), limiter=self.slots)
        metrics().detection.observe(time.perf_counter() - started)
        metrics().faces.observe(len(located.detections))
        return located

    async def locate_each(self, photos: Sequence[bytes], max_bytes: int, **request) -> list[Located | EmotionError]:
        """``locate`` for every photo at once; a photo over ``max_bytes`` or that fails gets its
        own error in its place (one bad photo does not fail the others)."""
        entries: list[Located | EmotionError | None] = [None] * len(photos)

        async def one(index: int, data: bytes) -> None:
            try:
                if len(data) > max_bytes:
                    raise InputError("upload_too_large", f"photo {index} is {len(data):,} bytes; the limit per "
                                     f"photo is {max_bytes / (1024 * 1024):g} MiB")
                entries[index] = await self.locate(data, **request)
            except InputError as error:
                entries[index] = error

        async with anyio.create_task_group() as group:
            for index, data in enumerate(photos):
                group.start_soon(one, index, data)
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

    async def annotated(self, photo: bytes, located: Located, faces: list[dict]) -> tuple[bytes, str]:
        """The upright photo with the faces drawn, in the photo's own format, and its media type."""
        fmt = render.output_format(photo)
        body = await anyio.to_thread.run_sync(render.annotate, located.image, faces, fmt, limiter=self.slots)
        return body, render.MEDIA_TYPES[fmt]
