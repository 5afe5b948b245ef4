"""Seeded augmentation of uint8 face crops, with OpenCV (a few microseconds per 48 px face).

- ``random_crop_affine``: the geometric recipe the bundled model was trained with
  (training/experiments/gpu_train.py did it on the GPU): a random ``crop`` px window of the 48 px
  face with rotation, scale and extra shift (the scale and position jitter of a detector's
  box), a horizontal mirror, then random erasing of one rectangle.
- ``photo_look``: makes FER2013's sharp, clean 48 px crops look like crops of photos as
  the service cuts them (news photos are softer: a Laplacian variance of ~800 against
  FER2013's ~2,150, measured on 48 px crops), by a random resolution loss, Gaussian blur,
  JPEG re-encoding, sensor noise and contrast/gamma changes.
- ``centre_crop``: the served view (the model sees the centre of the 48 px face).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import cv2
import numpy as np


def centre_crop(images: np.ndarray, crop: int) -> np.ndarray:
    """uint8 (N, S, S) -> (N, crop, crop), the centre window."""
    m = (images.shape[1] - crop) // 2
    return images[:, m:m + crop, m:m + crop]


def random_crop_affine(images: np.ndarray, rng: np.random.Generator, crop: int = 40, rotation: float = 15.0,
                       scale: float = 0.15, shift: float = 0.08, flip: bool = True,
                       erase_p: float = 0.5) -> np.ndarray:
    """uint8 (B, S, S) -> uint8 (B, crop, crop): one affine warp per image (random crop position,
    rotation in degrees, scale and extra shift as fractions, mirror; replicated borders,
    bilinear), then random erasing of one rectangle (2-25% of the area, aspect 1/3..3) filled
    with uniform noise, with probability ``erase_p``."""
    b, full = len(images), images.shape[1]
    out = np.empty((b, crop, crop), np.uint8)
    angle = np.radians(rng.uniform(-rotation, rotation, b))
    s = 1.0 + rng.uniform(-scale, scale, b)
    mirror = np.where(rng.random(b) < 0.5, -1.0, 1.0) if flip else np.ones(b)
    room = 1.0 - crop / full
    t = rng.uniform(-1, 1, (b, 2)) * (room + shift) * (full / 2.0)
    c_in, c_out = (full - 1) / 2.0, (crop - 1) / 2.0
    for i in range(b):
        ca, sa = math.cos(angle[i]) / s[i], math.sin(angle[i]) / s[i]
        a = np.array([[ca * mirror[i], -sa], [sa * mirror[i], ca]])  # output -> input
        offset = np.array([c_in, c_in]) + t[i] - a @ np.array([c_out, c_out])
        out[i] = cv2.warpAffine(images[i], np.hstack([a, offset[:, None]]), (crop, crop),
                                flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
    for i in np.flatnonzero(rng.random(b) < erase_p):
        area = rng.uniform(0.02, 0.25) * crop * crop
        aspect = math.exp(rng.uniform(-math.log(3.0), math.log(3.0)))
        h = int(min(crop, max(1, round(math.sqrt(area * aspect)))))
        w = int(min(crop, max(1, round(math.sqrt(area / aspect)))))
        y0, x0 = rng.integers(0, crop - h + 1), rng.integers(0, crop - w + 1)
        out[i, y0:y0 + h, x0:x0 + w] = rng.integers(0, 256, (h, w), dtype=np.uint8)
    return out


@dataclass(frozen=True)
class PhotoLook:
    """Ranges of ``photo_look``: a share ``share`` of the images gets the look, each of its five
    steps with probability ``p`` (the rest stay sharp, like studio photos and FER2013)."""
    share: float = 0.5
    p: float = 0.5
    min_resolution: float = 0.5      # downscale to this share of the side (at least), then back
    max_blur_sigma: float = 1.0      # Gaussian blur, pixels
    jpeg_quality: tuple[int, int] = (30, 90)
    max_noise: float = 6.0           # Gaussian noise sigma, grey levels
    gamma: tuple[float, float] = (0.7, 1.4)
    contrast: tuple[float, float] = (0.6, 1.2)

    def as_dict(self) -> dict:
        return asdict(self)


def photo_look(images: np.ndarray, rng: np.random.Generator, look: PhotoLook = PhotoLook()) -> np.ndarray:
    """uint8 (B, S, S) -> uint8 (B, S, S) with random photo degradations (see PhotoLook)."""
    if look.p <= 0 or look.share <= 0:
        return images
    out = images.copy()
    b, side = len(images), images.shape[1]
    steps = (rng.random((b, 5)) < look.p) & (rng.random((b, 1)) < look.share)
    for i in range(b):
        face = out[i]
        if steps[i, 0]:  # resolution loss: a smaller face upscaled, as from a distant face
            small = max(8, int(round(side * rng.uniform(look.min_resolution, 1.0))))
            face = cv2.resize(cv2.resize(face, (small, small), interpolation=cv2.INTER_AREA), (side, side),
                              interpolation=cv2.INTER_LINEAR)
        if steps[i, 1]:
            face = cv2.GaussianBlur(face, (0, 0), rng.uniform(0.3, look.max_blur_sigma))
        if steps[i, 2]:
            quality = int(rng.integers(look.jpeg_quality[0], look.jpeg_quality[1] + 1))
            ok, data = cv2.imencode(".jpg", face, [cv2.IMWRITE_JPEG_QUALITY, quality])
            face = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE)
        if steps[i, 3] or steps[i, 4]:
            x = face.astype(np.float32) / 255.0
            if steps[i, 4]:
                x = np.power(x, rng.uniform(*look.gamma))
                mean = x.mean()
                x = (x - mean) * rng.uniform(*look.contrast) + mean
            if steps[i, 3]:
                x = x + rng.normal(0.0, rng.uniform(0, look.max_noise) / 255.0, x.shape)
            face = np.clip(x * 255.0 + 0.5, 0, 255).astype(np.uint8)
        out[i] = face
    return out


def sharpness(images: np.ndarray) -> np.ndarray:
    """Variance of the Laplacian of each uint8 (N, S, S) face: how much fine detail it has."""
    return np.array([cv2.Laplacian(face, cv2.CV_64F).var() for face in images])
