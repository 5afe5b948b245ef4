"""The whole pipeline on real photos: detect -> frame -> crop -> classify, scored per photo.

    python -m training.experiments.realphoto models/emotion_classifier.keras ../shared/data/real_photos_dev
    python -m training.experiments.realphoto MODEL DEV_DIR --framing-study      # compare crop framings

The dev set (read its README) is for comparing designs only: never train on it or tune
per image. Scoring as its README says: the largest returned face of each photo against
the label, disgust folded into angry; a photo without a face counts as wrong.

``--framing-study`` scores a small grid of framings (crop side as a multiple of the box,
vertical shift of the crop's centre) for each detector and prints the table from which
``emotionlib.framing.FRAMINGS`` is chosen.
"""
from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

from emotionlib.decode import decode_image
from emotionlib.labels import EMOTIONS, FOLDED, fold_probabilities
from emotionlib.preprocess import preprocess_batch

DETECTORS = ("haar", "yunet")
SCALES = (0.9, 1.0, 1.1, 1.2, 1.3)
SHIFTS = (-0.05, 0.0, 0.05, 0.1)


def read_labels(dev_dir: Path) -> list[tuple[Path, str]]:
    with open(dev_dir / "labels.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [(dev_dir / r["file"], FOLDED.get(r["emotion"], r["emotion"])) for r in rows]


def largest_detection(image: np.ndarray, detector):
    """(box, landmarks) of the largest face the detector finds, or None."""
    found = detector.detect(image)
    if not found:
        return None
    best = max(found, key=lambda d: d.box.w * d.box.h)
    return best.box, getattr(best, "landmarks", None)


def crops_for(image, box, framings, landmarks=None):
    from emotionlib.framing import crop_with

    return [crop_with(image, box, framing, landmarks) for framing in framings]


def score(predicted: list[str | None], truth: list[str]) -> dict:
    found = [p is not None for p in predicted]
    right = [p == t for p, t in zip(predicted, truth)]
    per_class = {}
    for name in EMOTIONS:
        idx = [i for i, t in enumerate(truth) if t == name]
        if idx:
            per_class[name] = round(sum(right[i] for i in idx) / len(idx), 4)
    n_found = sum(found)
    return {"photos": len(truth), "face_found": round(n_found / len(truth), 4),
            "right_on_found": round(sum(right) / max(1, n_found), 4),
            "overall": round(sum(right) / len(truth), 4), "per_class_recall": per_class}


def evaluate(model, meta: dict, dev_dir: Path, detector: str, framings, limit: int | None = None) -> list[dict]:
    """One score dict per framing, for one detector."""
    from emotionlib.detectors import make_detector

    rows = read_labels(dev_dir)[:limit]
    found_by = make_detector(detector)
    crops, owners, truth = [], [], []
    for index, (path, label) in enumerate(rows):
        truth.append(label)
        image = decode_image(path.read_bytes())
        found = largest_detection(image, found_by)
        if found is None:
            continue
        box, landmarks = found
        crops.extend(crops_for(image, box, framings, landmarks))
        owners.append(index)
    predicted = [[None] * len(rows) for _ in framings]
    if crops:
        x = preprocess_batch(crops, meta["input_size"], meta["channels"], meta["scaling"])
        probs = fold_probabilities(np.asarray(model.predict(x, batch_size=256, verbose=0)), meta["labels"])
        labels = [EMOTIONS[i] for i in probs.argmax(axis=1)]
        k = len(framings)
        for j, index in enumerate(owners):
            for f in range(k):
                predicted[f][index] = labels[j * k + f]
    return [dict(score(p, truth), detector=detector, scale=f.scale, dy=f.dy, align=f.align)
            for p, f in zip(predicted, framings)]


def load(model_path: Path):
    import keras

    meta_path = model_path.with_suffix(".json")
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    model = keras.models.load_model(model_path, compile=False)
    meta.setdefault("labels", ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"])
    meta.setdefault("scaling", "unit")
    meta["input_size"], meta["channels"] = int(model.input_shape[1]), int(model.input_shape[3])
    return model, meta


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", type=Path, help=".keras model (its .json metadata beside it, if any)")
    p.add_argument("dev_dir", type=Path, help="real-photo folder with labels.csv and images/")
    p.add_argument("--detectors", default=",".join(DETECTORS), help="comma-separated detectors")
    p.add_argument("--framing-study", action="store_true", help="score a grid of crop framings")
    p.add_argument("--scales", type=lambda v: [float(x) for x in v.split(",")], default=list(SCALES),
                   help="framing study: crop sides as multiples of the box")
    p.add_argument("--shifts", type=lambda v: [float(x) for x in v.split(",")], default=list(SHIFTS),
                   help="framing study: vertical shifts of the crop centre (fraction of the box height)")
    p.add_argument("--no-align", action="store_true", help="framing study: skip eye levelling")
    p.add_argument("--limit", type=int, help="only the first N photos (smoke runs)")
    p.add_argument("--out", type=Path, help="write the results as JSON here")
    args = p.parse_args(argv)
    from emotionlib.framing import FRAMINGS, IDENTITY, Framing

    model, meta = load(args.model)
    results = []
    for detector in args.detectors.split(","):
        if args.framing_study:
            aligns = (False, True) if detector == "yunet" and not args.no_align else (False,)
            framings = [IDENTITY] + [Framing(s, d, a) for s in args.scales for d in args.shifts for a in aligns]
        else:
            framings = [FRAMINGS[detector]]
        results.extend(evaluate(model, meta, args.dev_dir, detector, framings, args.limit))
    print(f"{'detector':<8}{'scale':>6}{'dy':>6}{'align':>6}{'found':>8}{'right|found':>12}{'overall':>9}  per-class recall")
    for r in results:
        classes = " ".join(f"{k[:3]} {v:.2f}" for k, v in r["per_class_recall"].items())
        print(f"{r['detector']:<8}{r['scale']:>6}{r['dy']:>6}{r['align']!s:>6}{r['face_found']:>8.1%}{r['right_on_found']:>12.1%}"
              f"{r['overall']:>9.1%}  {classes}")
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
