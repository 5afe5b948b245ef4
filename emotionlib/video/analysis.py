"""A clip through the photo pipeline: every person's emotions over time.

The steps, each usable on its own (the service runs the first in a worker thread and sends
the batches to its model worker):

1. ``locate_frames``: sampled frames (reader.py) -> ``LocatedFrame``s: the frame's time,
   its detections, their uint8 crops and track ids (locate.py: EmotionPipeline.locate, as
   for a photo, with the whole frame or only the tracked faces' windows searched).
2. ``batches``: located frames grouped so that the faces of several frames are classified
   in one call (``stack`` / ``split`` join and part their crops and probabilities).
3. ``FaceTracks.add``: a located frame and its probabilities -> a ``VideoFrame`` (faces with
   their track ids), with each track's emotions added up.

``VideoAnalysis`` runs them in-process: decoding and detection in a background thread, a
few frames ahead, while the caller's thread classifies (OpenCV, FFmpeg and ONNX Runtime
release the GIL, so both run at once where there are cores). Iterating it yields frames as
they are ready; ``result()`` collects the whole ``VideoResult``. Memory holds the frames in
flight, never the clip: the answer's face list grows by a few hundred bytes per frame.
"""
from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, TypeVar

import numpy as np

from emotionlib.video.locate import FrameLocator, LocatedFrame
from emotionlib.video.reader import DEFAULT_FPS, ClipInfo, VideoLimits, VideoReader
from emotionlib.video.tracking import TrackStats, TrackSummary

# emotionlib.pipeline is not imported here: EmotionPipeline.video imports this module, and the
# pipeline given is used through its methods (locate, faces, classify); "EmotionPipeline" and
# "Face" in annotations are emotionlib.pipeline's.
T = TypeVar("T")
# Frames whose faces are classified in one call, and the most faces in one call.
BATCH_FRAMES, BATCH_FACES = 8, 64


@dataclass(frozen=True)
class TrackedFace:
    face: "Face"
    track_id: int

    def to_dict(self) -> dict:
        """A face as /emotion answers it, with its track id."""
        return {**self.face.to_dict(), "track_id": self.track_id}


@dataclass(frozen=True)
class VideoFrame:
    """One analysed frame: its time in the clip (seconds), its faces (left to right) and, when
    asked for, the upright RGB image (for drawing)."""
    t: float
    faces: list[TrackedFace]
    image: np.ndarray | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        return {"t": round(self.t, 3), "faces": [face.to_dict() for face in self.faces]}


@dataclass(frozen=True)
class VideoResult:
    """What ``EmotionPipeline.video`` answers: the clip, every analysed frame, every track."""
    clip: ClipInfo
    frames: list[VideoFrame]
    tracks: list[TrackSummary]

    def to_dict(self) -> dict:
        return {"clip": self.clip.to_dict(), "frames": [f.to_dict() for f in self.frames],
                "tracks": [t.to_dict() for t in self.tracks]}


def locate_frames(pipeline: "EmotionPipeline", reader: VideoReader, detect: bool = True, min_confidence=None,
                  keep_images: bool = False, max_gap_s: float = 3.0) -> Iterator[LocatedFrame]:
    """The reader's frames with their faces found, cropped and tracked (locate.FrameLocator;
    min_confidence: the min_detection_confidence)."""
    locator = FrameLocator(pipeline, reader.clip.width, reader.clip.height, detect, min_confidence, max_gap_s)
    for t, rgb in reader.frames():
        yield locator.locate(t, rgb, keep_images)


def batches(frames: Iterable[LocatedFrame], max_frames: int = BATCH_FRAMES,
            max_faces: int = BATCH_FACES) -> Iterator[list[LocatedFrame]]:
    """Consecutive frames, up to max_frames of them or max_faces faces (a frame with more
    faces than that is a batch of its own)."""
    batch, faces = [], 0
    for frame in frames:
        if batch and (len(batch) >= max_frames or faces + len(frame.detections) > max_faces):
            yield batch
            batch, faces = [], 0
        batch.append(frame)
        faces += len(frame.detections)
    if batch:
        yield batch


def stack(batch: list[LocatedFrame]) -> np.ndarray | None:
    """The crops of a batch's frames as one array (None when no frame has a face)."""
    pixels = [frame.pixels for frame in batch if frame.detections]
    return np.concatenate(pixels) if pixels else None


def split(batch: list[LocatedFrame], probabilities) -> list[np.ndarray]:
    """(N, 6) probabilities for the stacked crops -> one block of rows per frame."""
    probabilities = np.zeros((0, 6)) if probabilities is None else np.asarray(probabilities)
    out, start = [], 0
    for frame in batch:
        out.append(probabilities[start:start + len(frame.detections)])
        start += len(frame.detections)
    return out


class FaceTracks:
    """Classified frames of one clip, in time order -> VideoFrames; keeps each track's
    running sums for the summary."""

    def __init__(self, pipeline: "EmotionPipeline"):
        self.pipeline = pipeline
        self.stats = TrackStats()

    def add(self, frame: LocatedFrame, probabilities) -> VideoFrame:
        faces = self.pipeline.faces(frame.detections, probabilities)
        ids = frame.track_ids
        for face, track_id in zip(faces, ids):
            self.stats.add(track_id, frame.t, face.scores)
        return VideoFrame(frame.t, [TrackedFace(f, i) for f, i in zip(faces, ids)], frame.image)

    def summaries(self) -> list[TrackSummary]:
        return self.stats.summaries()


def prefetched(items: Iterator[T], depth: int) -> Iterator[T]:
    """``items`` produced in a background thread, up to ``depth`` ahead of the consumer.
    Exceptions reach the consumer; when the consumer stops early, the producer stops at its
    next item and is joined before this generator returns."""
    slots: queue.Queue = queue.Queue(max(1, depth))
    stop = threading.Event()

    def put(message) -> bool:
        while not stop.is_set():
            try:
                slots.put(message, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(("item", item)):
                    return
            put(("done", None))
        except BaseException as error:  # noqa: BLE001 - handed to the consumer
            put(("error", error))
        finally:
            close = getattr(items, "close", None)
            if close:
                close()

    thread = threading.Thread(target=produce, name="video-frames", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = slots.get()
            if kind == "item":
                yield value
            elif kind == "done":
                return
            else:
                raise value
    finally:
        stop.set()
        thread.join()


class VideoAnalysis:
    """One clip analysed in-process (see ``EmotionPipeline.video_frames``).

    The clip is checked and opened on construction (InputError otherwise); iterate once for
    its VideoFrames in time order, then ``tracks()``; or call ``result()``. ``close()`` (or
    leaving the ``with`` block) frees FFmpeg and removes the temporary file at any point.

    fps: frames analysed per second of video (at most the clip's own rate); detect /
    min_detection_confidence: as for photos (EmotionPipeline.video_frames checks it before
    the clip is opened); keep_images:
    VideoFrame.image holds the upright RGB frame; batch_frames: frames whose faces are
    classified in one call; prefetch: decode and detect in a background thread; limits:
    VideoLimits (in-process default: any length, 4K frames); max_gap_s: the tracker's gap
    tolerance.
    """

    def __init__(self, pipeline: "EmotionPipeline", source, fps: float = DEFAULT_FPS, detect: bool = True,
                 min_detection_confidence=None, keep_images: bool = False, batch_frames: int = BATCH_FRAMES,
                 prefetch: bool = True, limits: VideoLimits | None = None, max_gap_s: float = 3.0):
        self.min_confidence = min_detection_confidence
        self.pipeline, self.detect, self.keep_images = pipeline, detect, keep_images
        self.batch_frames, self.prefetch = max(1, int(batch_frames)), prefetch
        self.max_gap_s = max_gap_s
        self.reader = VideoReader(source, fps, limits)
        self.tracks_ = FaceTracks(pipeline)
        self._started = False

    @property
    def clip(self) -> ClipInfo:
        return self.reader.clip

    def __iter__(self) -> Iterator[VideoFrame]:
        if self._started:
            raise RuntimeError("a VideoAnalysis can be iterated once")
        self._started = True
        return self._frames()

    def _frames(self) -> Iterator[VideoFrame]:
        located = locate_frames(self.pipeline, self.reader, self.detect, self.min_confidence, self.keep_images,
                                self.max_gap_s)
        if self.prefetch:
            located = prefetched(located, self.batch_frames)
        try:
            for batch in batches(located, self.batch_frames):
                for frame, rows in zip(batch, classify_with(self.pipeline.classify, batch)):
                    yield self.tracks_.add(frame, rows)
        finally:
            located.close()
            self.close()

    def tracks(self) -> list[TrackSummary]:
        """Each person's summary over the frames analysed so far."""
        return self.tracks_.summaries()

    def result(self) -> VideoResult:
        """Every frame (iterating what is left), then the tracks."""
        frames = list(self)
        return VideoResult(self.clip, frames, self.tracks())

    def close(self) -> None:
        self.reader.close()

    def __enter__(self) -> "VideoAnalysis":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def classify_with(classify: Callable[[np.ndarray], np.ndarray], batch: list[LocatedFrame]) -> list[np.ndarray]:
    """Probabilities per frame of a batch, with one call of ``classify`` (none without faces)."""
    pixels = stack(batch)
    return split(batch, None if pixels is None else classify(pixels))
