"""The classifier: the model's ONNX graph on ONNX Runtime (no TensorFlow needed).

Input: uint8 faces (N, S, S) as the pipeline cuts them; output: (N, 6) probabilities in
``EMOTIONS`` order. Where the graph comes from:

- ``from_store``: the BentoML model store (what the service runs). import_model.py
  converted the Keras model when it registered it and stored ``model.onnx`` beside the Keras
  file, with labels, input size and pixel scaling in the model's metadata.
- ``from_file``: a model file, for a Python user without the store. An ``.onnx`` file is used
  as it is. A Keras file (the bundled ``models/emotion_classifier.keras`` is one: training
  writes Keras, and the ONNX graph is derived from it, so it is not kept twice in the
  repository) is converted once, by the same code and checks as import_model.py
  (emotionlib/convert.py, which needs Keras and onnx: the ``convert`` extra), into a cache
  folder (``$XDG_CACHE_HOME/emotionlib``, else ``~/.cache/emotionlib``), keyed by the file's
  and the converter's contents; later uses load the cached graph without TensorFlow. Labels
  and scaling come from the ``.json`` beside the file (the bundled model has one), else
  FER2013's seven labels and ``unit``.

Chosen by measurement (benchmarks/runtime.py): ONNX Runtime float32 matched TF graph mode
per face at batch 32 and at batch 1 on the 2-core development machine, without the 1.5 GB
TensorFlow install. bf16/int8 were not used: that CPU has neither AMX nor VNNI.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from emotionlib.labels import FER2013_LABELS, fold_probabilities, validate_labels
from emotionlib.preprocess import SCALINGS, scale_pixels

ONNX_FILE = "model.onnx"
# The model import_model.py registers and the service serves unless told otherwise.
DEFAULT_MODEL_TAG = "emotion_classifier:latest"
# The bundled model: models/ of the checkout (an editable install, `pip install -e .`, finds it).
BUNDLED_MODELS = Path(__file__).resolve().parent.parent / "models"
BUNDLED_NAME = "emotion_classifier"
KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")


class Classifier:
    """An ONNX emotion classifier. ``threads``: ONNX Runtime intra-op threads (0 = one per core)."""

    def __init__(self, onnx_path, labels, input_size: int | None = None, channels: int | None = None,
                 scaling: str = "unit", threads: int = 0):
        """input_size, channels: the graph's input (read from the graph when not given)."""
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle threads sleep instead of spinning: the cores are shared with face detection.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        graph_input = self.session.get_inputs()[0]
        self.input_name = graph_input.name
        self.labels = list(labels)
        self.input_size = int(input_size or graph_input.shape[1])
        self.channels = int(channels or graph_input.shape[3])
        self.scaling = scaling

    @classmethod
    def from_store(cls, stored, threads: int = 0) -> "Classifier":
        """The classifier of a BentoML stored model registered by import_model.py."""
        meta = stored.info.metadata
        if "onnx" not in meta:
            raise RuntimeError(f"{stored.tag} has no ONNX graph (registered by an older import_model.py); "
                               "run `python import_model.py` again")
        return cls(stored.path_of(meta["onnx"]), meta["labels"], meta["input_size"], meta["channels"],
                   meta["scaling"], threads)

    @classmethod
    def from_file(cls, path: str | Path | None = None, labels=None, scaling: str | None = None, threads: int = 0,
                  cache_dir: str | Path | None = None) -> "Classifier":
        """The classifier of a model file: ``path`` is the bundled model folder (None), a folder
        holding one model, an .onnx file or a Keras file (converted once into ``cache_dir``)."""
        path = find_model(path)
        sidecar = path.with_suffix(".json")
        meta = json.loads(sidecar.read_text()) if sidecar.is_file() else {}
        labels = validate_labels(labels or meta.get("labels") or FER2013_LABELS)
        scaling = scaling or meta.get("scaling") or "unit"
        if scaling not in SCALINGS:
            raise ValueError(f"scaling must be one of {SCALINGS}, got {scaling!r}")
        graph = path if path.suffix.lower() == ".onnx" else converted(path, labels, cache_dir)
        return cls(graph, labels, scaling=scaling, threads=threads)

    def raw(self, inputs: np.ndarray) -> np.ndarray:
        """The model's own outputs for float32 (N, S, S, C) inputs."""
        return self.session.run(None, {self.input_name: np.ascontiguousarray(inputs, np.float32)})[0]

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 (N, S, S[, 1]) faces -> (N, 6) probabilities in EMOTIONS order."""
        pixels = np.asarray(pixels)
        if len(pixels) == 0:
            return np.zeros((0, 6), np.float32)
        return fold_probabilities(self.raw(scale_pixels(pixels, self.channels, self.scaling)), self.labels)

    def warm_up(self, batch_sizes=(1, 8, 32)) -> None:
        for n in batch_sizes:
            self(np.zeros((n, self.input_size, self.input_size), np.uint8))


def find_model(path: str | Path | None) -> Path:
    """The model file ``path`` names: itself, or in a folder (the bundled one when None) the
    emotion_classifier .onnx or .keras file, else the folder's only model file."""
    folder = BUNDLED_MODELS if path is None else Path(path)
    if path is None and not folder.is_dir():
        raise FileNotFoundError(f"no bundled model folder at {folder} (a non-editable install has none): pass a "
                                "model file, EmotionPipeline.from_model(path), or use EmotionPipeline.from_store()")
    suffixes = (".onnx", *KERAS_SUFFIXES)
    if folder.is_dir():
        named = [p for p in (folder / f"{BUNDLED_NAME}.onnx", folder / f"{BUNDLED_NAME}.keras") if p.is_file()]
        found = named[:1] or sorted(p for p in folder.iterdir() if p.suffix.lower() in suffixes and p.is_file())
        if len(found) != 1:
            raise FileNotFoundError(f"{folder} holds {len(found)} model files ({', '.join(p.name for p in found)}); "
                                    "pass the one to use")
        return found[0]
    if not folder.is_file():
        raise FileNotFoundError(f"no such model file: {folder}")
    if folder.suffix.lower() not in suffixes:
        raise ValueError(f"{folder.name}: expected an .onnx or a Keras ({', '.join(KERAS_SUFFIXES)}) model file")
    return folder


def cache_folder(cache_dir: str | Path | None = None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "emotionlib"


def file_sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def shipped_graph(path: Path) -> Path | None:
    """The ONNX graph training.export wrote beside a Keras file (``<stem>.onnx``, int8 where that
    was measured to pay), if the sidecar ``<stem>.json`` records it as made from this very file
    (both SHA-256 match); else None (the Keras file is converted instead)."""
    sidecar, graph = path.with_suffix(".json"), path.with_suffix(".onnx")
    if not (sidecar.is_file() and graph.is_file()):
        return None
    record = json.loads(sidecar.read_text()).get("onnx") or {}
    if record.get("keras_sha256") != file_sha256(path) or record.get("sha256") != file_sha256(graph):
        return None
    return graph


def converted(path: Path, labels, cache_dir: str | Path | None = None) -> Path:
    """The ONNX graph of a Keras model file: the one shipped beside it (shipped_graph), else
    converted (and checked) on first use and cached."""
    from emotionlib import convert

    shipped = shipped_graph(path)
    if shipped is not None:
        return shipped
    model_digest = file_sha256(path)
    converter_digest = hashlib.sha256(Path(convert.__file__).read_bytes()).hexdigest()
    target = cache_folder(cache_dir) / f"{path.stem}-{model_digest[:16]}-{converter_digest[:8]}.onnx"
    if target.is_file():
        return target
    try:
        spec, model = convert.load_keras(path, labels)
    except ImportError as exc:
        raise ImportError(f"{path.name} is a Keras model: converting it to ONNX once needs Keras and onnx "
                          f"(pip install -e '.[convert]'), or pass an .onnx file ({exc})") from exc
    data = convert.checked_onnx(model, spec["input_size"], spec["channels"])
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
    partial.write_bytes(data)
    os.replace(partial, target)  # whole or absent, also with concurrent first uses
    return target
