"""Pack FER2013's train and val JPEGs into one file that travels to a GPU machine.

    python -m training.experiments.gpu_pack ../shared/data/fer2013 .gpu/fer2013_jpeg.npz

The JPEG bytes are stored as they are (48.5 MiB: smaller than the pixels, even
compressed), concatenated, with offsets and labels, in the order ``training.data``
loads them; plus a checksum of the pixels this project's own loader decodes, so the
unpacking side can prove it decoded the same images.
"""
from __future__ import annotations

import argparse
import hashlib
import os
from pathlib import Path

import numpy as np

from emotionlib.labels import FER2013_LABELS
from training.data import IMAGE_SUFFIXES, load_split


def split_files(root: Path, split: str) -> tuple[list[Path], list[int]]:
    """Files and labels of a split in training.data.load_folder's order."""
    files, labels = [], []
    for index, name in enumerate(FER2013_LABELS):
        folder = root / split / name
        if not folder.is_dir():
            continue
        chosen = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        files.extend(chosen)
        labels.extend([index] * len(chosen))
    return files, labels


def pixel_digest(images: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(images, dtype=np.uint8).tobytes()).hexdigest()


def pack(root: str | Path, out: str | Path, splits=("train", "val"), verify: bool = True) -> Path:
    root, out = Path(root), Path(out)
    arrays = {}
    for split in splits:
        files, labels = split_files(root, split)
        if not files:
            raise ValueError(f"no images under {root / split}")
        blobs = [p.read_bytes() for p in files]
        offsets = np.cumsum([0] + [len(b) for b in blobs]).astype(np.int64)
        arrays[f"{split}_bytes"] = np.frombuffer(b"".join(blobs), dtype=np.uint8)
        arrays[f"{split}_offsets"] = offsets
        arrays[f"{split}_labels"] = np.asarray(labels, dtype=np.int8)
        if verify:
            images, loaded_labels = load_split(root, split)
            assert np.array_equal(loaded_labels, labels), "label order differs from training.data"
            arrays[f"{split}_sha256"] = np.array(pixel_digest(images))
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, **arrays)
    return out


def unpack(path: str | Path, split: str, decode=None) -> tuple[np.ndarray, np.ndarray]:
    """(N, 48, 48) uint8 images and int64 labels of a split of a pack.

    ``decode`` maps JPEG bytes to a 2-D uint8 array (default: Pillow, grayscale).
    """
    if decode is None:
        import io

        from PIL import Image

        def decode(blob: bytes) -> np.ndarray:
            with Image.open(io.BytesIO(blob)) as image:
                return np.asarray(image.convert("L"), dtype=np.uint8)
    with np.load(path) as data:
        raw = data[f"{split}_bytes"].tobytes()
        offsets = data[f"{split}_offsets"]
        labels = data[f"{split}_labels"].astype(np.int64)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(16, os.cpu_count() or 1)) as pool:
        images = np.stack(list(pool.map(lambda ab: decode(raw[ab[0]:ab[1]]), zip(offsets[:-1], offsets[1:]),
                                        chunksize=512)))
    return images, labels


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", help="FER2013 folder with train/ and val/")
    p.add_argument("out", help="output .npz")
    args = p.parse_args(argv)
    out = pack(args.data, args.out)
    print(f"wrote {out} ({out.stat().st_size / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
