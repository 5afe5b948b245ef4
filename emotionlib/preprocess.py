"""The one preprocessing function for face crops, shared by training and serving."""
from __future__ import annotations

import cv2
import numpy as np

# How pixel values are scaled before they reach the network.
SCALINGS = ("unit", "symmetric", "raw")


def to_gray(image: np.ndarray) -> np.ndarray:
    """uint8 HxW, HxWx1 or HxWx3 (RGB) -> uint8 HxW grayscale."""
    if image.ndim == 3 and image.shape[2] == 1:
        return image[:, :, 0]
    if image.ndim == 3:
        return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    return image


def preprocess_face(
    face: np.ndarray, size: int = 48, channels: int = 1, scaling: str = "unit"
) -> np.ndarray:
    """Turn a uint8 face crop (HxW gray or HxWx3 RGB) into a model input.

    Returns float32 (size, size, channels): the crop converted to grayscale (the
    training data is grayscale; for 3-channel models the gray plane is repeated),
    resized with area interpolation when shrinking and bilinear when enlarging,
    then scaled: "unit" -> [0, 1], "symmetric" -> [-1, 1], "raw" -> [0, 255].
    """
    if scaling not in SCALINGS:
        raise ValueError(f"scaling must be one of {SCALINGS}, got {scaling!r}")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    face = np.asarray(face)
    if face.dtype != np.uint8 or face.ndim not in (2, 3) or min(face.shape[:2]) < 1:
        raise ValueError(f"expected a non-empty uint8 image, got {face.dtype} {face.shape}")
    gray = to_gray(face)
    if gray.shape != (size, size):
        shrinking = gray.shape[0] > size or gray.shape[1] > size
        interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
        gray = cv2.resize(gray, (size, size), interpolation=interpolation)
    out = gray.astype(np.float32)
    if scaling == "unit":
        out /= 255.0
    elif scaling == "symmetric":
        out = out / 127.5 - 1.0
    out = out[:, :, None]
    if channels == 3:
        out = np.repeat(out, 3, axis=2)
    return out


def preprocess_batch(
    faces, size: int = 48, channels: int = 1, scaling: str = "unit"
) -> np.ndarray:
    """preprocess_face over a sequence (or an (N, H, W[, C]) array) -> (N, size, size, channels)."""
    out = np.empty((len(faces), size, size, channels), dtype=np.float32)
    for i, face in enumerate(faces):
        out[i] = preprocess_face(face, size, channels, scaling)
    return out
