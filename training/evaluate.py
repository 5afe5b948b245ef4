"""Score candidate models as the service runs them: one table row per candidate.

    python -m training.evaluate models/emotion_classifier.onnx runs/teacher/model.keras \
        --out models/candidates.md

Every number comes from the ONNX graph on ONNX Runtime (emotionlib.classifier.Classifier,
the service's own runtime): a ``.onnx`` file is scored as it is (an int8 graph too), a Keras
file is converted first (emotionlib.convert). Per candidate:

- PublicTest (``../shared/data/fer2013/val``): 7- and 6-class accuracy by FER2013's labels
  (disgust folded into angry for 6), and 6-class accuracy by the FER+ majority
  (training.targets.ferplus_majority; images without one left out);
- the whole pipeline on both photo dev sets with each detector (training.photos: the
  service's own detection and framing, largest face per photo, a photo without a face
  wrong): faces found, right on found, overall, recall per class;
- cost: GFLOP per face (the graph's convolutions and matrix products), ms per face at batch
  1 and 32 on this machine's CPU (all cores; compare rows of one run, not machines).

``--report DIR`` also writes evaluation.json (per-class precision/recall/F1, confusion
matrices, all of the above) and confusion_matrix.png for the first candidate (the model
card reads them). The dev sets are for comparing designs only: never tune on them.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from emotionlib.labels import EMOTIONS, FER2013_LABELS, FOLDED, fold_probabilities
from training.data import CACHE_DIR, FER_DATA, PHOTO_DEV_SETS as PHOTO_SETS

DETECTORS = ("haar", "yunet")
TO6 = np.array([EMOTIONS.index(FOLDED.get(name, name)) for name in FER2013_LABELS])


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


def report_from_probs(probs: np.ndarray, y_true: np.ndarray, labels=FER2013_LABELS) -> dict:
    """Accuracies, per-class scores and confusion matrices of (N, 7) probabilities, 7-class and
    as the API reports them (6 classes, disgust folded into angry, truth likewise)."""
    labels = list(labels)
    y_pred = probs.argmax(axis=1)
    cm7 = confusion_matrix(y_true, y_pred, len(labels))
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


def fer_scores(probs: np.ndarray, labels: np.ndarray, ferplus: np.ndarray) -> dict:
    """PublicTest accuracies of (N, 7) probabilities: 7- and 6-class by FER2013's labels,
    6-class by the FER+ majority (training.targets.ferplus_majority; -1 rows left out)."""
    probs = np.asarray(probs)
    six = fold_probabilities(probs, FER2013_LABELS).argmax(axis=1)
    known = ferplus >= 0
    return {"fer2013_7": round(float((probs.argmax(axis=1) == labels).mean()), 4),
            "fer2013_6": round(float((six == TO6[labels]).mean()), 4),
            "ferplus_6": round(float((six[known] == ferplus[known]).mean()), 4), "ferplus_images": int(known.sum())}


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
    for ax, lines in zip(np.atleast_1d(axes), panels):
        for label, values in lines:
            ax.plot(epochs, values, label=label)
        ax.set_xlabel("epoch")
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def served_graph(path: Path, workdir: Path) -> Path:
    """The ONNX graph the service would run for a candidate file (.onnx as it is; Keras converted)."""
    if path.suffix.lower() == ".onnx":
        return path
    from emotionlib.convert import checked_onnx, load_keras

    spec, model = load_keras(path, FER2013_LABELS)
    out = workdir / f"{path.stem}.onnx"
    out.write_bytes(checked_onnx(model, spec["input_size"], spec["channels"]))
    return out


def onnx_flops(graph_path: Path) -> float:
    """Multiply-add FLOPs (x2) of one face through an ONNX graph: its Conv and MatMul/Gemm nodes
    (an int8 QDQ graph keeps them, so it counts the same work)."""
    import onnx
    from onnx import numpy_helper, shape_inference

    model = onnx.load(str(graph_path))
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1
    graph = shape_inference.infer_shapes(model).graph
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in list(graph.value_info) + list(graph.input) + list(graph.output)}
    consts = {t.name: list(numpy_helper.to_array(t).shape) for t in graph.initializer}
    # QDQ: a weight reaches Conv/MatMul through DequantizeLinear; follow it to the initializer
    producer = {out: node for node in graph.node for out in node.output}

    def const_shape(name):
        while name not in consts and name in producer and producer[name].op_type in ("DequantizeLinear", "Identity"):
            name = producer[name].input[0]
        return consts.get(name)

    flops = 0.0
    for node in graph.node:
        if node.op_type == "Conv":
            out, kernel = shapes[node.output[0]], const_shape(node.input[1])
            flops += 2.0 * np.prod(out) * np.prod(kernel[1:])
        elif node.op_type in ("MatMul", "Gemm"):
            a = shapes.get(node.input[0]) or const_shape(node.input[0])
            b = const_shape(node.input[1]) or shapes[node.input[1]]
            flops += 2.0 * np.prod(a[:-1]) * a[-1] * b[-1]
    return float(flops)


def time_per_face(classifier, batch: int, seconds: float = 2.0) -> float:
    """Median milliseconds per face of ``classifier`` on random faces at ``batch``."""
    faces = np.random.default_rng(0).integers(0, 256, (batch, classifier.input_size, classifier.input_size),
                                              dtype=np.uint8)
    for _ in range(3):
        classifier(faces)
    times, started = [], time.perf_counter()
    while time.perf_counter() - started < seconds or len(times) < 5:
        t0 = time.perf_counter()
        classifier(faces)
        times.append(time.perf_counter() - t0)
    return float(np.median(times)) * 1000 / batch


class Benchmarks:
    """The evaluation data, loaded once for all candidates."""

    def __init__(self, fer: str = FER_DATA, photo_sets: dict = PHOTO_SETS, cache_dir=None, detectors=DETECTORS):
        """fer: FER2013 folder (val/ and ferplus_votes.csv); photo_sets: name -> labelled photo folder."""
        from training.data import list_folder, load_split_cached, split_folder
        from training.photos import crop_folder_cached
        from training.targets import ferplus_majority, read_votes

        self.images, self.labels = load_split_cached(fer, "val", cache_dir)
        files, _ = list_folder(split_folder(fer, "val"))
        self.ferplus = ferplus_majority(read_votes(fer, files))
        self.photos = {(name, detector): crop_folder_cached(folder, detector, cache_dir)
                       for name, folder in photo_sets.items() for detector in detectors}


def raw_probs(classifier, faces: np.ndarray, batch: int = 256) -> np.ndarray:
    """(N, 7) model outputs of uint8 48 px faces, through the served preprocessing and runtime."""
    from emotionlib.preprocess import scale_pixels

    out = [classifier.raw(scale_pixels(faces[i:i + batch], classifier.channels, classifier.scaling))
           for i in range(0, len(faces), batch)]
    return np.concatenate(out) if out else np.zeros((0, len(FER2013_LABELS)), np.float32)


def candidate_row(path: Path, bench: Benchmarks, workdir: Path, timing: bool = True) -> tuple[dict, np.ndarray]:
    """Every number of one candidate, and its PublicTest probabilities (for --report)."""
    from emotionlib.classifier import Classifier

    graph = served_graph(path, workdir)
    classifier = Classifier(graph, FER2013_LABELS)
    probs = raw_probs(classifier, bench.images)
    row = {"model": path.name, **fer_scores(probs, bench.labels, bench.ferplus),
           "gflop_per_face": round(onnx_flops(graph) / 1e9, 3)}
    for (short, detector), crops in bench.photos.items():
        row[f"{short}_{detector}"] = photo_scores(raw_probs(classifier, crops.images), crops)
    if timing:
        row["ms_per_face_b1"] = round(time_per_face(classifier, 1), 3)
        row["ms_per_face_b32"] = round(time_per_face(classifier, 32), 3)
    return row, probs


def table(rows: list[dict]) -> str:
    """The candidates as markdown: the main table, then recall per class on the photo sets."""
    photo_keys = [k for k in rows[0] if isinstance(rows[0][k], dict)] if rows else []
    head = ["model", "PublicTest 7c", "6c", "FER+ 6c"] + [f"{k.replace('_', ' ')} found / right / overall"
                                                          for k in photo_keys]
    head += ["GFLOP", "ms/face b1", "ms/face b32"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [f"`{r['model']}`", f"**{r['fer2013_7']:.2%}**", f"{r['fer2013_6']:.2%}", f"**{r['ferplus_6']:.2%}**"]
        cells += [f"{r[k]['face_found']:.1%} / {r[k]['right_on_found']:.1%} / **{r[k]['overall']:.1%}**" for k in photo_keys]
        cells += [f"{r['gflop_per_face']:.2f}", f"{r.get('ms_per_face_b1', float('nan')):.2f}",
                  f"{r.get('ms_per_face_b32', float('nan')):.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Recall per class on the photo sets (largest face per photo, a photo without a face wrong):", "",
              "| model | set | " + " | ".join(EMOTIONS) + " |", "|" + "---|" * (2 + len(EMOTIONS))]
    for r in rows:
        for k in photo_keys:
            recall = r[k]["per_class_recall"]
            cells = " | ".join(f"{recall[e]:.0%}" if e in recall else "-" for e in EMOTIONS)
            lines.append(f"| `{r['model']}` | {k.replace('_', ' ')} | {cells} |")
    return "\n".join(lines) + "\n"


def write_report(out_dir: Path, row: dict, probs: np.ndarray, labels: np.ndarray) -> dict:
    """evaluation.json and confusion_matrix.png of one candidate (what the model card shows)."""
    report = {**row, **report_from_probs(probs, labels)}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "evaluation.json").write_text(json.dumps(report, indent=2) + "\n")
    plot_confusion(report["confusion_6"], report["labels_6"], out_dir / "confusion_matrix.png",
                   f"PublicTest as the API reports it: {report['accuracy_6']:.2%}")
    return report


def evaluate(paths, fer: str = FER_DATA, photo_sets: dict = PHOTO_SETS, cache_dir=None, timing: bool = True,
             report_dir: Path | None = None) -> list[dict]:
    bench = Benchmarks(fer, photo_sets, cache_dir)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, path in enumerate(paths):
            row, probs = candidate_row(Path(path), bench, Path(tmp), timing)
            rows.append(row)
            if report_dir is not None and i == 0:
                write_report(report_dir, row, probs, bench.labels)
    return rows


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="+", type=Path, help="candidate files (.onnx as served, or Keras)")
    p.add_argument("--data", default=FER_DATA, help="FER2013 folder (val/ and ferplus_votes.csv)")
    p.add_argument("--photo-set", action="append", metavar="NAME=FOLDER",
                   help="a labelled photo set to score (repeatable; default: "
                        + ", ".join(f"{k}={v}" for k, v in PHOTO_SETS.items()) + "; 'none' for none)")
    p.add_argument("--out", type=Path, help="write the table here (markdown) and its rows beside it (.json)")
    p.add_argument("--report", type=Path, help="write evaluation.json and confusion_matrix.png of the first model here")
    p.add_argument("--no-timing", action="store_true", help="skip the ms/face measurements")
    p.add_argument("--cache-dir", default=CACHE_DIR,
                   help="decoded datasets and photo crops are cached here ('' to disable)")
    args = p.parse_args(argv)
    sets = PHOTO_SETS if not args.photo_set else dict(item.split("=", 1) for item in args.photo_set if item != "none")
    rows = evaluate(args.models, args.data, sets, args.cache_dir or None, not args.no_timing, args.report)
    text = table(rows)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        args.out.with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
