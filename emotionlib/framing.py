"""Detector box (+ landmarks) -> the face crop the classifier sees.

FER2013's faces are framed in a particular way (square, with some margin around the
face); each detector frames faces differently, so each gets its own mapping to that
framing. ``crop_face`` is the one function serving (and the real-photo evaluation) uses to
cut a face out of a photo; the crop then goes through ``emotionlib.preprocess``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emotionlib.detect import Box


@dataclass(frozen=True)
class Framing:
    """How a detector's box maps to a FER2013-like square crop.

    scale: side of the crop as a multiple of the box's larger side; dy: vertical shift
    of the crop's centre, as a fraction of the box height (positive = down).
    """
    scale: float = 1.0
    dy: float = 0.0


# Per detector; values are measured (see training/framing.py), identity until then.
FRAMINGS: dict[str, Framing] = {"haar": Framing(), "yunet": Framing(), "none": Framing()}


def frame_box(box: Box, detector: str = "haar", landmarks=None) -> tuple[float, float, float]:
    """(centre x, centre y, side) of the square crop for a detected box."""
    framing = FRAMINGS.get(detector, Framing())
    cx = box.x + box.w / 2.0
    cy = box.y + box.h / 2.0 + framing.dy * box.h
    return cx, cy, framing.scale * max(box.w, box.h)


def crop_face(image: np.ndarray, box: Box, detector: str = "haar", landmarks=None) -> np.ndarray:
    """The uint8 face crop for ``box``; parts outside the image are filled by edge replication.

    ``detector="none"`` (a caller-given box, or detect=false) crops exactly the box.
    """
    if detector == "none" or FRAMINGS.get(detector, Framing()) == Framing():
        return image[box.y:box.y + box.h, box.x:box.x + box.w]
    cx, cy, side = frame_box(box, detector, landmarks)
    half = side / 2.0
    x0, y0 = int(round(cx - half)), int(round(cy - half))
    x1, y1 = int(round(cx + half)), int(round(cy + half))
    height, width = image.shape[:2]
    inner = image[max(0, y0):min(height, y1), max(0, x0):min(width, x1)]
    pad = ((max(0, -y0), max(0, y1 - height)), (max(0, -x0), max(0, x1 - width)))
    if any(p for pair in pad for p in pair):
        pad = pad + ((0, 0),) * (image.ndim - 2)
        inner = np.pad(inner, pad, mode="edge")
    return inner
