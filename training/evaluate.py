"""Evaluate a Keras emotion model on a FER2013 split, or compare candidates in one table.

    python -m training.evaluate models/emotion_vggnet.keras ../shared/data/fer2013 --split val
    python -m training.evaluate --table A.keras B.keras --data ../shared/data/fer2013 \
        --dev ../shared/data/real_photos_dev --out models/candidates.md

Prints and writes ``evaluation.json`` (7-class accuracy, 6-class accuracy with disgust
folded into angry as the API reports it, per-class precision/recall/F1, confusion
matrices) and ``confusion_matrix.png`` into --out (default: the model's folder).
"""
from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

from emotionlib.labels import EMOTIONS, FER2013_LABELS, FOLDED, fold_probabilities
from emotionlib.preprocess import SCALINGS, preprocess_batch
from training.data import load_split_cached


def per_class(confusion: np.ndarray, labels) -> dict:
    """Precision, recall, F1 and support per class from a (true x predicted) matrix."""
    out = {}
    for i, name in enumerate(labels):
        tp = confusion[i, i]
        predicted, actual = confusion[:, i].sum(), confusion[i].sum()
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out[name] = {"precision": round(float(precision), 4), "recall": round(float(recall), 4),
                     "f1": round(float(f1), 4), "support": int(actual)}
    return out


def confusion_matrix(y_true, y_pred, n: int) -> np.ndarray:
    matrix = np.zeros((n, n), dtype=np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    return matrix


def predict(model, images: np.ndarray, scaling: str, batch_size: int = 256) -> np.ndarray:
    size, channels = int(model.input_shape[1]), int(model.input_shape[3])
    x = preprocess_batch(images, size, channels, scaling)
    return np.asarray(model.predict(x, batch_size=batch_size, verbose=0))


def report_from_probs(probs: np.ndarray, y_true: np.ndarray, labels=FER2013_LABELS) -> dict:
    labels = list(labels)
    y_pred = probs.argmax(axis=1)
    cm7 = confusion_matrix(y_true, y_pred, len(labels))
    # The API's view: fold the model's classes into the six emotions, truth likewise.
    to6 = np.array([EMOTIONS.index(FOLDED.get(name, name)) for name in labels])
    y6_true = to6[y_true]
    y6_pred = fold_probabilities(probs, labels).argmax(axis=1)
    cm6 = confusion_matrix(y6_true, y6_pred, len(EMOTIONS))
    return {
        "samples": int(len(y_true)),
        "accuracy_7": round(float((y_pred == y_true).mean()), 4),
        "accuracy_6": round(float((y6_pred == y6_true).mean()), 4),
        "labels_7": labels,
        "labels_6": list(EMOTIONS),
        "per_class_7": per_class(cm7, labels),
        "per_class_6": per_class(cm6, EMOTIONS),
        "confusion_7": cm7.tolist(),
        "confusion_6": cm6.tolist(),
    }


TO6 = np.array([EMOTIONS.index(FOLDED.get(name, name)) for name in FER2013_LABELS])


def fer_scores(probs: np.ndarray, labels: np.ndarray, ferplus: np.ndarray) -> dict:
    """PublicTest accuracies of (N, 7) probabilities: 7- and 6-class by FER2013's labels,
    6-class by the FER+ majority (training.targets.ferplus_majority; -1 rows left out)."""
    probs = np.asarray(probs)
    six = fold_probabilities(probs, FER2013_LABELS).argmax(axis=1)
    known = ferplus >= 0
    return {"fer2013_7": round(float((probs.argmax(axis=1) == labels).mean()), 4),
            "fer2013_6": round(float((six == TO6[labels]).mean()), 4),
            "ferplus_6": round(float((six[known] == ferplus[known]).mean()), 4)}


def photo_scores(probs: np.ndarray, crops) -> dict:
    """The whole pipeline on a photo set (training.photos.PhotoCrops, probabilities (M, 7) of
    its crops): the largest face of each photo against its label, disgust folded into angry,
    a photo without a face wrong; found share, accuracy on found, overall, recall per class."""
    truth = TO6[crops.labels]
    predicted = np.full(len(truth), -1)
    predicted[crops.index] = fold_probabilities(probs, FER2013_LABELS).argmax(axis=1)
    right = predicted == truth
    recall = {name: round(float(right[truth == k].mean()), 4) for k, name in enumerate(EMOTIONS) if (truth == k).any()}
    return {"photos": int(len(truth)), "face_found": round(float(crops.found.mean()), 4),
            "right_on_found": round(float(right[crops.found].mean()), 4) if crops.found.any() else 0.0,
            "overall": round(float(right.mean()), 4), "per_class_recall": recall}


def plot_confusion(matrix, labels, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrix = np.asarray(matrix, dtype=float)
    norm = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, f"{norm[i, j]:.2f}\n({int(matrix[i, j])})", ha="center", va="center",
                    fontsize=7, color="white" if norm[i, j] > 0.5 else "black")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_curves(epochs, panels, path: Path) -> None:
    """Side-by-side line plots per epoch: ``panels`` is a list of [(label, values), ...]."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4))
    for ax, lines in zip(axes, panels):
        for label, values in lines:
            ax.plot(epochs, values, label=label)
        ax.set_xlabel("epoch")
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_history(history_csv: Path, path: Path) -> None:
    with open(history_csv, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        return
    panels = []
    for key in ("loss", "accuracy"):
        lines = [(f"train {key}", [float(r[key]) for r in rows])]
        if f"val_{key}" in rows[0]:
            lines.append((f"val {key}", [float(r[f"val_{key}"]) for r in rows]))
        panels.append(lines)
    plot_curves([int(r["epoch"]) + 1 for r in rows], panels, path)


def evaluate_model(model_path, data, split: str = "val", out_dir=None, scaling: str = "unit",
                   cache_dir=None, labels=FER2013_LABELS) -> dict:
    import keras

    model = keras.models.load_model(model_path, compile=False)
    images, y_true = load_split_cached(data, split, cache_dir)
    probs = predict(model, images, scaling)
    if probs.shape[1] != len(labels):
        raise ValueError(f"model has {probs.shape[1]} outputs but {len(labels)} labels were given")
    report = {"model": str(model_path), "data": str(data), "split": split, "scaling": scaling,
              **report_from_probs(probs, y_true, labels)}
    out_dir = Path(out_dir or Path(model_path).parent)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "evaluation.json").write_text(json.dumps(report, indent=2))
    plot_confusion(report["confusion_7"], report["labels_7"], out_dir / "confusion_matrix.png",
                   f"{split}: 7-class accuracy {report['accuracy_7']:.2%}")
    return report


def onnx_flops(model) -> float:
    """Multiply-add FLOPs (x2) of one face through the model as served (its ONNX graph)."""
    from onnx import shape_inference

    from emotionlib.convert import keras_to_onnx

    graph = keras_to_onnx(model)
    graph.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1
    inferred = shape_inference.infer_shapes(graph).graph
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in list(inferred.value_info) + list(inferred.input) + list(inferred.output)}
    consts = {t.name: list(t.dims) for t in inferred.initializer}
    flops = 0.0
    for node in inferred.node:
        if node.op_type == "Conv":
            out, kernel = shapes[node.output[0]], consts[node.input[1]]
            flops += 2.0 * np.prod(out) * np.prod(kernel[1:])
        elif node.op_type == "MatMul":
            a = shapes.get(node.input[0]) or consts[node.input[0]]
            b = consts.get(node.input[1]) or shapes[node.input[1]]
            flops += 2.0 * np.prod(a[:-1]) * a[-1] * b[-1]
    return float(flops)


def time_per_face(model, batch: int, repeats: int = 20) -> float:
    """Median milliseconds per face of the served runtime (ONNX Runtime, all cores)."""
    import tempfile
    import time

    from emotionlib.convert import keras_to_onnx
    from emotionlib.classifier import Classifier

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        path.write_bytes(keras_to_onnx(model).SerializeToString())
        size, channels = int(model.input_shape[1]), int(model.input_shape[3])
        classifier = Classifier(path, FER2013_LABELS, size, channels)
        faces = np.random.default_rng(0).integers(0, 256, (batch, size, size), dtype=np.uint8)
        for _ in range(3):
            classifier(faces)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            classifier(faces)
            times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1000 / batch


def candidate_row(model_path: Path, data, dev_dir, cache_dir=None) -> dict:
    """Every number of one candidate: PublicTest, real photos per detector, cost."""
    from training.realphoto import DETECTORS, evaluate as evaluate_photos, load

    model, meta = load(model_path)
    images, y_true = load_split_cached(data, "val", cache_dir)
    report = report_from_probs(predict(model, images, meta["scaling"]), y_true, meta["labels"])
    row = {"model": str(model_path), "parameters": int(model.count_params()),
           "val_accuracy_7": report["accuracy_7"], "val_accuracy_6": report["accuracy_6"],
           "gflop_per_face": round(onnx_flops(model) / 1e9, 3),
           "ms_per_face_batch1": round(time_per_face(model, 1), 2),
           "ms_per_face_batch32": round(time_per_face(model, 32), 2)}
    if dev_dir:
        from emotionlib.framing import FRAMINGS

        for detector in DETECTORS:
            row[f"real_{detector}"] = evaluate_photos(model, meta, Path(dev_dir), detector, [FRAMINGS[detector]])[0]
    return row


def write_table(rows: list[dict], out: Path) -> str:
    """A markdown table of candidate rows (and the rows as JSON beside it)."""
    head = ("| model | params | PublicTest 7-class | 6-class | GFLOP/face | ms/face b1 | ms/face b32 |"
            " real Haar found / right / overall | real YuNet found / right / overall |")
    lines = [head, "|" + "---|" * 9]
    for r in rows:
        real = []
        for detector in ("haar", "yunet"):
            d = r.get(f"real_{detector}")
            real.append(f"{d['face_found']:.1%} / {d['right_on_found']:.1%} / **{d['overall']:.1%}**" if d else "-")
        lines.append(f"| `{Path(r['model']).name}` | {r['parameters'] / 1e6:.2f} M | **{r['val_accuracy_7']:.2%}** | "
                     f"{r['val_accuracy_6']:.2%} | {r['gflop_per_face']:.2f} | {r['ms_per_face_batch1']:.2f} | "
                     f"{r['ms_per_face_batch32']:.2f} | {real[0]} | {real[1]} |")
    per_class = ["", "Real-photo recall per class (overall, largest face per photo):", "",
                 "| model | detector | " + " | ".join(EMOTIONS) + " |", "|" + "---|" * (2 + len(EMOTIONS))]
    for r in rows:
        for detector in ("haar", "yunet"):
            d = r.get(f"real_{detector}")
            if d:
                recall = d["per_class_recall"]
                cells = " | ".join(f"{recall[e]:.0%}" if e in recall else "-" for e in EMOTIONS)
                per_class.append(f"| `{Path(r['model']).name}` | {detector} | {cells} |")
    text = "\n".join(lines + per_class) + "\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    out.with_suffix(".json").write_text(json.dumps(rows, indent=1))
    return text


def table_main(argv) -> None:
    p = argparse.ArgumentParser(description="Compare candidate models in one table.")
    p.add_argument("--table", nargs="+", type=Path, required=True, help="candidate .keras files")
    p.add_argument("--data", required=True, help="FER2013 folder or csv (PublicTest = val)")
    p.add_argument("--dev", help="real-photo dev folder (labels.csv, images/)")
    p.add_argument("--out", type=Path, default=Path("runs/candidates.md"), help="markdown table to write")
    p.add_argument("--cache-dir", default=None, help="cache decoded datasets here as .npz")
    args = p.parse_args(argv)
    rows = [candidate_row(m, args.data, args.dev, args.cache_dir) for m in args.table]
    print(write_table(rows, args.out))


def main(argv=None) -> None:
    import sys

    argv = sys.argv[1:] if argv is None else argv
    if "--table" in argv:
        return table_main(argv)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="a .keras (or .h5) model file")
    p.add_argument("data", help="FER2013 folder or fer2013.csv")
    p.add_argument("--split", default="val", help="train, val (PublicTest) or test (PrivateTest)")
    p.add_argument("--scaling", choices=SCALINGS, default="unit", help="pixel scaling the model expects")
    p.add_argument("--out", help="output folder (default: next to the model)")
    p.add_argument("--cache-dir", default=None, help="cache decoded datasets here as .npz")
    args = p.parse_args(argv)
    report = evaluate_model(args.model, args.data, args.split, args.out, args.scaling, args.cache_dir)
    print(f"{report['samples']} images of split {args.split!r}")
    print(f"7-class accuracy: {report['accuracy_7']:.4f}")
    print(f"6-class accuracy: {report['accuracy_6']:.4f} (disgust folded into angry)")
    print(f"{'class':<10}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>9}")
    for name, row in report["per_class_7"].items():
        print(f"{name:<10}{row['precision']:>10.3f}{row['recall']:>10.3f}{row['f1']:>10.3f}{row['support']:>9}")


if __name__ == "__main__":
    main()
