"""Labelled photo folders -> the face crops the service would classify, cached.

A photo folder has ``labels.csv`` (``file,emotion[,identity,...]``, emotions by FER2013's
names) and the images it names: ``../shared/data/real_photos_train`` (training pool),
``real_photos_dev`` and ``posed_photos_dev`` (evaluation only). Each photo goes through the
service's own code, ``EmotionPipeline.locate`` (decode, detector, per-detector framing,
48 px grayscale crop), and its largest face is kept, so training crops look exactly like
served crops and evaluation scores the pipeline as served. Cropping is the slow part
(detection), so the result is cached as an .npz keyed by the folder, the detector and the
labels file's contents.
"""
from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emotionlib.labels import FER2013_LABELS

SIZE = 48


@dataclass
class PhotoCrops:
    """Crops of one photo folder by one detector: ``images`` (M, 48, 48) uint8 for the M
    photos with a face, ``labels`` (N,) FER2013 indices (-1: not one of ours) for all N
    photos, ``found`` (N,) bool, ``index`` (M,) row of each crop, ``identities`` (N,)."""
    images: np.ndarray
    labels: np.ndarray
    found: np.ndarray
    index: np.ndarray
    identities: np.ndarray

    def found_labels(self) -> np.ndarray:
        return self.labels[self.index]


def read_labels(folder: Path) -> list[dict]:
    with open(folder / "labels.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def crop_folder(folder: str | Path, detector: str = "haar", limit: int | None = None) -> PhotoCrops:
    """Run the service's detection and framing on every photo of ``folder``."""
    from emotionlib.errors import InputError
    from emotionlib.pipeline import EmotionPipeline

    folder = Path(folder)
    rows = read_labels(folder)[:limit]
    pipeline = EmotionPipeline(detector=detector, input_size=SIZE)
    images, index, found = [], [], np.zeros(len(rows), bool)
    for i, row in enumerate(rows):
        try:
            located = pipeline.locate((folder / row["file"]).read_bytes())
        except InputError:
            continue
        if not located.detections:
            continue
        areas = [d.box.w * d.box.h for d in located.detections]
        images.append(located.pixels[int(np.argmax(areas))])
        index.append(i)
        found[i] = True
    labels = np.array([FER2013_LABELS.index(r["emotion"]) if r["emotion"] in FER2013_LABELS else -1
                       for r in rows], np.int64)
    identities = np.array([r.get("identity", "") for r in rows])
    crops = np.stack(images) if images else np.zeros((0, SIZE, SIZE), np.uint8)
    return PhotoCrops(crops, labels, found, np.asarray(index, np.int64), identities)


def crop_folder_cached(folder: str | Path, detector: str = "haar", cache_dir: str | Path | None = None) -> PhotoCrops:
    """crop_folder, memoised in cache_dir (None: no cache)."""
    if cache_dir is None:
        return crop_folder(folder, detector)
    folder = Path(folder).resolve()
    digest = hashlib.sha1((folder / "labels.csv").read_bytes()).hexdigest()[:10]
    key = hashlib.sha1(f"{folder}|{detector}|{digest}".encode()).hexdigest()[:12]
    cache = Path(cache_dir) / f"photos_{folder.name}_{detector}_{key}.npz"
    if cache.exists():
        with np.load(cache) as data:
            return PhotoCrops(**{name: data[name] for name in data.files})
    crops = crop_folder(folder, detector)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, **vars(crops))
    return crops
