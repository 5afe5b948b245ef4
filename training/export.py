"""Export a trained model for serving: the served Keras file, its ONNX graph (int8 where that
pays), and the sidecar JSON that import_model.py and emotionlib.classifier read.

    python -m training.export runs/recipe/student/model.keras models/emotion_classifier.keras

- The Keras file: the trained network (softmax, on the training crop size) with a centre crop
  in front (the service sends 48 px faces) and, with ``--tta flip``, the mirror image averaged
  in (twice the cost; the shipped model has none).
- ``<output>.onnx``: its ONNX graph (emotionlib.convert, checked against Keras), or with
  ``--int8`` (the default) the graph statically quantised to int8 by ONNX Runtime (QDQ,
  per-channel weights, activations calibrated here on 1,024 training faces: FER2013 Training and
  photo-pool crops, seeded), so importing needs no data. The int8 graph is kept only if, on
  this CPU, it is at least ``--min-speedup`` (1.3x) faster per face at batch 32 and loses at most
  ``--max-loss`` (0.3) points on PublicTest by either label set; otherwise the float graph is
  written. What was measured and decided goes into the sidecar.
- ``<output>.json``: labels, scaling, input size, the PublicTest scores and the ONNX decision,
  with the SHA-256 of both files (import_model.py registers the .onnx only beside the very
  Keras file it was made from).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from emotionlib.classifier import file_sha256
from emotionlib.labels import FER2013_LABELS
from emotionlib.preprocess import SCALINGS


TTA_VIEWS = {
    "none": [(False, 0, 0)],
    "flip": [(False, 0, 0), (True, 0, 0)],
    # the face and its mirror, each also shifted by 2 pixels left, right, up and down
    "flip_shift": [(f, dx, dy) for f in (False, True) for dx, dy in ((0, 0), (2, 0), (-2, 0), (0, 2), (0, -2))],
}


def axis_matrix(n: int, flip: bool = False, shift: int = 0) -> np.ndarray:
    """(n, n) 0/1 matrix M with out[j] = in[src(j)]: a mirror and/or a shift with edge clamping."""
    matrix = np.zeros((n, n), np.float32)
    for j in range(n):
        i = n - 1 - j if flip else j
        matrix[min(n - 1, max(0, i - shift)), j] = 1.0
    return matrix


def view_layers(size: int, width: int, channels: int, flip: bool, dx: int, dy: int, name: str):
    """Standard layers that resample (N, H, W, C) images along W then H with fixed matrices."""
    from keras import layers

    def fixed(n, matrix, suffix, shape):
        dense = layers.Dense(n, use_bias=False, trainable=False, name=f"{name}_{suffix}")
        dense.build(shape)
        dense.set_weights([matrix])
        return dense

    w_last = layers.Permute((3, 1, 2), name=f"{name}_w_last")  # (C, H, W)
    along_w = fixed(width, axis_matrix(width, flip, dx), "w", (None, channels, size, width))
    h_last = layers.Permute((1, 3, 2), name=f"{name}_h_last")  # (C, W, H)
    along_h = fixed(size, axis_matrix(size, False, dy), "h", (None, channels, width, size))
    back = layers.Permute((3, 2, 1), name=f"{name}_back")  # (H, W, C)
    return lambda x: back(along_h(h_last(along_w(w_last(x)))))


def with_tta(model, tta: str = "flip"):
    """A model whose output is the mean of model(view(x)) over the views of TTA_VIEWS[tta].

    Built from standard Keras layers only (Permute and fixed Dense matrices), so the saved
    model loads anywhere without custom objects.
    """
    import keras

    views = TTA_VIEWS[tta]
    if len(views) == 1:
        return model
    _, size, width, channels = (int(d) if d else d for d in model.input_shape)
    inputs = keras.Input(shape=(size, width, channels), name="face")
    outputs = []
    for k, (flip, dx, dy) in enumerate(views):
        x = inputs if (flip, dx, dy) == (False, 0, 0) else \
            view_layers(size, width, channels, flip, dx, dy, f"view{k}")(inputs)
        outputs.append(model(x))
    outputs = keras.layers.Average(name=f"tta_{tta}")(outputs)
    return keras.Model(inputs, outputs, name=f"{model.name}_{tta}")


def with_centre_crop(model, full: int = 48):
    """A model taking full x full faces that centre-crops them to the model's own input size.

    Models trained on random crops (training.gpu_train: 40 px crops of the 48 px faces)
    see the centre crop at serving time; the served input stays the 48 px face.
    """
    import keras

    _, size, width, channels = (int(d) if d else d for d in model.input_shape)
    if size == full and width == full:
        return model
    if size > full or width > full or (full - size) % 2 or (full - width) % 2:
        raise ValueError(f"cannot centre-crop {full} px faces to {size}x{width}")
    inputs = keras.Input(shape=(full, full, channels), name="face")
    cropped = keras.layers.Cropping2D(((full - size) // 2, (full - width) // 2), name="centre_crop")(inputs)
    return keras.Model(inputs, model(cropped), name=f"{model.name}_crop{size}")


def load(source: Path, neutral_shift: float = 0.0):
    """The trained softmax model; ``neutral_shift`` is added to the neutral class's logit (the
    bias of the last Dense layer): a prior correction, exp(shift) times the neutral odds."""
    import keras

    model = keras.models.load_model(source, compile=False)
    if neutral_shift:
        last = model.layers[-1]
        kernel, bias = last.get_weights()
        bias = bias.copy()
        bias[FER2013_LABELS.index("neutral")] += neutral_shift
        last.set_weights([kernel, bias])
    return model


def calibration_faces(data: str, photos: str | None, cache_dir=None, count: int = 1024, seed: int = 0) -> np.ndarray:
    """uint8 (count, 48, 48) training faces: 3/4 FER2013 Training, 1/4 photo-pool crops (seeded)."""
    from training.data import load_split_cached

    rng = np.random.default_rng(seed)
    images, _ = load_split_cached(data, "train", cache_dir)
    parts = [images]
    if photos:
        from training.photos import crop_folder_cached

        parts.append(crop_folder_cached(photos, "haar", cache_dir).images)
    n_photos = min(count // 4, len(parts[1])) if len(parts) > 1 else 0
    n_fer = min(count - n_photos, len(parts[0]))
    picks = [parts[0][rng.choice(len(parts[0]), n_fer, replace=False)]]
    if n_photos:
        picks.append(parts[1][rng.choice(len(parts[1]), n_photos, replace=False)])
    return np.concatenate(picks)


def quantize_int8(graph: bytes, faces: np.ndarray, scaling: str = "unit") -> bytes:
    """The float ONNX graph statically quantised to int8 (QDQ, per-channel weights), activation
    ranges calibrated on ``faces`` (uint8 (N, S, S)) by the 99.99th percentile."""
    import tempfile

    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from emotionlib.preprocess import scale_pixels

    inputs = scale_pixels(faces, 1, scaling)

    class Faces(CalibrationDataReader):
        def __init__(self):
            self.start = 0

        def get_next(self):
            if self.start >= len(inputs):
                return None
            batch = inputs[self.start:self.start + 128]
            self.start += 128
            return {"input": batch}

    with tempfile.TemporaryDirectory() as tmp:
        src, pre, out = Path(tmp) / "float.onnx", Path(tmp) / "pre.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(graph)
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        quantize_static(str(pre), str(out), Faces(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.Percentile, extra_options={"CalibPercentile": 99.99})
        return out.read_bytes()


def compare_graphs(graphs: dict[str, bytes], data: str, cache_dir=None) -> dict:
    """PublicTest scores (training.evaluate.fer_scores) and ms/face at batch 32 of each graph."""
    import tempfile

    from emotionlib.classifier import Classifier
    from training.evaluate import Benchmarks, fer_scores, raw_probs, time_per_face

    bench = Benchmarks(data, {}, cache_dir)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, graph in graphs.items():
            path = Path(tmp) / f"{name}.onnx"
            path.write_bytes(graph)
            classifier = Classifier(path, FER2013_LABELS)
            out[name] = {**fer_scores(raw_probs(classifier, bench.images), bench.labels, bench.ferplus),
                         "ms_per_face_b32": round(time_per_face(classifier, 32), 3)}
    return out


def export(source: Path, output: Path, data: str, photos: str | None = None, tta: str = "none",
           scaling: str = "unit", int8: bool = True, min_speedup: float = 1.3, max_loss: float = 0.3,
           cache_dir=None, input_size: int = 48, neutral_shift: float = 0.0) -> dict:
    from emotionlib.convert import checked_onnx

    model = with_tta(with_centre_crop(load(source, neutral_shift), input_size), tta)
    output.parent.mkdir(parents=True, exist_ok=True)
    model.save(output)
    size, channels = int(model.input_shape[1]), int(model.input_shape[3])
    graphs = {"float32": checked_onnx(model, size, channels)}
    if int8:
        graphs["int8"] = quantize_int8(graphs["float32"], calibration_faces(data, photos, cache_dir), scaling)
    measured = compare_graphs(graphs, data, cache_dir)
    chosen = "float32"
    if int8:
        f, q = measured["float32"], measured["int8"]
        speedup = f["ms_per_face_b32"] / q["ms_per_face_b32"]
        loss = 100 * max(f["fer2013_7"] - q["fer2013_7"], f["ferplus_6"] - q["ferplus_6"])
        measured["int8"].update(speedup=round(speedup, 2), points_lost=round(loss, 2))
        if speedup >= min_speedup and loss <= max_loss:
            chosen = "int8"
    graph_path = output.with_suffix(".onnx")
    graph_path.write_bytes(graphs[chosen])
    info = {"labels": list(FER2013_LABELS), "scaling": scaling, "tta": tta, "neutral_shift": neutral_shift,
            "input_size": size, "channels": channels,
            "parameters": int(model.count_params()),
            "accuracy": {"split": "val (FER2013 PublicTest)", "graph": chosen, **{
                k: measured[chosen][k] for k in ("fer2013_7", "fer2013_6", "ferplus_6")}},
            "onnx": {"file": graph_path.name, "precision": chosen, "sha256": file_sha256(graph_path),
                     "keras_sha256": file_sha256(output), "measured": measured,
                     "rule": f"int8 if >= {min_speedup}x faster at batch 32 and <= {max_loss} points lost"}}
    output.with_suffix(".json").write_text(json.dumps(info, indent=2) + "\n")
    return info


def main(argv=None) -> None:
    from training.data import CACHE_DIR, FER_DATA, PHOTO_POOL

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", type=Path, help="trained model (.keras, e.g. runs/NAME/model.keras)")
    p.add_argument("output", type=Path, help="served model path (.keras); the .onnx and .json go beside it")
    p.add_argument("--data", default=FER_DATA, help="FER2013 folder: calibration (train) and scores (val)")
    p.add_argument("--photos", default=PHOTO_POOL, help="photo pool for calibration ('' for none)")
    p.add_argument("--tta", choices=tuple(TTA_VIEWS), default="none",
                   help="test-time augmentation baked into the exported model (views averaged)")
    p.add_argument("--scaling", choices=SCALINGS, default="unit", help="pixel scaling the model was trained with")
    p.add_argument("--neutral-shift", type=float, default=0.0,
                   help="added to the neutral logit (a prior correction; negative: neutral less often)")
    p.add_argument("--no-int8", dest="int8", action="store_false", help="write the float32 graph only")
    p.add_argument("--min-speedup", type=float, default=1.3)
    p.add_argument("--max-loss", type=float, default=0.3, help="points of PublicTest accuracy int8 may lose")
    p.add_argument("--cache-dir", default=CACHE_DIR)
    p.add_argument("--input-size", type=int, default=48,
                   help="served input side; a model trained on smaller crops gets a centre crop in front")
    args = p.parse_args(argv)
    info = export(args.source, args.output, args.data, args.photos or None, args.tta, args.scaling, args.int8,
                  args.min_speedup, args.max_loss, args.cache_dir or None, args.input_size, args.neutral_shift)
    print(json.dumps(info, indent=2))


if __name__ == "__main__":
    main()
