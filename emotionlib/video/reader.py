"""A clip's frames, decoded one after another with OpenCV's bundled FFmpeg and sampled by time.

``VideoReader(source, fps, limits)`` checks the upload (size, container: see
container.py), writes it to a private temporary file (FFmpeg reads paths), opens it, checks
the header (frame rate, frame count, frame size against the EMOTION_MAX_VIDEO_* limits) and
then ``frames()`` yields ``(t, rgb)`` for the sampled frames: the first frame of every 1/fps
seconds of the clip's own timestamps, so variable frame rates and gaps are sampled by time,
not by frame number. At or above the clip's own rate, every frame is taken. Frames are
upright: FFmpeg applies the rotation a phone writes into the header (reported as
``rotation``). One decoded frame is held at a time: memory does not grow with the clip.
Frames that are skipped are only demuxed and decoded (``grab``), never converted.

Every problem with the upload is an InputError with its code (the service answers each with a
4xx: emotionlib/serving/errors.py): larger than the ``VideoLimits`` allow (file size, length,
pixels per frame), a frame rate or frame count in the header that no real clip has, no
frames, truncated or corrupt, a codec FFmpeg cannot decode.
``close()`` (or the context manager) releases FFmpeg and removes the temporary file.
"""
from __future__ import annotations

import contextlib
import math
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator

import numpy as np

from emotionlib.errors import InputError
from emotionlib.video import container as containers
from emotionlib.video.tempfiles import temporary_file

# FFmpeg prints a line per broken packet: a hostile upload would flood the log. Read when
# OpenCV's FFmpeg backend starts, so set before the first clip is opened.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

# Header frame rates outside these are absurd (no camera writes them): 400 invalid_frame_rate.
MIN_CLIP_FPS, MAX_CLIP_FPS = 1 / 60, 1000.0
# Requested analysis rates: 0.01 (a frame every 100 s) up to MAX_CLIP_FPS (= every frame).
MIN_FPS, DEFAULT_FPS = 0.01, 2.0
# A header that promises more than a week of video is absurd, not just long.
ABSURD_SECONDS = 7 * 24 * 3600.0
# Pixels per frame accepted unless told otherwise: 4K UHD.
DEFAULT_MAX_PIXELS = 3840 * 2160
# Decoding that ends before this share of the header's frames (and duration) is a truncated file.
TRUNCATED_SHARE = 0.9


@dataclass(frozen=True)
class VideoLimits:
    """What a clip may be: max_bytes (its file; None: any size), max_seconds (its length;
    None: any a real clip has), max_pixels (per frame), max_frames (frames analysed: its
    length times the analysed rate; None: any). The service sets them from its
    EMOTION_MAX_VIDEO_* settings; in-process, only the frame size is bounded by default."""
    max_bytes: int | None = None
    max_seconds: float | None = None
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_frames: int | None = None


@dataclass(frozen=True)
class ClipInfo:
    """The clip as read. width x height: upright frame size; fps: the clip's own (average)
    rate; frame_count / duration: from the header until decoding ends (then what was decoded;
    None when the header has none); rotation: degrees FFmpeg turned the frames by;
    analysed_fps: frames analysed per second of video; frames_analysed: so far."""
    container: str
    codec: str
    width: int
    height: int
    fps: float
    frame_count: int | None
    duration: float | None
    rotation: int
    analysed_fps: float
    frames_analysed: int = 0

    def to_dict(self) -> dict:
        return {"duration": None if self.duration is None else round(self.duration, 3),
                "fps": round(self.fps, 3), "width": self.width, "height": self.height,
                "frames_analysed": self.frames_analysed, "analysed_fps": round(self.analysed_fps, 3),
                "frame_count": self.frame_count, "rotation": self.rotation,
                "container": self.container, "codec": self.codec}


def check_fps(value) -> float:
    """The requested analysis rate: a number from MIN_FPS to MAX_CLIP_FPS (400 invalid_fps)."""
    try:
        fps = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        fps = math.nan
    if not MIN_FPS <= fps <= MAX_CLIP_FPS:  # NaN fails too
        raise InputError("invalid_fps", f"fps must be a number from {MIN_FPS:g} to {MAX_CLIP_FPS:g} "
                         f"(frames analysed per second of video), got {str(value)[:40]!r}")
    return fps


def _size_of(source) -> int:
    return len(source) if isinstance(source, (bytes, bytearray, memoryview)) else os.path.getsize(source)


class VideoReader:
    """One clip: checked and opened on construction (InputError if it cannot be analysed),
    sampled frames from ``frames()``, resources freed by ``close()``.

    source: the file's bytes, or a path (read in place, never deleted). fps: frames analysed
    per second of video (check_fps). limits: VideoLimits.
    """

    def __init__(self, source: bytes | str | os.PathLike, fps: float = DEFAULT_FPS,
                 limits: VideoLimits | None = None):
        self.limits = limits or VideoLimits()
        self.requested_fps = check_fps(fps)
        self.max_seconds = ABSURD_SECONDS if self.limits.max_seconds is None else float(self.limits.max_seconds)
        self._stack = contextlib.ExitStack()
        self._capture = None
        try:
            self.clip = self._open(source)
        except BaseException:
            self.close()
            raise

    # ----- opening and the header -----

    def _open(self, source) -> ClipInfo:
        import cv2

        size = _size_of(source)
        if self.limits.max_bytes is not None and size > self.limits.max_bytes:
            raise InputError("video_too_large", f"the video is {size / 2**20:,.1f} MiB; "
                             f"the limit is {self.limits.max_bytes / 2**20:g} MiB")
        if isinstance(source, (bytes, bytearray, memoryview)):
            data = bytes(source)  # no copy for bytes
            self.container = containers.inspect(data)
            path = self._stack.enter_context(temporary_file(self.container.suffix, data))
        else:
            path = Path(source)
            with open(path, "rb") as file:
                self.container = containers.inspect(file)
        capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
        self._capture = capture
        self._stack.callback(capture.release)
        video = self.container.video
        self.codec = video.codec if video else _fourcc(capture.get(cv2.CAP_PROP_FOURCC))
        if not capture.isOpened():
            raise self._undecodable("cannot be opened")
        fps = capture.get(cv2.CAP_PROP_FPS)
        width, height = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if not (math.isfinite(fps) and MIN_CLIP_FPS <= fps <= MAX_CLIP_FPS):
            raise InputError("invalid_frame_rate", f"the video's header gives a frame rate of {fps:g} per "
                             f"second; a readable clip has {MIN_CLIP_FPS * 60:g} per minute to {MAX_CLIP_FPS:g} per second")
        if width <= 0 or height <= 0:
            raise InputError("corrupt_video", f"the video's header gives a {width}x{height} frame")
        self._check_pixels(width, height)
        count = capture.get(cv2.CAP_PROP_FRAME_COUNT)
        # Unknown (a stream without a duration: OpenCV gives <= 0) is not absurd: decoding decides.
        frame_count = int(count) if math.isfinite(count) and 0 <= count < 2**62 else None
        duration = None if frame_count is None else frame_count / fps
        if duration is not None and duration > ABSURD_SECONDS:
            raise InputError("invalid_frame_count", f"the video's header gives {frame_count:,} frames at "
                             f"{fps:g} per second: {duration / 86400:,.0f} days")
        if duration is not None and duration > self.max_seconds:
            raise self._too_long(duration)
        if duration is not None and self.limits.max_frames is not None:
            frames = min(frame_count, math.ceil(duration * min(self.requested_fps, fps) - 1e-6))
            if frames > self.limits.max_frames:
                raise self._too_many_frames(frames, duration, min(self.requested_fps, fps))
        analysed = min(self.requested_fps, fps)
        self._every_frame = self.requested_fps >= fps
        rotation = int(capture.get(cv2.CAP_PROP_ORIENTATION_META)) % 360
        return ClipInfo(self.container.format, self.codec, width, height, fps, frame_count, duration,
                        rotation, analysed)

    def _check_pixels(self, width: int, height: int) -> None:
        if width * height > self.limits.max_pixels:
            raise InputError("frame_too_large", f"the video's frames are {width}x{height} = "
                             f"{width * height:,} pixels; the limit is {self.limits.max_pixels:,}")

    def _too_long(self, seconds: float) -> InputError:
        return InputError("video_too_long", f"the video is {seconds:,.1f} s long (at least); "
                          f"the limit is {self.max_seconds:g} s")

    def _too_many_frames(self, frames: int, seconds: float, fps: float) -> InputError:
        return InputError("video_too_long", f"analysing {seconds:,.1f} s of video at {fps:g} frames per second is "
                          f"{frames:,} frames (at least); the limit is {self.limits.max_frames:,} frames")

    def _undecodable(self, what: str) -> InputError:
        label = self.container.label
        if self.codec and self.codec.upper() not in containers.DECODABLE:
            return InputError("unsupported_video_codec", f"the {label} file's video codec "
                              f"{self.codec!r} cannot be decoded here; send H.264, HEVC, MPEG-4, VP8, VP9 or MJPEG")
        return InputError("corrupt_video", f"the {label} file's video ({self.codec or 'unknown codec'}) "
                          f"{what}: the file is corrupt or truncated")

    # ----- frames -----

    def frames(self) -> Iterator[tuple[float, np.ndarray]]:
        """(t seconds, upright RGB uint8) of each sampled frame, in time order; ``self.clip``
        is updated with frames_analysed, and at the end with the decoded duration and count.
        InputError for a clip that turns out too long, truncated, or without a decodable frame.
        The reader is closed when the frames end, by exhaustion, error or the caller closing."""
        try:
            yield from self._frames()
        finally:
            self.close()

    def _frames(self) -> Iterator[tuple[float, np.ndarray]]:
        import cv2

        capture, clip = self._capture, self.clip
        step = 1.0 / clip.fps
        # A lying header cannot make decoding run on: at most this many frames are read.
        max_decoded = int(self.max_seconds * clip.fps * 2) + 100
        decoded, taken, last_slot, t, last_t = 0, 0, -1, 0.0, None
        while capture.grab():
            decoded += 1
            stamp = capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
            # Timestamps are the clip's own; a missing or backwards one continues the last.
            t = stamp if math.isfinite(stamp) and (last_t is None or stamp >= last_t) else \
                (0.0 if last_t is None else last_t + step)
            last_t = t
            if t > self.max_seconds + step or decoded > max_decoded:
                raise self._too_long(max(t, decoded / clip.fps))
            if not self._every_frame:
                slot = math.floor(t * clip.analysed_fps + 1e-6)
                if slot <= last_slot:
                    continue
                last_slot = slot
            ok, bgr = capture.retrieve()
            if not ok or bgr is None:
                continue
            if bgr.ndim == 2:
                bgr = cv2.cvtColor(bgr, cv2.COLOR_GRAY2BGR)
            self._check_pixels(bgr.shape[1], bgr.shape[0])
            if (bgr.shape[1], bgr.shape[0]) != (clip.width, clip.height):
                clip = replace(clip, width=bgr.shape[1], height=bgr.shape[0])
            taken += 1
            if self.limits.max_frames is not None and taken > self.limits.max_frames:
                raise self._too_many_frames(taken, t, clip.analysed_fps)
            self.clip = clip = replace(clip, frames_analysed=taken)
            yield t, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        self._finish(decoded, last_t)

    def _finish(self, decoded: int, last_t: float | None) -> None:
        clip = self.clip
        if decoded == 0:
            if clip.frame_count == 0:
                raise InputError("no_frames", f"the {self.container.label} file has no video frames")
            raise self._undecodable("has no frame that can be decoded")
        end = last_t + 1.0 / clip.fps
        if clip.frame_count and decoded < TRUNCATED_SHARE * clip.frame_count - 1 and \
                end < TRUNCATED_SHARE * clip.duration - 0.5:
            raise InputError("truncated_video", f"the video ends after {decoded:,} of the {clip.frame_count:,} "
                             f"frames its header lists ({end:.1f} of {clip.duration:.1f} s): the file is truncated")
        self.clip = replace(clip, duration=end, frame_count=decoded)

    # ----- resources -----

    def close(self) -> None:
        """Release FFmpeg and remove the temporary file (idempotent)."""
        self._stack.close()

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()


def _fourcc(value: float) -> str:
    code = int(value) if math.isfinite(value) and value > 0 else 0
    return code.to_bytes(4, "little").decode("latin-1").strip("\x00 ") if code else ""
