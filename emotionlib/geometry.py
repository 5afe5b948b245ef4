"""Boxes and detections: the geometry the detectors, the framing and the pipeline share.

A detector (emotionlib/detectors/) returns ``Detection``s: a box in the image's pixel
coordinates, the detector's score in [0, 1] and, for YuNet, five landmarks. This module
imports no detector, so every detector can import it (no cycle).
"""
from __future__ import annotations

import json
import numbers
from dataclasses import dataclass

import numpy as np

from emotionlib.errors import InputError


@dataclass(frozen=True)
class Box:
    x: int
    y: int
    w: int
    h: int

    def as_list(self) -> list[int]:
        return [self.x, self.y, self.w, self.h]


def order_boxes(boxes) -> list[Box]:
    """Deterministic order: left to right, then top to bottom (ties by size)."""
    return sorted(boxes, key=lambda b: (b.x, b.y, b.w, b.h))


def clip_box(x: float, y: float, w: float, h: float, width: int, height: int) -> Box | None:
    """Round a box to integers inside a width x height image; None if nothing is left."""
    x0, y0 = max(0, int(round(x))), max(0, int(round(y)))
    x1, y1 = min(width, int(round(x + w))), min(height, int(round(y + h)))
    if x1 <= x0 or y1 <= y0:
        return None
    return Box(x0, y0, x1 - x0, y1 - y0)


@dataclass(frozen=True)
class Detection:
    """One face found by a detector.

    score: the detector's confidence in [0, 1], None for a box no detector found (YuNet: its face probability; Haar: the
    share of the cascade's neighbouring windows, see detectors/haar.py). landmarks: five
    (x, y) points (right eye, left eye, nose tip, right and left mouth corner, as the
    person's right/left) in image pixels, or None when the detector gives none.
    """
    box: Box
    score: float | None = 1.0
    landmarks: tuple[tuple[float, float], ...] | None = None


def scale_detections(found, scale: float, width: int, height: int, scores, landmarks=None) -> list[Detection]:
    """Detector output on a downscaled image -> Detections in the original image's pixels."""
    out = []
    for i, (x, y, w, h) in enumerate(found):
        box = clip_box(x / scale, y / scale, w / scale, h / scale, width, height)
        if box is None:
            continue
        points = None
        if landmarks is not None:
            points = tuple((float(px / scale), float(py / scale)) for px, py in landmarks[i])
        out.append(Detection(box, float(scores[i]), points))
    return out


def keep_faces(detections: list[Detection], max_faces: int) -> list[Detection]:
    """Overlap suppression, the max_faces largest, in order_boxes order."""
    by_box = {}
    for d in detections:
        by_box.setdefault(d.box, d)
    kept = suppress_overlaps(list(by_box))[:max_faces]
    return [by_box[box] for box in order_boxes(kept)]


def downscale(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """The image shrunk (area interpolation) so its longer side is at most max_side, and the scale."""
    import cv2

    height, width = image.shape[:2]
    scale = min(1.0, max_side / max(height, width))
    if scale >= 1.0:
        return image, 1.0
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), scale


def suppress_overlaps(boxes: list[Box], max_overlap: float = 0.3) -> list[Box]:
    """Largest first; drop a box that shares more than max_overlap of its area with a kept one.

    Real faces do not overlap much; the cascade's leftovers (a box on the chin or collar
    next to the face) do.
    """
    kept: list[Box] = []
    for box in sorted(boxes, key=lambda b: b.w * b.h, reverse=True):
        area = box.w * box.h
        if all(_intersection(box, other) <= max_overlap * area for other in kept):
            kept.append(box)
    return kept


def _intersection(a: Box, b: Box) -> int:
    w = min(a.x + a.w, b.x + b.w) - max(a.x, b.x)
    h = min(a.y + a.h, b.y + b.h) - max(a.y, b.y)
    return max(0, w) * max(0, h)


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes (0 when they do not touch)."""
    inter = _intersection(a, b)
    union = a.w * a.h + b.w * b.h - inter
    return inter / union if union > 0 else 0.0


def crop(image: np.ndarray, box: Box) -> np.ndarray:
    return image[box.y:box.y + box.h, box.x:box.x + box.w]


def _invalid_boxes(message: str) -> InputError:
    return InputError("invalid_boxes", message)


def shown(value, limit: int = 60) -> str:
    """A caller's value as an error message shows it: JSON-like, at most ``limit`` characters
    (a number of any size, which str() and json.dumps refuse past 4,300 digits, included)."""
    value = value.as_list() if isinstance(value, Box) else value
    try:
        text = json.dumps(value, default=lambda v: v.tolist() if hasattr(v, "tolist") else str(v))
    except ValueError:  # an integer too long to write out, or nested too deep
        text = f"<a {type(value).__name__} too large to show>"
    except RecursionError:
        text = f"<a {type(value).__name__} nested too deep to show>"
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def check_boxes(value, max_boxes: int) -> list[Box]:
    """Face regions a caller gives instead of detection: a list of Box or [x, y, w, h] integers.

    Checks the shape, the integers, a positive size and the count (not the image bounds: see
    ``check_inside``); InputError ``invalid_boxes`` naming the box (``boxes[2]``) otherwise.
    """
    if not isinstance(value, (list, tuple)):
        raise _invalid_boxes("field 'boxes' must be a JSON list of [x, y, w, h] boxes, e.g. [[10, 20, 100, 120]]; "
                             f"got {type(value).__name__}")
    if len(value) > max_boxes:
        raise _invalid_boxes(f"too many boxes: {len(value)}; at most {max_boxes} per image")
    boxes = []
    for index, item in enumerate(value):
        numbers_ = item.as_list() if isinstance(item, Box) else item
        if not (isinstance(numbers_, (list, tuple)) and len(numbers_) == 4 and all(_is_int(v) for v in numbers_)):
            raise _invalid_boxes(f"boxes[{index}] = {shown(item)} is not a list of four integers [x, y, w, h]")
        x, y, w, h = (int(v) for v in numbers_)
        if w <= 0 or h <= 0:
            raise _invalid_boxes(f"boxes[{index}] = {shown(item)} has zero area: width and height must be positive")
        boxes.append(Box(x, y, w, h))
    return boxes


def check_inside(boxes: list[Box], width: int, height: int) -> None:
    """InputError ``invalid_boxes`` naming the first box not wholly inside a width x height image."""
    for index, box in enumerate(boxes):
        if box.x < 0 or box.y < 0 or box.x + box.w > width or box.y + box.h > height:
            raise _invalid_boxes(f"boxes[{index}] = {shown(box)} is outside the {width}x{height} image "
                                 f"(x + w must be <= {width}, y + h <= {height}, x and y >= 0)")
