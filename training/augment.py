"""Seeded data augmentation: rotation, zoom, shift and horizontal flip.

The original recipe's ImageDataGenerator(rotation, zoom, shift) plus flips, done as one
random affine warp per image with OpenCV on uint8 arrays: a 48x48 warp costs a few
microseconds, so augmentation is never the bottleneck of a CPU training run and works
the same under every Keras backend.
"""
from __future__ import annotations

import cv2
import numpy as np


def random_affine(
    images: np.ndarray,
    rng: np.random.Generator,
    rotation: float = 10.0,
    zoom: float = 0.1,
    shift: float = 0.1,
    flip: bool = True,
) -> np.ndarray:
    """Augment a uint8 (N, H, W) batch. rotation in degrees; zoom and shift as fractions."""
    n, h, w = images.shape[:3]
    out = np.empty_like(images)
    angles = rng.uniform(-rotation, rotation, n)
    scales = rng.uniform(1.0 - zoom, 1.0 + zoom, n)
    shifts = rng.uniform(-shift, shift, (n, 2)) * (w, h)
    flips = rng.random(n) < 0.5 if flip else np.zeros(n, bool)
    center = ((w - 1) / 2.0, (h - 1) / 2.0)
    for i in range(n):
        matrix = cv2.getRotationMatrix2D(center, angles[i], scales[i])
        matrix[:, 2] += shifts[i]
        if flips[i]:
            # x' = (w-1) - x applied after the warp: negate the first row, then offset it.
            matrix[0] = -matrix[0]
            matrix[0, 2] += w - 1
        out[i] = cv2.warpAffine(images[i], matrix, (w, h), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REFLECT_101)
    return out
