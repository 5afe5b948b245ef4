"""A teacher's outputs for every training face, computed once and saved (for distillation).

    python -m training.teacher runs/teacher/model.keras runs/teacher/outputs.npz

Writes an .npz with ``fer`` (N, 7), one row per FER2013 Training face in training.data's
order, and ``photos_<detector>`` (M, 7), one row per crop of the photo pool
(training.photos), each the log of the teacher's probabilities averaged over the centre crop
and its mirror image. ``training.train --teacher FILE --teacher-weight W`` mixes them into the
targets (``training.targets.TargetMix``: softmax(log p / temperature)).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from training.augment import centre_crop


def log_probs(model, faces: np.ndarray, batch: int = 512) -> np.ndarray:
    """log of the mean probability over the centre crop and its mirror, for uint8 (N, 48, 48) faces."""
    size = int(model.input_shape[1])
    views = centre_crop(faces, size) if faces.shape[1] != size else faces
    total = 0.0
    for view in (views, views[:, :, ::-1]):
        x = view.astype(np.float32)[..., None] / 255.0
        total = total + np.asarray(model.predict(x, batch_size=batch, verbose=0), np.float64)
    return np.log(np.clip(total / 2, 1e-7, 1.0)).astype(np.float32)


def teacher_outputs(model_path, data: str, photos: str, detectors=("haar", "yunet"), cache_dir=None) -> dict:
    import keras

    from training.data import load_split_cached
    from training.photos import crop_folder_cached

    model = keras.models.load_model(model_path, compile=False)
    images, _ = load_split_cached(data, "train", cache_dir)
    out = {"fer": log_probs(model, images)}
    if photos:
        for detector in detectors:
            out[f"photos_{detector}"] = log_probs(model, crop_folder_cached(photos, detector, cache_dir).images)
    return out


def main(argv=None) -> None:
    from training.data import CACHE_DIR, FER_DATA, PHOTO_POOL

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", type=Path, help="the teacher (.keras, softmax outputs)")
    p.add_argument("out", type=Path, help=".npz to write")
    p.add_argument("--data", default=FER_DATA)
    p.add_argument("--photos", default=PHOTO_POOL, help="photo pool ('' for none)")
    p.add_argument("--photo-detectors", default="haar,yunet")
    p.add_argument("--cache-dir", default=CACHE_DIR)
    args = p.parse_args(argv)
    outputs = teacher_outputs(args.model, args.data, args.photos, args.photo_detectors.split(","),
                              args.cache_dir or None)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(args.out, **outputs)
    print({k: v.shape for k, v in outputs.items()})


if __name__ == "__main__":
    main()
