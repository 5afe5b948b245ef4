"""Where the faces are in each frame of a clip, and which person each one is.

``FrameLocator.locate(t, rgb)`` runs a frame through EmotionPipeline.locate (as a photo:
detection, the confidence filter, the crops) and gives each face its track id
(tracking.Tracker). What differs from a photo is where the detector looks:

- every ``video_detect_every_s`` seconds of video (and on the first frame) it searches the
  whole frame, downscaled to ``video_detect_max_side`` on its longer side (a 720p frame is
  searched at 640x360: faces from about 48 px up, in the frame's pixels);
- on the frames in between it searches only a window around each tracked face, where the
  tracker expects it (``TrackedSearch``): the window is WINDOW face sizes wide, scaled so
  the face is about SEARCH_FACE_PX pixels, and the detection there that best matches the
  expected box is the face. A person who was not tracked is found at the next whole-frame
  search (at most ``video_detect_every_s`` later); a face that is not found in its window
  (hidden, turned away, gone) is missing from that frame, as a face the detector misses.

Why: on a 720p clip the whole-frame search is most of the cost of a frame (Haar:
~150 ms at full size, ~40 ms at 640 px, on one core of the development machine), a window
around a known face costs about a millisecond, and the boxes are still the detector's own
(not predictions carried over), so crops, scores and the tracker see what they see on a
whole-frame search. Analysing at 2 frames per second (the default), frames are 0.5 s apart:
each one gets a whole-frame search.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from emotionlib.detectors import make_detector
from emotionlib.geometry import Box, Detection, clip_box, iou, keep_faces
from emotionlib.video.tracking import Tracker

# A tracked face's search window is this many face sizes wide (the face may have moved
# 0.6 of its size from where the tracker expects it)...
WINDOW = 2.2
# ... scaled (down only) so that the face is about this many pixels: Haar's smallest window
# is 24 px, so the scan covers 0.5x to 2.2x the expected size. Measured on the generated
# 720p clip at every frame (tests/clips.py, 693 visible faces): 64 px found 693 at ~7 ms a
# window, 48 px 691 at ~2 ms less, 40 px 683 (a loaded 2-core machine: ratios only).
SEARCH_FACE_PX = 48
# A detection in the window is the tracked face when its size is within these factors of
# the expected size and it overlaps the expected box or its centre is within a face size.
SIZE_RANGE = (0.6, 1.6)
# Tracks last seen longer ago than this are not searched for in windows (where they are is
# too uncertain); the next whole-frame search finds them.
SEARCH_SEEN_WITHIN_S = 1.0


@dataclass
class LocatedFrame:
    """A frame ready for the classifier: time, detections, their uint8 (N, S, S) crops, the
    track id of each, and the upright RGB image when it was asked for."""
    t: float
    detections: list[Detection]
    pixels: np.ndarray
    track_ids: list[int] = field(default_factory=list)
    image: np.ndarray | None = None
    whole_frame: bool = True  # searched whole (False: only around the tracked faces)


class TrackedSearch:
    """A detector that looks only around the given expected boxes (same interface as the
    detectors: ``detect(image, gray) -> detections``, ``name`` for the crops' framing)."""

    def __init__(self, detector, expected: list[Box], max_faces: int):
        self.detector, self.expected, self.max_faces = detector, expected, max_faces
        self.name = detector.name

    def detect(self, image: np.ndarray, gray: np.ndarray | None = None) -> list[Detection]:
        import cv2

        height, width = image.shape[:2]
        found = []
        for expected in self.expected:
            side = max(expected.w, expected.h)
            cx, cy = expected.x + expected.w / 2, expected.y + expected.h / 2
            window = clip_box(cx - WINDOW * side / 2, cy - WINDOW * side / 2, WINDOW * side, WINDOW * side,
                              width, height)
            if window is None:
                continue
            scale = min(1.0, SEARCH_FACE_PX / side)
            parts = [a[window.y:window.y + window.h, window.x:window.x + window.w] for a in (image, gray)
                     if a is not None]
            if scale < 1.0:
                size = (max(1, round(window.w * scale)), max(1, round(window.h * scale)))
                parts = [cv2.resize(a, size, interpolation=cv2.INTER_AREA) for a in parts]
            small = self.detector.detect(parts[0], parts[1] if len(parts) > 1 else None)
            best = _best_match(small, expected, window, scale)
            if best is not None:
                found.append(best)
        return keep_faces(found, self.max_faces)


def _best_match(found: list[Detection], expected: Box, window: Box, scale: float) -> Detection | None:
    """The detection (in the window's scaled pixels) that is the expected face, in frame pixels."""
    side = max(expected.w, expected.h)
    best, best_cost = None, None
    for d in found:
        box = Box(round(d.box.x / scale) + window.x, round(d.box.y / scale) + window.y,
                  max(1, round(d.box.w / scale)), max(1, round(d.box.h / scale)))
        if not SIZE_RANGE[0] <= max(box.w, box.h) / side <= SIZE_RANGE[1]:
            continue
        distance = np.hypot(box.x + box.w / 2 - expected.x - expected.w / 2,
                            box.y + box.h / 2 - expected.y - expected.h / 2) / side
        overlap = iou(box, expected)
        if overlap <= 0 and distance > 1.0:
            continue
        cost = (1.0 - overlap) + distance
        if best_cost is None or cost < best_cost:
            landmarks = None if d.landmarks is None else \
                tuple((x / scale + window.x, y / scale + window.y) for x, y in d.landmarks)
            best, best_cost = Detection(box, d.score, landmarks), cost
    return best


class FrameLocator:
    """The faces of successive frames of one clip (in time order), located and tracked.

    pipeline: an EmotionPipeline (its options give the detector, video_detect_max_side and
    video_detect_every_s). width, height: the clip's frame size. detect /
    min_detection_confidence: as for photos (detect=False: each frame is one face, always
    track 1). max_gap_s: the tracker's gap tolerance.
    """

    def __init__(self, pipeline, width: int, height: int, detect: bool = True, min_detection_confidence=None,
                 max_gap_s: float = 3.0):
        options = pipeline.options
        self.pipeline, self.detect, self.min_confidence = pipeline, detect, min_detection_confidence
        self.every_s, self.max_faces = options.video_detect_every_s, options.max_faces_per_image
        self.whole = make_detector(options.detector, replace(options, detect_max_side=options.video_detect_max_side))
        self.tracker = Tracker(width, height, max_gap_s)
        self.last_whole: float | None = None

    def locate(self, t: float, rgb: np.ndarray, keep_image: bool = False) -> LocatedFrame:
        whole = self.last_whole is None or t - self.last_whole >= self.every_s - 1e-6 or not self.detect
        if whole:
            self.last_whole, detector = t, self.whole
        else:
            detector = TrackedSearch(self.whole, self.tracker.expected(t, SEARCH_SEEN_WITHIN_S), self.max_faces)
        located = self.pipeline.locate(rgb, self.detect, min_detection_confidence=self.min_confidence,
                                       detector=detector)
        ids = self.tracker.update(t, [d.box for d in located.detections])
        return LocatedFrame(t, located.detections, located.pixels, ids, rgb if keep_image else None, whole)
