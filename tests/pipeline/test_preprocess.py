"""The shared preprocessing function and the label folding."""
from __future__ import annotations

import numpy as np
import pytest

from emotionlib.decode import decode_image
from emotionlib.geometry import Box, crop
from emotionlib.labels import EMOTIONS, FER2013_LABELS, fold_probabilities, validate_labels
from emotionlib.preprocess import preprocess_batch, preprocess_face
from tests.helpers import encode


def test_gray_unit_scaling():
    face = np.full((48, 48), 255, np.uint8)
    out = preprocess_face(face)
    assert out.shape == (48, 48, 1) and out.dtype == np.float32
    assert np.allclose(out, 1.0)


@pytest.mark.parametrize("scaling, low, high", [("unit", 0, 1), ("symmetric", -1, 1), ("raw", 0, 255)])
def test_scalings(scaling, low, high):
    face = np.zeros((10, 10), np.uint8)
    face[5:] = 255
    out = preprocess_face(face, 10, 1, scaling)
    assert out.min() == low and out.max() == high


def test_rgb_crop_is_resized_and_grayed():
    rgb = np.zeros((300, 200, 3), np.uint8)
    rgb[..., 1] = 255  # pure green -> gray 150 by ITU-R 601 weights
    out = preprocess_face(rgb, 48, 1)
    assert out.shape == (48, 48, 1)
    assert np.allclose(out, 150 / 255, atol=1 / 255)


def test_three_channel_models_get_the_gray_plane_three_times():
    out = preprocess_face(np.random.default_rng(0).integers(0, 256, (60, 60, 3), dtype=np.uint8), 48, 3)
    assert out.shape == (48, 48, 3)
    assert np.array_equal(out[..., 0], out[..., 2])


def test_rejects_bad_arguments():
    with pytest.raises(ValueError):
        preprocess_face(np.zeros((5, 5), np.float32))
    with pytest.raises(ValueError):
        preprocess_face(np.zeros((5, 5), np.uint8), scaling="imagenet")


def test_training_and_serving_produce_identical_arrays(tmp_path, face_crop):
    """The same face file through the training reader and through the service's path."""
    from training.data import load_folder

    face = face_crop.convert("L").resize((48, 48))
    (tmp_path / "happy").mkdir()
    data = encode(face, "JPEG", quality=90)
    (tmp_path / "happy" / "face.jpg").write_bytes(data)
    images, labels = load_folder(tmp_path)
    training = preprocess_batch(images)
    rgb = decode_image(data)  # what the API does with an upload, detect=false
    serving = preprocess_batch([crop(rgb, Box(0, 0, rgb.shape[1], rgb.shape[0]))])
    assert labels.tolist() == [FER2013_LABELS.index("happy")]
    assert training.shape == serving.shape == (1, 48, 48, 1)
    assert np.array_equal(training, serving)


def test_disgust_folds_into_angry():
    probs = np.zeros((1, 7), np.float32)
    probs[0, FER2013_LABELS.index("disgust")] = 0.5
    probs[0, FER2013_LABELS.index("angry")] = 0.2
    probs[0, FER2013_LABELS.index("happy")] = 0.3
    scores = fold_probabilities(probs, FER2013_LABELS)
    assert scores.shape == (1, 6)
    assert scores[0, EMOTIONS.index("angry")] == pytest.approx(0.7)
    assert scores[0, EMOTIONS.index("happy")] == pytest.approx(0.3)
    assert scores.sum() == pytest.approx(1.0)


def test_models_with_fewer_labels_are_renormalised():
    scores = fold_probabilities(np.array([[0.2, 0.6]]), ["happy", "sad"])
    assert scores.sum() == pytest.approx(1.0)
    assert scores[0, EMOTIONS.index("sad")] == pytest.approx(0.75)


def test_label_validation():
    assert validate_labels(["Happy", " sad "]) == ["happy", "sad"]
    for bad in (["happy", "joy"], ["happy", "happy"]):
        with pytest.raises(ValueError):
            validate_labels(bad)
    with pytest.raises(ValueError):
        fold_probabilities(np.ones((1, 3)) / 3, ["happy", "sad"])
