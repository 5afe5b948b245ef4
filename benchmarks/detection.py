"""Measure Haar detection parameters on composed group photos with known face boxes.

    .venv/bin/python benchmarks/detection.py

Faces from the two fixture portraits (with margin, mirrored, brightness-jittered) are pasted
at a given size on textured backgrounds; each parameter set is scored by recall (a found box
with IoU >= 0.3 with a true face) and false positives, plus the two real portraits, which
must give exactly one face each. The defaults in emotionlib/detect.py were chosen with it.
"""
from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from emotionlib.detect import Box, HaarParams, detect_faces  # noqa: E402

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"
# Face boxes found on the fixtures at full resolution, widened by 40% for context.
SOURCES = {"obama.jpg": (342, 95, 300, 300), "biden.jpg": (433, 211, 314, 314)}


def iou(a: Box, b: Box) -> float:
    w = min(a.x + a.w, b.x + b.w) - max(a.x, b.x)
    h = min(a.y + a.h, b.y + b.h) - max(a.y, b.y)
    inter = max(0, w) * max(0, h)
    return inter / (a.w * a.h + b.w * b.h - inter)


def group_photo(face_size: int, rng: np.random.Generator, cols=8, rows=4):
    faces = []
    for name, (x, y, w, h) in SOURCES.items():
        image = Image.open(FIXTURES / name).convert("RGB")
        m = int(0.4 * w)
        faces.append(image.crop((x - m, y - m, x + w + m, y + h + m)))
    cell = int(face_size * 1.8) + 12
    noise = rng.integers(60, 200, (rows * cell + 40, cols * cell + 40, 3), dtype=np.uint8)
    canvas = Image.fromarray(noise).resize((cols * cell + 40, rows * cell + 40), Image.BILINEAR)
    truth = []
    for r, c in itertools.product(range(rows), range(cols)):
        face = faces[rng.integers(len(faces))]
        if rng.random() < 0.5:
            face = face.transpose(Image.FLIP_LEFT_RIGHT)
        face = ImageEnhance.Brightness(face).enhance(rng.uniform(0.6, 1.3))
        size = int(face_size * rng.uniform(0.9, 1.1))
        full = int(size * 1.8)
        x, y = 20 + c * cell + rng.integers(0, 8), 20 + r * cell + rng.integers(0, 8)
        canvas.paste(face.resize((full, full)), (x, y))
        m = int((full - size) / 2)
        truth.append(Box(x + m, y + m, size, size))
    return np.asarray(canvas), truth


def score(images, **params):
    found = hits = false = 0
    total = 0
    for image, truth in images:
        boxes = detect_faces(image, HaarParams(**params))
        total += len(truth)
        found += len(boxes)
        matched = {i for i, t in enumerate(truth) if any(iou(t, b) >= 0.3 for b in boxes)}
        hits += len(matched)
        false += sum(1 for b in boxes if all(iou(t, b) < 0.3 for t in truth))
    return hits / total, false


def main() -> None:
    rng = np.random.default_rng(0)
    sets = {size: [group_photo(size, rng) for _ in range(3)] for size in (32, 40, 56, 80)}
    portraits = [np.asarray(Image.open(FIXTURES / n).convert("RGB")) for n in SOURCES]
    print(f"{'minSize':>7}{'minNb':>6}{'scale':>6} | " + " | ".join(f"{s}px recall/FP" for s in sets)
          + " | portraits")
    for min_size, neighbors, scale in itertools.product((24, 30, 40, 50), (4, 5, 6, 8), (1.1, 1.05)):
        params = dict(min_size=min_size, min_neighbors=neighbors, scale_factor=scale)
        cells = [f"{r:10.0%} {fp:2d}" for r, fp in (score(images, **params) for images in sets.values())]
        counts = [len(detect_faces(p, HaarParams(**params))) for p in portraits]
        print(f"{min_size:>7}{neighbors:>6}{scale:>6} | " + " | ".join(cells) + f" | {counts}")


if __name__ == "__main__":
    main()
