"""Export a trained model for serving: drop the optimizer, optionally bake in flip TTA.

    python -m training.export runs/vggnet_w32/best.keras models/emotion_classifier.keras \
        --data ../shared/data/fer2013 --tta flip

With ``--tta flip`` the exported model averages its predictions for the face and its
mirror image (``flip_shift``: also 2-pixel shifts of both). It is built from standard Keras
layers only (each view is a fixed 0/1 resampling matrix applied with Dense), so it loads
anywhere without custom objects.
Writes ``<output>.json`` (labels, scaling, measured accuracy) that import_model.py reads,
and evaluation.json / confusion_matrix.png beside the output.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

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


def load_source(source: Path):
    """A .keras model, or a ``<name>.weights.npz`` of training.gpu_train, rebuilt with a
    softmax output."""
    import keras

    if not source.name.endswith(".weights.npz"):
        return keras.models.load_model(source, compile=False)
    return load_gpu_weights(source, logits=False)[0]


def load_gpu_weights(source: Path, logits: bool = False):
    """(model, spec) from a ``<name>.weights.npz`` of training.gpu_train: float16 weights of
    the model described by the ``summary.json`` beside it."""
    from training.gpu_train import build

    name = source.name[: -len(".weights.npz")]
    summary = json.loads((source.parent / "summary.json").read_text())
    entries = [r for r in summary["teachers"] + summary.get("students", []) if r["name"] == name]
    if not entries:
        raise ValueError(f"{source.parent / 'summary.json'} describes no model named {name!r}")
    model = build(entries[0]["spec"], logits=logits)
    with np.load(source) as weights:
        model.set_weights([weights[f"arr_{i}"].astype(np.float32) for i in range(len(weights.files))])
    return model, entries[0]["spec"]


def export(source: Path, output: Path, data: str | None, tta: str, scaling: str, cache_dir=None,
           input_size: int = 48) -> dict:
    from training.evaluate import evaluate_model

    model = with_tta(with_centre_crop(load_source(source), input_size), tta)
    output.parent.mkdir(parents=True, exist_ok=True)
    model.save(output)
    info = {"labels": list(FER2013_LABELS), "scaling": scaling, "tta": tta,
            "input_size": int(model.input_shape[1]), "channels": int(model.input_shape[3]),
            "parameters": int(model.count_params())}
    if data:
        report = evaluate_model(output, data, "val", output.parent, scaling=scaling, cache_dir=cache_dir)
        info["accuracy"] = {"split": "val (FER2013 PublicTest)", "samples": report["samples"],
                            "accuracy_7": report["accuracy_7"], "accuracy_6": report["accuracy_6"]}
    output.with_suffix(".json").write_text(json.dumps(info, indent=2) + "\n")
    return info


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", type=Path, help="trained model: .keras (e.g. runs/NAME/best.keras), or a "
                   "NAME.weights.npz of training.gpu_train with its summary.json beside it")
    p.add_argument("output", type=Path, help="exported model path (.keras)")
    p.add_argument("--data", help="FER2013 folder or csv: evaluate the export on its val split")
    p.add_argument("--tta", choices=tuple(TTA_VIEWS), default="flip",
                   help="test-time augmentation baked into the exported model (views averaged)")
    p.add_argument("--scaling", choices=SCALINGS, default="unit", help="pixel scaling the model was trained with")
    p.add_argument("--cache-dir", default=None, help="cache decoded datasets here")
    p.add_argument("--input-size", type=int, default=48,
                   help="served input side; a model trained on smaller crops gets a centre crop in front")
    args = p.parse_args(argv)
    info = export(args.source, args.output, args.data, args.tta, args.scaling, args.cache_dir, args.input_size)
    print(json.dumps(info, indent=2))


if __name__ == "__main__":
    main()
