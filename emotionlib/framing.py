"""Detector box (+ landmarks) -> the face crop the classifier sees.

FER2013's faces are framed in a particular way (square, with some margin around the
face); each detector frames faces differently, so each gets its own mapping to that
framing. ``crop_face`` is the one function serving (and the real-photo evaluation) uses to
cut a face out of a photo; the crop then goes through ``emotionlib.preprocess``.

The framings in ``FRAMINGS`` were chosen with ``python -m training.experiments.realphoto MODEL DEV
--framing-study`` (crop side 0.9-1.3x the box, centre shifted -5%..+10% of its height, and
for YuNet with or without levelling the eyes), on the real-photo dev set, comparing
designs, never per image; the table is in models/start/MODEL_CARD.md.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from emotionlib.geometry import Box


@dataclass(frozen=True)
class Framing:
    """How a detector's box maps to a FER2013-like square crop.

    scale: side of the crop as a multiple of the box's larger side; dy: vertical shift
    of the crop's centre, as a fraction of the box height (positive = down); align:
    rotate about the crop's centre so the eyes are level (needs landmarks).
    """
    scale: float = 1.0
    dy: float = 0.0
    align: bool = False


IDENTITY = Framing()
# Per detector ("none": a caller-given box, or detect=false, is cropped exactly).
# Measured with the bundled model (models/start/framing_study.txt): Haar's box, grown 20% and moved
# down 10% of its height, 54.9% -> 60.6% of dev photos right; YuNet's box moved down 10%,
# 53.2% -> 65.2%. Levelling the eyes did not help (within noise), so it is off.
FRAMINGS: dict[str, Framing] = {"haar": Framing(1.2, 0.1), "yunet": Framing(1.0, 0.1), "none": IDENTITY}


def eye_angle(landmarks) -> float:
    """Degrees the face is rolled by: the angle of the line from one eye to the other."""
    (x0, y0), (x1, y1) = landmarks[0], landmarks[1]
    if x1 < x0:
        x0, y0, x1, y1 = x1, y1, x0, y0
    return math.degrees(math.atan2(y1 - y0, x1 - x0))


def framed_box(box: Box, framing: Framing) -> Box:
    """The square region (possibly reaching outside the image) that ``framing`` crops for ``box``."""
    cx, cy = box.x + box.w / 2.0, box.y + box.h / 2.0 + framing.dy * box.h
    side = max(1, int(round(framing.scale * max(box.w, box.h))))
    return Box(int(round(cx - side / 2.0)), int(round(cy - side / 2.0)), side, side)


def crop_with(image: np.ndarray, box: Box, framing: Framing, landmarks=None) -> np.ndarray:
    """The square crop ``framing`` makes of ``box``; outside the image, edges are replicated."""
    if framing == IDENTITY:
        return image[box.y:box.y + box.h, box.x:box.x + box.w]
    if framing.align and landmarks is not None:
        cx = box.x + box.w / 2.0
        cy = box.y + box.h / 2.0 + framing.dy * box.h
        side = max(1, int(round(framing.scale * max(box.w, box.h))))
        matrix = cv2.getRotationMatrix2D((cx, cy), eye_angle(landmarks), 1.0)
        matrix[:, 2] += (side / 2.0 - cx, side / 2.0 - cy)
        return cv2.warpAffine(image, matrix, (side, side), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)
    region = framed_box(box, framing)
    x0, y0 = region.x, region.y
    x1, y1 = x0 + region.w, y0 + region.h
    height, width = image.shape[:2]
    inner = image[max(0, y0):min(height, y1), max(0, x0):min(width, x1)]
    pad = ((max(0, -y0), max(0, y1 - height)), (max(0, -x0), max(0, x1 - width)))
    if any(p for pair in pad for p in pair):
        inner = np.pad(inner, pad + ((0, 0),) * (image.ndim - 2), mode="edge")
    return inner


def crop_face(image: np.ndarray, box: Box, detector: str = "haar", landmarks=None) -> np.ndarray:
    """The uint8 face crop for a face ``detector`` found at ``box`` (with its landmarks, if any)."""
    return crop_with(image, box, FRAMINGS.get(detector, IDENTITY), landmarks)
