"""Measure face detectors: recall on composed group photos, share of real photos with a face, cost.

    .venv/bin/python benchmarks/detection.py                 # candidates: recall, dev photos, ms/photo
    .venv/bin/python benchmarks/detection.py --grid          # the Haar parameter grid (composed photos only)
    .venv/bin/python benchmarks/detection.py --dev DIR --limit 100 --threads 1

Faces from the two fixture portraits (with margin, mirrored, brightness-jittered) are pasted
at a given size on textured backgrounds; each parameter set is scored by recall (a found box
with IoU >= 0.3 with a true face) and false positives, plus the two real portraits, which
must give exactly one face each. The defaults in emotionlib/detectors/haar.py were chosen with it.
"""
from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from emotionlib.decode import decode_image  # noqa: E402
from emotionlib.detectors.haar import detect_faces  # noqa: E402
from emotionlib.geometry import Box, iou  # noqa: E402
from emotionlib.detectors.haar import HaarDetector, HaarParams  # noqa: E402
from emotionlib.detectors.yunet import YuNetDetector  # noqa: E402
from emotionlib.preprocess import to_gray  # noqa: E402
from tests.clips import FIXTURES, SOURCES, face_sprites  # noqa: E402

DEV_PHOTOS = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "real_photos_dev" / "images"
# (label, detector): today's default first.
CANDIDATES = [
    ("haar 1.1/6 (default)", HaarDetector(HaarParams())),
    ("haar 1.15/5", HaarDetector(HaarParams(scale_factor=1.15, min_neighbors=5))),
    ("haar 1.15/6", HaarDetector(HaarParams(scale_factor=1.15, min_neighbors=6))),
    ("haar 1.1/6 min 26 px", HaarDetector(HaarParams(min_size=26))),
    ("yunet", YuNetDetector()),
]



def group_photo(face_size: int, rng: np.random.Generator, cols=8, rows=4):
    faces = face_sprites()
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


def score(images, detector=None, **params):
    found = hits = false = 0
    total = 0
    detector = detector or HaarDetector(HaarParams(**params))
    for image, truth in images:
        boxes = [d.box for d in detector.detect(image)]
        total += len(truth)
        found += len(boxes)
        matched = {i for i, t in enumerate(truth) if any(iou(t, b) >= 0.3 for b in boxes)}
        hits += len(matched)
        false += sum(1 for b in boxes if all(iou(t, b) < 0.3 for t in truth))
    return hits / total, false


def composed_sets():
    rng = np.random.default_rng(0)
    return {size: [group_photo(size, rng) for _ in range(3)] for size in (32, 40, 56, 80)}


def grid(sets, portraits) -> None:
    print(f"{'minSize':>7}{'minNb':>6}{'scale':>6} | " + " | ".join(f"{s}px recall/FP" for s in sets)
          + " | portraits")
    for min_size, neighbors, scale in itertools.product((24, 30, 40, 50), (4, 5, 6, 8), (1.1, 1.05)):
        params = dict(min_size=min_size, min_neighbors=neighbors, scale_factor=scale)
        cells = [f"{r:10.0%} {fp:2d}" for r, fp in (score(images, **params) for images in sets.values())]
        counts = [len(detect_faces(p, HaarParams(**params))) for p in portraits]
        print(f"{min_size:>7}{neighbors:>6}{scale:>6} | " + " | ".join(cells) + f" | {counts}")


def dev_shares(photos) -> list[tuple[float, float]]:
    """Per candidate: (share of photos with a face found, ms per photo for gray + detection).
    Candidates take turns on each photo, so a busy machine slows them alike."""
    found, seconds = [0] * len(CANDIDATES), [0.0] * len(CANDIDATES)
    for image in photos:
        for i, (_, detector) in enumerate(CANDIDATES):
            started = time.perf_counter()
            found[i] += bool(detector.detect(image, to_gray(image)))
            seconds[i] += time.perf_counter() - started
    n = max(1, len(photos))
    return [(f / n, 1000 * s / n) for f, s in zip(found, seconds)]


def candidates(sets, portraits, photos) -> None:
    print(f"{'detector':<24} | " + " | ".join(f"{s}px rec/FP" for s in sets)
          + f" | portraits | dev photos: face found, ms/photo ({len(photos)} photos)")
    for (label, detector), (share, ms) in zip(CANDIDATES, dev_shares(photos)):
        cells = [f"{r:7.0%} {fp:2d}" for r, fp in (score(images, detector) for images in sets.values())]
        counts = [len(detector.detect(p)) for p in portraits]
        print(f"{label:<24} | " + " | ".join(cells) + f" | {counts}    | {share:6.1%} {ms:6.1f}", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--grid", action="store_true", help="the Haar parameter grid on composed photos only")
    p.add_argument("--dev", type=Path, default=DEV_PHOTOS, help="folder of real photos (evaluation only)")
    p.add_argument("--limit", type=int, default=0, help="use the first N photos of --dev (0: all)")
    p.add_argument("--threads", type=int, default=1, help="OpenCV threads (cv2.setNumThreads)")
    args = p.parse_args()
    import cv2

    cv2.setNumThreads(args.threads)
    sets = composed_sets()
    portraits = [np.asarray(Image.open(FIXTURES / n).convert("RGB")) for n in SOURCES]
    if args.grid:
        return grid(sets, portraits)
    files = sorted(f for f in args.dev.iterdir() if f.suffix.lower() in (".jpg", ".jpeg", ".png"))
    files = files[:args.limit] if args.limit else files
    photos = [decode_image(f.read_bytes(), 50_000_000) for f in files]
    candidates(sets, portraits, photos)


if __name__ == "__main__":
    main()
