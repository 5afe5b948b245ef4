"""Face detection with OpenCV's Haar cascade.

Parameters are module constants, overridable through environment variables (see the
README's configuration table), chosen with benchmarks/detection.py (composed group photos,
3 x 32 faces per size, recall / false positives; plus the two real portraits):

    minSize minNb scale |  32px    |  40px    |  56px    |  80px    | portraits
         24     6   1.1 |  99%  0  |  99%  0  | 100%  1  | 100%  0  | [1, 1]   <- chosen
         30     6   1.1 |  40%  0  |  99%  0  | 100%  1  | 100%  0  | [1, 1]
         30     5   1.1 |  61%  0  | 100%  0  | 100%  1  | 100%  0  | [1, 1]
         40     6   1.1 |   0%  0  |  54%  0  | 100%  1  | 100%  0  | [1, 1]
         24     5  1.05 |  96%  2  | 100%  0  |  95%  4  |  96%  2  | [2, 2]

A minimum size close to the smallest faces matters most (the cascade steps window sizes by
the scale factor, so minSize 30 rarely fits a 32 px face); minNeighbors 6 and scale 1.1
keep the real portraits at exactly one face each.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass

import cv2
import numpy as np

from emotionlib.preprocess import to_gray

CASCADE_FILE = os.path.join(cv2.data.haarcascades, "haarcascade_frontalface_default.xml")


@dataclass(frozen=True)
class HaarParams:
    """Detection parameters (defaults: emotionlib.settings.Settings, chosen as above).

    max_side: images are downscaled so their longer side is at most this before
    detection; boxes are mapped back to the original image's coordinates. min_size: the
    smallest face, in pixels of the (downscaled) detection image. min_neighbors 6 rather
    than OpenCV's usual 3-5: at 5, a re-encoded portrait gave a second box on the collar.
    """
    max_side: int = 1280
    scale_factor: float = 1.1
    min_neighbors: int = 6
    min_size: int = 24
    max_faces: int = 100

    @classmethod
    def from_settings(cls, settings) -> "HaarParams":
        return cls(max_side=settings.detect_max_side, scale_factor=settings.scale_factor,
                   min_neighbors=settings.min_neighbors, min_size=settings.min_face_size,
                   max_faces=settings.max_faces)


_local = threading.local()


def _cascade() -> cv2.CascadeClassifier:
    """One cascade per thread: CascadeClassifier is not documented as thread-safe."""
    cascade = getattr(_local, "cascade", None)
    if cascade is None:
        cascade = cv2.CascadeClassifier(CASCADE_FILE)
        if cascade.empty():
            raise RuntimeError(f"cannot load the Haar cascade {CASCADE_FILE}")
        _local.cascade = cascade
    return cascade


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


def detect_faces(image: np.ndarray, params: HaarParams = HaarParams()) -> list[Box]:
    """Find faces in an RGB or gray uint8 image; boxes in the image's own pixel coordinates.

    At most params.max_faces boxes are returned (the largest ones), ordered by order_boxes.
    """
    max_side, min_size = params.max_side, params.min_size
    gray = to_gray(image)
    height, width = gray.shape[:2]
    scale = min(1.0, max_side / max(height, width))
    small = gray
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        small = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
    if min(small.shape[:2]) < min_size:
        return []
    found = _cascade().detectMultiScale(
        small, scaleFactor=params.scale_factor, minNeighbors=params.min_neighbors, minSize=(min_size, min_size)
    )
    boxes = []
    for x, y, w, h in (found if len(found) else []):
        box = clip_box(x / scale, y / scale, w / scale, h / scale, width, height)
        if box is not None:
            boxes.append(box)
    return order_boxes(suppress_overlaps(boxes)[:params.max_faces])


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


def crop(image: np.ndarray, box: Box) -> np.ndarray:
    return image[box.y:box.y + box.h, box.x:box.x + box.w]
