"""Reading FER2013 in its two public forms into (images, labels) arrays.

- image folders: ``DIR/<emotion>/*.jpg|png`` (e.g. ``fer2013/train``), or a parent
  directory plus ``split`` (``fer2013`` + ``train``);
- Kaggle's ``fer2013.csv`` with columns ``emotion,pixels,Usage``, rows picked by ``Usage``.

Labels are FER2013's seven classes in dataset order (``FER2013_LABELS``). Images come
back as uint8 (N, 48, 48) grayscale, exactly as stored; model-input scaling happens in
``emotionlib.preprocess.preprocess_batch``, the function the service uses too.
"""
from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import cv2
import numpy as np

from emotionlib.decode import decode_image
from emotionlib.errors import InputError
from emotionlib.labels import FER2013_LABELS
from emotionlib.preprocess import to_gray

# Where the project's data lives (../shared/data beside the checkout) and where decoded copies
# are cached; every training command defaults to these.
SHARED = "../shared/data"
FER_DATA = f"{SHARED}/fer2013"
PHOTO_POOL = f"{SHARED}/real_photos_train"
PHOTO_DEV_SETS = {"news": f"{SHARED}/real_photos_dev", "posed": f"{SHARED}/posed_photos_dev"}
CACHE_DIR = str(Path.home() / ".cache" / "fer-training")

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}
# Split names accepted for the CSV form, and the folder aliases used by common copies.
CSV_USAGE = {"train": "Training", "val": "PublicTest", "test": "PrivateTest"}
FOLDER_ALIASES = {"train": ("train", "Training"), "val": ("val", "PublicTest", "test"),
                  "test": ("PrivateTest",)}


def _read_gray(path: Path, size: int) -> np.ndarray:
    """Decode exactly as the service decodes an upload, then keep the gray plane."""
    try:
        image = to_gray(decode_image(path.read_bytes()))
    except InputError as exc:
        raise ValueError(f"{path}: {exc}") from None
    if image.shape != (size, size):
        image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
    return image


def list_folder(directory: str | Path) -> tuple[list[Path], np.ndarray]:
    """The image files of ``directory/<emotion>/`` and their FER2013 label indices, in the
    order every loader uses (classes in FER2013_LABELS order, files sorted by name)."""
    directory = Path(directory)
    class_dirs = {d.name.lower(): d for d in directory.iterdir() if d.is_dir()}
    unknown = sorted(set(class_dirs) - set(FER2013_LABELS))
    if unknown or not class_dirs:
        raise ValueError(
            f"{directory} must contain one folder per FER2013 class {FER2013_LABELS}; "
            f"found {sorted(class_dirs)}"
        )
    files, labels = [], []
    for index, name in enumerate(FER2013_LABELS):
        if name not in class_dirs:
            continue
        found = sorted(p for p in class_dirs[name].iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        files.extend(found)
        labels.extend([index] * len(found))
    if not files:
        raise ValueError(f"no images found under {directory}")
    return files, np.asarray(labels, dtype=np.int64)


def load_folder(directory: str | Path, size: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """Load ``directory/<emotion>/*`` images; sorted file order, so results are reproducible."""
    files, labels = list_folder(directory)
    return np.stack([_read_gray(p, size) for p in files]), labels


def split_folder(source: str | Path, split: str) -> Path:
    """The image folder of ``split`` under a dataset folder (``train``, ``val`` or an alias)."""
    source = Path(source)
    for alias in FOLDER_ALIASES.get(split, (split,)):
        if (source / alias).is_dir():
            return source / alias
    return source


def load_csv(path: str | Path, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Load Kaggle's fer2013.csv rows whose ``Usage`` matches ``split``."""
    usage = CSV_USAGE.get(split, split)
    images, labels = [], []
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"emotion", "pixels", "Usage"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path} lacks column(s) {sorted(missing)}")
        for row in reader:
            if row["Usage"] != usage:
                continue
            pixels = np.array(row["pixels"].split(), dtype=np.uint8)
            side = int(round(len(pixels) ** 0.5))
            if side * side != len(pixels):
                raise ValueError(f"{path}: a row has {len(pixels)} pixels, not a square image")
            images.append(pixels.reshape(side, side))
            labels.append(int(row["emotion"]))
    if not images:
        raise ValueError(f"{path} has no rows with Usage == {usage!r}")
    return np.stack(images), np.asarray(labels, dtype=np.int64)


def load_split(source: str | Path, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Load a split from a CSV file, a split folder, or a parent folder of split folders."""
    source = Path(source)
    if source.is_file():
        return load_csv(source, split)
    if not source.is_dir():
        raise FileNotFoundError(f"no such dataset file or folder: {source}")
    return load_folder(split_folder(source, split))


def load_split_cached(source: str | Path, split: str, cache_dir: str | Path | None):
    """load_split, memoised as an .npz in cache_dir (decoding 28k JPEGs takes a while)."""
    if cache_dir is None:
        return load_split(source, split)
    source = Path(source).resolve()
    key = hashlib.sha1(f"{source}|{split}".encode()).hexdigest()[:12]
    cache = Path(cache_dir) / f"fer_{split}_{key}.npz"
    if cache.exists():
        with np.load(cache) as data:
            return data["images"], data["labels"]
    images, labels = load_split(source, split)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, images=images, labels=labels)
    return images, labels
