"""OpenCV's Haar frontal-face cascade (the default detector).

Parameters chosen with benchmarks/detection.py (composed group photos, 3 x 32 faces per
size, recall / false positives; plus the two real portraits):

    minSize minNb scale |  32px    |  40px    |  56px    |  80px    | portraits
         24     6   1.1 |  99%  0  |  99%  0  | 100%  1  | 100%  0  | [1, 1]   <- chosen
         30     6   1.1 |  40%  0  |  99%  0  | 100%  1  | 100%  0  | [1, 1]
         40     6   1.1 |   0%  0  |  54%  0  | 100%  1  | 100%  0  | [1, 1]

A minimum size close to the smallest faces matters most (the cascade steps window sizes by
the scale factor, so minSize 30 rarely fits a 32 px face); minNeighbors 6 and scale 1.1
keep the real portraits at exactly one face each.

Cost (issue 8; benchmarks/detection.py, candidates interleaved photo by photo, 1 OpenCV
thread, on a busy 2-core machine, so compare rows, not absolute ms):

    candidate            | 32px | 40px | 56px | 80px | dev photos with a face | ms/photo
    1.1 / 6 / 24 (kept)  |  99% |  99% | 100% | 100% | 92.8%                 | 161
    1.15 / 5 / 24        |  78% |  99% | 100% |  98% | 93.9%                 | 121
    1.15 / 6 / 24        |  66% |  98% | 100% |  98% | 89.8%                 | 120
    1.1 / 6 / 26         |  93% |  99% | 100% | 100% | 92.8%                 | 152
    yunet                | 100% | 100% | 100% | 100% | 100%                  |  31

OpenCV's other frontal cascades, measured the same way (second session, relative to the kept
row at 103 ms): alt2 1.1/6 70% at 32 px, 119 ms; alt2 1.1/4 85%, 118 ms; alt 1.1/6 69%,
147 ms; alt 1.1/4 88%, 148 ms. Slower and weaker on small faces, so the default cascade stays.

With the large-face fallback (below; session 4, same script, run beside a training job, so
only its recall counts): 1.1 / 6 / 24 keeps 99% / 99% / 100% / 100% and the same false positives,
and finds a face in 97.7% of the dev photos (92.8% without it).

The 24 px windows at full resolution are most of the cost and are what finds 32 px faces.
Shrinking the detection image so that the smallest face is a share of the image (1/13 ..
1/10 of the shorter side) lost recall on the 32 px photos too (99% -> 98/96/78/47%). So the
parameters stay; what is done: the gray image is made once per photo (pipeline), detections
of concurrent requests run in parallel threads, OpenCV threads per worker are configurable.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import cv2
import numpy as np

from emotionlib.geometry import Box, Detection, downscale, keep_faces, scale_detections
from emotionlib.options import PipelineOptions
from emotionlib.pool import IdlePool
from emotionlib.preprocess import to_gray

_DEFAULTS = PipelineOptions()
CASCADE_FILE = os.path.join(cv2.data.haarcascades, "haarcascade_frontalface_default.xml")


@dataclass(frozen=True)
class HaarParams:
    """Detection parameters (defaults: emotionlib.PipelineOptions, chosen as above).

    max_side: images are downscaled so their longer side is at most this before
    detection; boxes are mapped back to the original image's coordinates. min_size: the
    smallest face, in pixels of the (downscaled) detection image. min_neighbors 6 rather
    than OpenCV's usual 3-5: at 5, a re-encoded portrait gave a second box on the collar.

    large_face_neighbors: when nothing reaches min_neighbors, a box whose side is at least
    large_face_share of the image's shorter side is accepted from this many neighbours up.
    A face that fills the frame fits the cascade's window at only a few positions and
    scales, so it collects few neighbours: the faces Haar missed on the real-photo dev set
    were such faces (77-92% of the photo's side). Same scan, no extra cost (see below).
    Set it equal to min_neighbors to turn the fallback off.
    """
    max_side: int = _DEFAULTS.detect_max_side
    scale_factor: float = _DEFAULTS.haar_scale_factor
    min_neighbors: int = _DEFAULTS.haar_min_neighbors
    min_size: int = _DEFAULTS.haar_min_face_size
    max_faces: int = _DEFAULTS.max_faces_per_image
    large_face_neighbors: int = _DEFAULTS.haar_large_face_neighbors
    large_face_share: float = 0.5

    @classmethod
    def from_options(cls, options: PipelineOptions) -> "HaarParams":
        return cls(max_side=options.detect_max_side, scale_factor=options.haar_scale_factor,
                   min_neighbors=options.haar_min_neighbors, min_size=options.haar_min_face_size,
                   max_faces=options.max_faces_per_image, large_face_neighbors=options.haar_large_face_neighbors)


def _load_cascade() -> cv2.CascadeClassifier:
    cascade = cv2.CascadeClassifier(CASCADE_FILE)
    if cascade.empty():
        raise RuntimeError(f"cannot load the Haar cascade {CASCADE_FILE}")
    return cascade


# One cascade per concurrent detection (CascadeClassifier is not documented as thread-safe),
# each keeping buffers for the largest image it saw: pooled, and dropped when the worker idles.
CASCADES = IdlePool(_load_cascade)


class HaarDetector:
    """Haar cascade on the grayscale image. Score: n / (n + min_neighbors), where n is the
    number of overlapping cascade windows merged into the box (0.5 at the acceptance
    threshold, towards 1 for faces found at many positions and scales; 0.4-0.5 for a
    frame-filling face accepted by the large-face fallback)."""

    name = "haar"

    def __init__(self, params: HaarParams = HaarParams()):
        self.params = params

    def detect(self, image: np.ndarray, gray: np.ndarray | None = None) -> list[Detection]:
        """Faces in an RGB or gray uint8 image (``gray``: its grayscale, if already made)."""
        p = self.params
        gray = to_gray(image) if gray is None else gray
        height, width = gray.shape[:2]
        small, scale = downscale(gray, p.max_side)
        if min(small.shape[:2]) < p.min_size:
            return []
        # One scan grouped at the lower threshold: OpenCV's grouping (clusters of similar
        # windows, a box kept when its cluster has more than the threshold, nested smaller
        # boxes dropped only for a box with more neighbours) makes the boxes with more than
        # min_neighbors exactly those a scan at min_neighbors returns.
        with CASCADES.borrow() as cascade:
            found, neighbours = cascade.detectMultiScale2(
                small, scaleFactor=p.scale_factor, minNeighbors=min(p.min_neighbors, p.large_face_neighbors),
                minSize=(p.min_size, p.min_size))
        if not len(found):
            return []
        found = np.asarray(found).reshape(-1, 4)
        counts = np.asarray(neighbours, dtype=np.float64).reshape(-1)
        keep = counts > p.min_neighbors
        if not keep.any():
            large = found[:, 2:].max(axis=1) >= p.large_face_share * min(small.shape[:2])
            keep = large & (counts > p.large_face_neighbors)
        if not keep.any():
            return []
        found, counts = found[keep], counts[keep]
        scores = counts / (counts + max(p.min_neighbors, 1))
        return keep_faces(scale_detections(found, scale, width, height, scores), p.max_faces)


def detect_faces(image: np.ndarray, params: HaarParams | None = None) -> list[Box]:
    """Haar boxes for an RGB or gray uint8 image (the default detector, as a plain function)."""
    return [d.box for d in HaarDetector(params or HaarParams()).detect(image)]
