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


def face_pixels(face: np.ndarray, size: int = 48) -> np.ndarray:
    """A uint8 face crop (HxW gray or HxWx3 RGB) -> uint8 (size, size) grayscale.

    Resized with area interpolation when shrinking and bilinear when enlarging. This is
    what the API worker sends to the model worker (2.3 KB per 48 px face).
    """
    face = np.asarray(face)
    if face.dtype != np.uint8 or face.ndim not in (2, 3) or min(face.shape[:2]) < 1:
        raise ValueError(f"expected a non-empty uint8 image, got {face.dtype} {face.shape}")
    gray = to_gray(face)
    if gray.shape != (size, size):
        shrinking = gray.shape[0] > size or gray.shape[1] > size
        interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
        gray = cv2.resize(gray, (size, size), interpolation=interpolation)
    return np.ascontiguousarray(gray)


def scale_pixels(pixels: np.ndarray, channels: int = 1, scaling: str = "unit") -> np.ndarray:
    """uint8 (N, S, S) or (N, S, S, 1) faces -> float32 (N, S, S, channels) model input:
    "unit" -> [0, 1], "symmetric" -> [-1, 1], "raw" -> [0, 255]; for 3-channel models the
    gray plane is repeated."""
    if scaling not in SCALINGS:
        raise ValueError(f"scaling must be one of {SCALINGS}, got {scaling!r}")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    pixels = np.asarray(pixels)
    if pixels.ndim == 4 and pixels.shape[3] == 1:
        pixels = pixels[..., 0]
    if pixels.ndim != 3:
        raise ValueError(f"expected (N, S, S[, 1]) faces, got {pixels.shape}")
    out = pixels.astype(np.float32)
    if scaling == "unit":
        out *= np.float32(1.0 / 255.0)
    elif scaling == "symmetric":
        out = out * np.float32(1.0 / 127.5) - np.float32(1.0)
    out = out[..., None]
    return np.repeat(out, 3, axis=3) if channels == 3 else out


def preprocess_face(
    face: np.ndarray, size: int = 48, channels: int = 1, scaling: str = "unit"
) -> np.ndarray:
    """Turn a uint8 face crop (HxW gray or HxWx3 RGB) into a model input.

    Returns float32 (size, size, channels): ``face_pixels`` (grayscale, since the training
    data is grayscale, resized) then ``scale_pixels``.
    """
    scale_pixels(np.zeros((0, 1, 1), np.uint8), channels, scaling)  # validate before work
    return scale_pixels(face_pixels(face, size)[None], channels, scaling)[0]


def preprocess_batch(
    faces, size: int = 48, channels: int = 1, scaling: str = "unit"
) -> np.ndarray:
    """preprocess_face over a sequence (or an (N, H, W[, C]) array) -> (N, size, size, channels)."""
    pixels = np.empty((len(faces), size, size), dtype=np.uint8)
    for i, face in enumerate(faces):
        pixels[i] = face_pixels(face, size)
    return scale_pixels(pixels, channels, scaling)
