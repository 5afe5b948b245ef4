"""What the API worker does with a clip: the form fields checked, the clip opened off the event
loop, its frames through the pipeline in worker threads and their faces through the model
worker in batches, detection and classification overlapped; the annotated WebM.

``analyse(pipeline, reader, classify, ...)`` takes an opened VideoReader and an async
``classify`` (uint8 crops -> probabilities: the ModelWorker). A producer task decodes and
locates one frame at a time in a worker thread (each frame takes a slot of ``limiter``, the
photos' EMOTION_MAX_DECODES_IN_PROGRESS, so photos and other clips interleave with it) and
hands the located frames over through a bounded stream; the consumer takes whatever frames
are ready (up to BATCH_FRAMES, BATCH_FACES faces), awaits one classify call for all their
faces and tracks them, while the producer goes on with the next frames. ``on_frame``
receives each VideoFrame as it is ready (called in the loop's thread; awaited if it returns
an awaitable, e.g. to write the frame in a worker thread). Memory holds at most the
stream's frames; cancelling the caller (a client gone) stops the producer after its
current frame and closes the reader, which removes the temporary file.

Those frames in flight are counted in the worker's one memory budget (budget.py, with the
photos): ``ClipMemory`` reserves them from the header's frame size before the first frame and
grows with a larger frame before the next one.
"""
from __future__ import annotations

import contextlib
import inspect
import math
from typing import Awaitable, Callable

import anyio
import numpy as np

from emotionlib.errors import EmotionError, InputError
from emotionlib.pipeline import EmotionPipeline, confidence_threshold
from emotionlib.serving.budget import MIB, MemoryBudget, Reservation, clip_bytes_needed
from emotionlib.video.analysis import (BATCH_FACES, BATCH_FRAMES, FaceTracks, VideoFrame, VideoResult, locate_frames,
                                       split, stack)
from emotionlib.video.locate import LocatedFrame
from emotionlib.video.annotate import MEDIA_TYPE, WebmWriter
from emotionlib.video.reader import DEFAULT_FPS, VideoLimits, VideoReader, check_fps
from emotionlib.video import tempfiles

# The task endpoint of long clips (service.py): BentoML adds /submit, /status, /get to it.
TASK_ROUTE = "/emotion/video/task"

# What BentoML adds for a task that the video task does not offer: (method, path) -> the answer.
REFUSED = {
    ("POST", TASK_ROUTE): EmotionError("not_supported", f"{TASK_ROUTE} runs as a task: POST {TASK_ROUTE}/submit, then "
                                       f"GET {TASK_ROUTE}/status?task_id=... and {TASK_ROUTE}/get?task_id=..."),
    ("POST", f"{TASK_ROUTE}/retry"): EmotionError("not_supported", "a task's clip is removed when the task ends "
                                                  f"(it is never stored): submit it again to {TASK_ROUTE}/submit"),
    ("PUT", f"{TASK_ROUTE}/cancel"): EmotionError("not_supported", "a running task cannot be cancelled; it ends "
                                                  "on its own and its clip is removed then"),
}

_END = object()


class ClipMemory:
    """One clip's reservation in the worker's memory budget: its frames in flight
    (budget.clip_bytes_needed) at the largest frame size seen so far. wait_s: how long it may
    wait for room (budget.MemoryBudget.reserve). ``release`` gives it all back."""

    def __init__(self, budget: MemoryBudget, annotate: bool, detect_max_side: int, wait_s: float | None = None):
        self.budget, self.annotate, self.detect_max_side, self.wait_s = budget, annotate, detect_max_side, wait_s
        self.nbytes = 0
        self.parts: list[Reservation] = []

    async def fit(self, width: int, height: int) -> None:
        """Room for frames of width x height (waits for it: 503 ``overloaded`` past wait_s);
        413 ``frame_too_large`` when they need more than the whole budget."""
        needed = clip_bytes_needed(width, height, self.annotate, self.detect_max_side)
        if needed <= self.nbytes:
            return
        if needed > self.budget.capacity:
            raise InputError("frame_too_large", f"{'annotating' if self.annotate else 'analysing'} {width}x{height} "
                             f"frames takes {needed / MIB:,.0f} MiB, more than this server's "
                             f"{self.budget.capacity / MIB:,.0f} MiB for the images of all requests in progress "
                             "(EMOTION_MAX_IMAGE_MEMORY_MB)"
                             + ("; POST /emotion/video analyses the clip" if self.annotate else ""))
        self.parts.append(await self.budget.reserve(needed - self.nbytes, f"a clip of {width}x{height} frames",
                                                    self.wait_s))
        self.nbytes = needed

    def release(self) -> None:
        for part in self.parts:
            part.release()
        self.parts, self.nbytes = [], 0


async def analyse(pipeline: EmotionPipeline, reader: VideoReader, classify: Callable[[np.ndarray], Awaitable],
                  detect: bool = True, min_confidence: float | None = None, keep_images: bool = False,
                  limiter: anyio.CapacityLimiter | None = None,
                  on_frame: Callable[[VideoFrame], object] | None = None, keep_frames: bool = True,
                  memory: ClipMemory | None = None) -> VideoResult:
    """The clip's VideoResult (frames listed only when keep_frames). Raises what the reader
    or classify raise; the reader is closed on every way out. memory: the clip's reservation,
    grown for a frame larger than the ones before it before the next frame is decoded."""
    located = locate_frames(pipeline, reader, detect, min_confidence, keep_images)
    tracks = FaceTracks(pipeline)
    frames: list[VideoFrame] = []
    send, receive = anyio.create_memory_object_stream(BATCH_FRAMES)

    async def produce() -> None:
        async with send:
            try:
                while (item := await anyio.to_thread.run_sync(next, located, _END, limiter=limiter)) is not _END:
                    if memory is not None:
                        await memory.fit(reader.clip.width, reader.clip.height)
                    await send.send(item)
            except Exception as error:  # noqa: BLE001 - handed to the consumer, raised there
                await send.send(error)

    failure = None
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(produce)
            try:
                async with receive:
                    async for batch in _ready_batches(receive):
                        pixels = stack(batch)
                        probabilities = None if pixels is None else await classify(pixels)
                        for frame, rows in zip(batch, split(batch, probabilities)):
                            done = tracks.add(frame, rows)
                            if on_frame is not None and inspect.isawaitable(waiting := on_frame(done)):
                                await waiting
                            if keep_frames:
                                frames.append(VideoFrame(done.t, done.faces))
            except Exception as error:  # noqa: BLE001 - raised below as itself, not in an ExceptionGroup
                failure = error
                group.cancel_scope.cancel()
        if failure is not None:
            raise failure
    finally:
        # The producer is done or cancelled (the task group waited for it): the generator
        # is not running, so closing it here closes the reader and removes the file.
        located.close()
        reader.close()
    return VideoResult(reader.clip, frames, tracks.summaries())


async def _ready_batches(receive):
    """Batches of the located frames that are ready: wait for one, take what else is there."""
    async for first in receive:
        batch = [_checked(first)]
        faces = len(batch[0].detections)
        while len(batch) < BATCH_FRAMES and faces < BATCH_FACES:
            try:
                item = _checked(receive.receive_nowait())
            except (anyio.WouldBlock, anyio.EndOfStream):
                break
            batch.append(item)
            faces += len(item.detections)
        yield batch


def _checked(item) -> LocatedFrame:
    if isinstance(item, BaseException):
        raise item
    return item


class Videos:
    """The pipeline (without a classifier), the model worker and the clip limits, for the endpoints.

    slots: the photos' limiter (a frame being decoded and searched takes one, as a photo
    does). limits: synchronous requests'; task_limits: the task endpoint's.
    max_in_progress: clips analysed at once (a synchronous request over it is refused, a
    task waits). budget: the worker's memory budget, shared with the photos (ClipMemory).
    Files that a killed worker left are removed when this is made (at start).
    """

    def __init__(self, pipeline: EmotionPipeline, model: Callable[[np.ndarray], Awaitable[np.ndarray]],
                 slots: anyio.CapacityLimiter, limits: VideoLimits, task_limits: VideoLimits, max_in_progress: int,
                 budget: MemoryBudget):
        self.pipeline, self.model, self.slots = pipeline, model, slots
        self.limits, self.task_limits, self.budget = limits, task_limits, budget
        self.turns = anyio.CapacityLimiter(max_in_progress)
        tempfiles.remove_stale()

    async def open(self, video, fps=None, min_detection_confidence=None,
                   task: bool = False) -> tuple[VideoReader, float | None]:
        """The fields checked, then the clip opened off the event loop (container, header):
        InputError for anything wrong."""
        rate = check_fps(DEFAULT_FPS if fps is None else fps)
        threshold = None if min_detection_confidence is None else confidence_threshold(min_detection_confidence)
        limits = self.task_limits if task else self.limits
        reader = await anyio.to_thread.run_sync(VideoReader, video, rate, limits, limiter=self.slots)
        return reader, threshold

    async def analysed(self, video, fps=None, detect: bool = True, min_detection_confidence=None,
                       task: bool = False) -> dict:
        """The answer of POST /emotion/video (and of its task): EmotionPipeline.video's, as JSON."""
        async with self._turn(task):
            reader, threshold = await self.open(video, fps, min_detection_confidence, task)
            # a task waits for memory as it waits for its turn: as long as it takes
            with self._memory(annotate=False, task=task) as memory, reader:
                await memory.fit(reader.clip.width, reader.clip.height)
                result = await analyse(self.pipeline, reader, self.model, detect, threshold, limiter=self.slots,
                                       memory=memory)
        return result.to_dict()

    async def annotated(self, video, fps=None, detect: bool = True, min_detection_confidence=None) -> tuple[bytes, str]:
        """The clip as WebM (VP8) with the faces drawn, written frame by frame in worker
        threads; its bytes and media type."""
        async with self._turn(False):
            reader, threshold = await self.open(video, fps, min_detection_confidence)
            with self._memory(annotate=True, task=False) as memory, reader, tempfiles.temporary_file(".webm") as path:
                await memory.fit(reader.clip.width, reader.clip.height)
                clip = reader.clip
                writer = WebmWriter(path, clip.analysed_fps, clip.width, clip.height)
                try:
                    await analyse(self.pipeline, reader, self.model, detect, threshold, keep_images=True,
                                  limiter=self.slots, keep_frames=False, memory=memory,
                                  on_frame=lambda frame: anyio.to_thread.run_sync(writer.write, frame,
                                                                                  limiter=self.slots))
                finally:
                    with anyio.CancelScope(shield=True):  # released even when the client is gone
                        await anyio.to_thread.run_sync(writer.close)
                return path.read_bytes(), MEDIA_TYPE

    @contextlib.contextmanager
    def _memory(self, annotate: bool, task: bool):
        """A ClipMemory for one clip, released on every way out."""
        memory = ClipMemory(self.budget, annotate, self.pipeline.options.video_detect_max_side,
                            math.inf if task else None)
        try:
            yield memory
        finally:
            memory.release()

    @contextlib.asynccontextmanager
    async def _turn(self, task: bool):
        """A clip's turn: a task waits for it; a synchronous request gets 503 ``overloaded``
        when every turn is taken, and a clip too long for it 413 naming the task endpoint."""
        if task:
            async with self.turns:
                yield
            return
        try:
            self.turns.acquire_nowait()
        except anyio.WouldBlock:
            raise EmotionError("overloaded", f"{self.turns.borrowed_tokens} clips are being analysed; retry in a "
                               f"moment, or submit the clip to POST {TASK_ROUTE}/submit") from None
        try:
            yield
        except InputError as error:
            if error.code != "video_too_long":
                raise
            raise InputError("video_too_long", f"{error.message} for this endpoint; POST {TASK_ROUTE}/submit "
                             f"takes clips up to {self.task_limits.max_seconds:g} s (then GET "
                             f"{TASK_ROUTE}/status and {TASK_ROUTE}/get with the task_id)") from None
        finally:
            self.turns.release()
