"""The annotated clip: every analysed frame with its faces' boxes, ``#track emotion confidence``
labels (emotionlib.render's drawing and colours), as WebM (VP8) at the analysed frame rate.

VP8 in WebM: OpenCV's bundled FFmpeg writes it (not H.264) and browsers play it; VP9 was
measured 4x slower to encode at 720p. A frame stands for its whole 1/fps slot: where the
clip had no frame for a slot (variable frame rate, gaps), the previous frame is repeated,
so the annotated clip keeps the original's timing.
"""
from __future__ import annotations

import os
from dataclasses import replace
from typing import Iterable, Iterator

import numpy as np
from PIL import Image

from emotionlib.render import draw_faces
from emotionlib.video.analysis import VideoFrame, VideoResult

FOURCC = "VP80"
MEDIA_TYPE = "video/webm"


def draw_frame(frame: VideoFrame) -> np.ndarray:
    """The frame's upright RGB image with its faces drawn."""
    return np.asarray(draw_faces(Image.fromarray(frame.image), [face.to_dict() for face in frame.faces]))


class WebmWriter:
    """A VP8 WebM file written frame by frame (each VideoFrame with its .image): drawn, and
    repeated over the slots the clip has no frame for."""

    def __init__(self, path: str | os.PathLike, fps: float, width: int, height: int):
        import cv2

        self.fps, self.size = fps, (width, height)
        self.writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*FOURCC), fps, self.size)
        if not self.writer.isOpened():
            raise RuntimeError("OpenCV cannot write VP8 WebM here")
        self.written, self.first_slot, self.previous = 0, None, None

    def write(self, frame: VideoFrame) -> None:
        import cv2

        slot = round(frame.t * self.fps)
        self.first_slot = slot if self.first_slot is None else self.first_slot
        while self.previous is not None and self.first_slot + self.written < slot:
            self.writer.write(self.previous)
            self.written += 1
        bgr = cv2.cvtColor(draw_frame(frame), cv2.COLOR_RGB2BGR)
        if (bgr.shape[1], bgr.shape[0]) != self.size:
            bgr = cv2.resize(bgr, self.size, interpolation=cv2.INTER_AREA)
        self.writer.write(bgr)
        self.written += 1
        self.previous = bgr

    def close(self) -> None:
        self.writer.release()


def write_webm(frames: Iterable[VideoFrame], path: str | os.PathLike, fps: float, width: int, height: int) -> int:
    """Draw and write frames (each with .image) as a VP8 WebM file; the number of frames written."""
    writer = WebmWriter(path, fps, width, height)
    try:
        for frame in frames:
            writer.write(frame)
    finally:
        writer.close()
    return writer.written


def annotate_video(pipeline, source, output: str | os.PathLike, fps: float = 2.0, **options) -> VideoResult:
    """Analyse a clip (as EmotionPipeline.video) and write it annotated to ``output`` (WebM);
    the VideoResult, as ``video`` answers it."""
    kept: list[VideoFrame] = []

    def without_images(frames: Iterable[VideoFrame]) -> Iterator[VideoFrame]:
        for frame in frames:
            yield frame
            kept.append(replace(frame, image=None))

    with pipeline.video_frames(source, fps, keep_images=True, **options) as analysis:
        clip = analysis.clip
        write_webm(without_images(analysis), output, clip.analysed_fps, clip.width, clip.height)
        return VideoResult(analysis.clip, kept, analysis.tracks())
