"""Export a trained model for serving: drop the optimizer, optionally bake in flip TTA.

    python -m training.export runs/vggnet_w32/best.keras models/emotion_classifier.keras \
        --data ../shared/data/fer2013 --tta flip

With ``--tta flip`` the exported model averages its predictions for the face and its
mirror image. It is built from standard Keras layers only (the mirror is a fixed
permutation matrix applied with Dense), so it loads anywhere without custom objects.
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


def mirror_layers(width: int, channels: int, name: str = "mirror"):
    """Layers that flip (N, H, W, C) images left-right: permute W last, multiply, permute back."""
    import keras
    from keras import layers

    to_last = layers.Permute((3, 1, 2), name=f"{name}_to_w_last")  # (C, H, W)
    flip = layers.Dense(width, use_bias=False, trainable=False, name=f"{name}_matrix")
    back = layers.Permute((2, 3, 1), name=f"{name}_back")  # (H, W, C)
    flip.build((None, channels, width, width))
    flip.set_weights([np.eye(width, dtype=np.float32)[::-1]])
    return lambda x: back(flip(to_last(x))), keras


def with_flip_tta(model):
    """A model whose output is the mean of model(x) and model(mirror(x))."""
    _, size, width, channels = model.input_shape
    mirror, keras = mirror_layers(int(width), int(channels))
    inputs = keras.Input(shape=(size, width, channels), name="face")
    outputs = keras.layers.Average(name="flip_tta")([model(inputs), model(mirror(inputs))])
    return keras.Model(inputs, outputs, name=f"{model.name}_flip_tta")


def export(source: Path, output: Path, data: str | None, tta: str, scaling: str, cache_dir=None) -> dict:
    import keras

    from training.evaluate import evaluate_model

    model = keras.models.load_model(source, compile=False)
    if tta == "flip":
        model = with_flip_tta(model)
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
    p.add_argument("source", type=Path, help="trained model (.keras), e.g. runs/NAME/best.keras")
    p.add_argument("output", type=Path, help="exported model path (.keras)")
    p.add_argument("--data", help="FER2013 folder or csv: evaluate the export on its val split")
    p.add_argument("--tta", choices=("none", "flip"), default="flip", help="bake test-time augmentation in")
    p.add_argument("--scaling", choices=SCALINGS, default="unit", help="pixel scaling the model was trained with")
    p.add_argument("--cache-dir", default=None, help="cache decoded datasets here")
    args = p.parse_args(argv)
    info = export(args.source, args.output, args.data, args.tta, args.scaling, args.cache_dir)
    print(json.dumps(info, indent=2))


if __name__ == "__main__":
    main()
