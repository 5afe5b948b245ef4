"""Register a trained Keras emotion model in the BentoML model store.

    python import_model.py                          # the bundled default model (models/)
    python import_model.py --model my_vgg19.h5 --labels angry,disgust,fear,happy,sad,surprise,neutral

The model is loaded and run once before anything is written: its output width must equal
the number of labels, every label must be a known emotion, and the input must be a square
1- or 3-channel image. The service runs an ONNX graph of it (emotionlib/classifier.py, no
TensorFlow needed): the graph training.export shipped beside the file when the sidecar JSON
records it as made from this very file (the bundled model's int8 graph, quantised and checked
at export, so importing needs no data), else the file converted (emotionlib/convert.py),
refused unless its outputs match Keras' within 1e-4 (emotionlib.convert.ONNX_TOLERANCE). The
store keeps both files.
Importing the same file with the same settings twice keeps one copy.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

from emotionlib.classifier import file_sha256, shipped_graph
from emotionlib.labels import FER2013_LABELS, validate_labels
from emotionlib.preprocess import SCALINGS

HERE = Path(__file__).resolve().parent
BUNDLED_MODEL = HERE / "models" / "emotion_classifier.keras"
MODEL_NAME = "emotion_classifier"
SUFFIXES = (".keras", ".h5", ".hdf5")
FORMAT = "keras+onnx-2"  # part of the fingerprint: a store entry without the ONNX graph is re-imported


class RefusedModel(Exception):
    """The model cannot be served; nothing was registered."""


def inspect_model(path: Path, labels: list[str]) -> tuple[dict, object]:
    """Load the model, run one forward pass; return its input spec and the model, or raise RefusedModel."""
    from emotionlib.convert import ConversionError, load_keras

    try:
        return load_keras(path, labels)
    except ConversionError as exc:
        raise RefusedModel(str(exc)) from None


def to_onnx(model, size: int, channels: int) -> bytes:
    """The model as a serialized ONNX graph, checked against Keras on random faces."""
    from emotionlib.convert import ConversionError, checked_onnx

    try:
        return checked_onnx(model, size, channels)
    except ConversionError as exc:
        raise RefusedModel(f"cannot convert the model for serving: {exc}") from None


def bundled_settings() -> dict:
    """Labels, scaling and measured accuracy of the bundled model, from its sidecar JSON."""
    return json.loads(BUNDLED_MODEL.with_suffix(".json").read_text())


def find_existing(fingerprint: str):
    import bentoml
    from bentoml.exceptions import NotFound

    try:
        models = bentoml.models.list(MODEL_NAME)
    except NotFound:
        return None
    for model in models:
        if model.info.metadata.get("fingerprint") == fingerprint:
            return model
    return None


def register(path: Path, labels: list[str], scaling: str, extra: dict | None = None,
             name: str = MODEL_NAME):
    """Validate and register a model file; return the stored model (existing or new)."""
    import bentoml

    path = Path(path)
    if not path.is_file():
        raise RefusedModel(f"no such model file: {path}")
    if path.suffix.lower() not in SUFFIXES:
        raise RefusedModel(f"{path.name}: expected a {' or '.join(SUFFIXES)} Keras model file")
    try:
        labels = validate_labels(labels)
    except ValueError as exc:
        raise RefusedModel(str(exc)) from None
    if scaling not in SCALINGS:
        raise RefusedModel(f"scaling must be one of {SCALINGS}")
    spec, keras_model = inspect_model(path, labels)
    shipped = shipped_graph(path)  # training.export's graph for this file (int8 where it paid)
    fingerprint = hashlib.sha256(
        json.dumps([file_sha256(path), shipped and file_sha256(shipped), labels, scaling, name, FORMAT], sort_keys=True).encode()
    ).hexdigest()
    existing = find_existing(fingerprint) if name == MODEL_NAME else None
    if existing is not None:
        return existing, False
    onnx_graph = shipped.read_bytes() if shipped else to_onnx(keras_model, spec["input_size"], spec["channels"])
    metadata = {
        "file": "model" + path.suffix.lower(),
        "onnx": "model.onnx",
        "labels": labels,
        "scaling": scaling,
        "fingerprint": fingerprint,
        "source": str(path.name),
        **spec,
        **{key: value for key, value in (extra or {}).items() if value is not None},
    }
    with bentoml.models.create(name, module="keras", metadata=metadata,
                               labels={"task": "face-emotion"}) as model:
        shutil.copyfile(path, model.path_of(metadata["file"]))
        Path(model.path_of(metadata["onnx"])).write_bytes(onnx_graph)
        card = path.parent / "MODEL_CARD.md"
        if card.exists():
            shutil.copyfile(card, model.path_of("MODEL_CARD.md"))
    return model, True


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, help="a .keras or legacy .h5 model (default: the bundled model)")
    p.add_argument("--labels", help="comma-separated labels in the model's output order "
                   f"(default: FER2013's {','.join(FER2013_LABELS)})")
    p.add_argument("--scaling", choices=SCALINGS, help="pixel scaling the model was trained with: "
                   "unit = [0,1], symmetric = [-1,1], raw = [0,255] (default: unit)")
    args = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # Storing a model sends BentoML's `model_save` usage event otherwise (bentoml is imported
    # only below, so the variable is read before BentoML first asks for it).
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
    extra = {}
    if args.model is None:
        settings = bundled_settings()
        path, labels, scaling = BUNDLED_MODEL, settings["labels"], settings["scaling"]
        extra = {"accuracy": settings.get("accuracy"), "source": "bundled: models/emotion_classifier.keras"}
    else:
        path = args.model
        labels = args.labels.split(",") if args.labels else list(FER2013_LABELS)
        scaling = args.scaling or "unit"
    try:
        model, created = register(path, labels, scaling, extra)
    except RefusedModel as exc:
        print(f"refused, nothing registered: {exc}", file=sys.stderr)
        return 2
    print(f"{'registered' if created else 'already registered'}: {model.tag} "
          f"(labels {','.join(model.info.metadata['labels'])}, input {model.info.metadata['input_size']}px "
          f"x{model.info.metadata['channels']}, scaling {model.info.metadata['scaling']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
