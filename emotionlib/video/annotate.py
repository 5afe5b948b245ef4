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


def write_webm(frames: Iterable[VideoFrame], path: str | os.PathLike, fps: float, width: int, height: int) -> int:
    """Draw and write frames (each with .image) as a VP8 WebM file; the number of frames written."""
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*FOURCC), fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError("OpenCV cannot write VP8 WebM here")
    written, first_slot, previous = 0, None, None
    try:
        for frame in frames:
            slot = round(frame.t * fps)
            first_slot = slot if first_slot is None else first_slot
            while previous is not None and first_slot + written < slot:
                writer.write(previous)
                written += 1
            bgr = cv2.cvtColor(draw_frame(frame), cv2.COLOR_RGB2BGR)
            if bgr.shape[:2] != (height, width):
                bgr = cv2.resize(bgr, (width, height), interpolation=cv2.INTER_AREA)
            writer.write(bgr)
            written += 1
            previous = bgr
    finally:
        writer.release()
    return written


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
