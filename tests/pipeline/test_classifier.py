"""Keras -> ONNX conversion (emotionlib/convert.py) and the served runtime (emotionlib/classifier.py).

Tolerance: the converted graph's probabilities must equal Keras' within 1e-4 absolute
(float32 arithmetic in another order; import_model.py refuses a model above that).
"""
from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import ROOT

TOLERANCE = 1e-4
# An int8 graph (training.export quantises where it pays) against its float Keras network:
# probabilities within this (measured 0.022 on noise faces, the hardest case).
INT8_TOLERANCE = 0.05


def keras_and_onnx(model, inputs):
    import onnxruntime as ort

    from emotionlib.convert import keras_to_onnx

    session = ort.InferenceSession(keras_to_onnx(model).SerializeToString(), providers=["CPUExecutionProvider"])
    return np.asarray(model(inputs, training=False)), session.run(None, {"input": inputs})[0]


def faces(n, size=48, channels=1, seed=0):
    return np.random.default_rng(seed).random((n, size, size, channels), dtype=np.float32)


def test_bundled_model_with_flip_tta_converts_exactly():
    import keras

    model = keras.models.load_model(ROOT / "models" / "emotion_classifier.keras", compile=False)
    expected, got = keras_and_onnx(model, faces(16))
    assert got.shape == expected.shape == (16, 7)
    assert np.abs(expected - got).max() <= TOLERANCE
    assert (expected.argmax(1) == got.argmax(1)).all()


def other_sized_model(channels=3):
    """Another network of the same layer kinds: strides, valid padding, biases, GAP, Sequential."""
    import keras
    from keras import layers

    from training.export import with_tta

    net = keras.Sequential([
        keras.Input((40, 40, channels)),
        layers.Conv2D(8, 5, strides=2, padding="valid", activation="relu"),
        layers.BatchNormalization(),
        layers.Conv2D(12, 3, padding="same", use_bias=False),
        layers.BatchNormalization(),
        layers.ReLU(),
        layers.AveragePooling2D(2),
        layers.Dropout(0.3),
        layers.Conv2D(16, 3, padding="same"),
        layers.Activation("relu"),
        layers.MaxPooling2D(2, padding="same"),
        layers.GlobalAveragePooling2D(),
        layers.Dense(16, activation="relu"),
        layers.Dense(6),
        layers.Softmax(),
    ])
    rng = np.random.default_rng(1)
    for layer in net.layers:  # moving statistics that are not the identity
        if isinstance(layer, layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 2, gamma.shape), rng.normal(0, 0.5, beta.shape),
                               rng.normal(0, 0.5, mean.shape), rng.uniform(0.5, 2, var.shape)])
    return with_tta(net, "flip_shift")


def test_a_differently_sized_model_of_the_same_layers_converts():
    model = other_sized_model()
    expected, got = keras_and_onnx(model, faces(5, 40, 3))
    assert np.abs(expected - got).max() <= TOLERANCE


def test_a_centre_cropped_gpu_trained_model_converts():
    """training.experiments.gpu_train's layout: 48 px faces centre-cropped to the 40 px the net was trained on."""
    from training.export import with_centre_crop, with_tta
    from training.experiments.gpu_train import build

    net = build({"width": 4, "head": 8}, logits=False)
    model = with_tta(with_centre_crop(net, 48), "flip")
    expected, got = keras_and_onnx(model, faces(5, 48, 1))
    assert np.abs(expected - got).max() <= TOLERANCE


def test_an_unsupported_layer_is_named():
    import keras

    from emotionlib.convert import ConversionError, keras_to_onnx

    model = keras.Sequential([keras.Input((48, 48, 1)), keras.layers.Conv2DTranspose(4, 3),
                              keras.layers.Flatten(), keras.layers.Dense(7, activation="softmax")])
    with pytest.raises(ConversionError, match="Conv2DTranspose"):
        keras_to_onnx(model)


def test_served_classifier_is_the_shipped_graph_and_agrees_with_keras(bundled_model_store):
    import json

    import bentoml
    import keras

    from emotionlib.classifier import Classifier
    from emotionlib.labels import fold_probabilities
    from emotionlib.preprocess import scale_pixels

    stored = bentoml.models.get("emotion_classifier:latest")
    classifier = Classifier.from_store(stored, threads=1)
    pixels = np.random.default_rng(2).integers(0, 256, (9, 48, 48), dtype=np.uint8)
    shipped = Classifier(ROOT / "models" / "emotion_classifier.onnx", classifier.labels, threads=1)
    got = classifier(pixels)
    assert got.shape == (9, 6)
    assert np.array_equal(got, shipped(pixels))  # registered as shipped, not converted again
    model = keras.models.load_model(stored.path_of(stored.info.metadata["file"]), compile=False)
    expected = fold_probabilities(np.asarray(model(scale_pixels(pixels), training=False)), classifier.labels)
    precision = json.loads((ROOT / "models" / "emotion_classifier.json").read_text())["onnx"]["precision"]
    assert np.abs(expected - got).max() <= (INT8_TOLERANCE if precision == "int8" else TOLERANCE)
    assert classifier(pixels[:0]).shape == (0, 6)


def test_serving_requirements_have_no_tensorflow():
    """The service runs the ONNX graph: the Bento's requirements must not pull TensorFlow in."""
    lines = [ln.split("#")[0].strip().lower() for ln in (ROOT / "requirements" / "serve.txt").read_text().splitlines()]
    names = {ln.split("==")[0].split(">")[0].split("<")[0] for ln in lines if ln}
    assert "onnxruntime" in names
    assert not names & {"tensorflow", "tensorflow-cpu", "keras", "tf-keras"}
