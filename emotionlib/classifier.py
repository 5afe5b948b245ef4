"""The served classifier: the model's ONNX graph on ONNX Runtime (no TensorFlow needed).

import_model.py converts the Keras model at import time (emotionlib/convert.py) and stores
``model.onnx`` beside the Keras file; ``Classifier.from_store`` loads it with the labels,
input size and pixel scaling from the model's metadata. Input: uint8 faces (N, S, S) as
the API worker cuts them; output: (N, 6) probabilities in ``EMOTIONS`` order.

Chosen by measurement (benchmarks/runtime.py): ONNX Runtime float32 matched TF graph mode
per face at batch 32 and at batch 1 on the 2-core development machine, without the 1.5 GB
TensorFlow install. bf16/int8 were not used: that CPU has neither AMX nor VNNI.
"""
from __future__ import annotations

import numpy as np

from emotionlib.labels import fold_probabilities
from emotionlib.preprocess import scale_pixels

ONNX_FILE = "model.onnx"
# The model import_model.py registers and the service serves unless told otherwise.
DEFAULT_MODEL_TAG = "emotion_classifier:latest"


class Classifier:
    """An ONNX emotion classifier. ``threads``: ONNX Runtime intra-op threads (0 = one per core)."""

    def __init__(self, onnx_path, labels, input_size: int = 48, channels: int = 1, scaling: str = "unit",
                 threads: int = 0):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle threads sleep instead of spinning: the cores are shared with face detection.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.labels = list(labels)
        self.input_size, self.channels, self.scaling = int(input_size), int(channels), scaling

    @classmethod
    def from_store(cls, stored, threads: int = 0) -> "Classifier":
        """The classifier of a BentoML stored model registered by import_model.py."""
        meta = stored.info.metadata
        if "onnx" not in meta:
            raise RuntimeError(f"{stored.tag} has no ONNX graph (registered by an older import_model.py); "
                               "run `python import_model.py` again")
        return cls(stored.path_of(meta["onnx"]), meta["labels"], meta["input_size"], meta["channels"],
                   meta["scaling"], threads)

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
