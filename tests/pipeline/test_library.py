"""EmotionPipeline for a Python user without the model store: from the bundled model folder
(its Keras file converted to ONNX once, into a cache folder), from an .onnx file, from a
folder; and what it says when the model cannot be found."""
from __future__ import annotations

import json
import shutil

import pytest

from tests.helpers import FIXTURES, ROOT


@pytest.fixture(scope="module")
def bundled():
    from emotionlib import EmotionPipeline

    return EmotionPipeline.from_model(threads=1)


def cached_graphs(cache) -> list:
    return sorted(cache.glob("emotion_classifier-*.onnx"))


def test_the_bundled_keras_model_is_converted_once_into_the_cache(bundled, tmp_path):
    from emotionlib import EmotionPipeline
    from emotionlib.classifier import cache_folder

    [graph] = cached_graphs(cache_folder())  # made by the fixture's first use
    made = graph.stat().st_mtime_ns
    again = EmotionPipeline.from_model(ROOT / "models", threads=1)  # the same file by its folder
    assert cached_graphs(cache_folder()) == [graph] and graph.stat().st_mtime_ns == made  # not converted again
    photo = (FIXTURES / "obama.jpg").read_bytes()
    assert again.predict(photo) == bundled.predict(photo)
    assert bundled.classifier.labels == json.loads((ROOT / "models" / "emotion_classifier.json").read_text())["labels"]


def test_an_onnx_file_with_its_labels_beside_it(bundled, tmp_path):
    from emotionlib import EmotionPipeline
    from emotionlib.classifier import cache_folder

    [graph] = cached_graphs(cache_folder())
    shutil.copyfile(graph, tmp_path / "mine.onnx")
    shutil.copyfile(ROOT / "models" / "emotion_classifier.json", tmp_path / "mine.json")
    for where in (tmp_path / "mine.onnx", tmp_path):  # the file, or the folder holding only it
        pipeline = EmotionPipeline.from_model(where, threads=1, detector="yunet")
        assert pipeline.classifier.input_size == 48 and pipeline.classifier.channels == 1  # read from the graph
        faces = pipeline.predict((FIXTURES / "biden.jpg").read_bytes())
        assert len(faces) == 1 and faces[0].landmarks is not None


def test_cache_folder_can_be_chosen(tmp_path):
    from emotionlib import EmotionPipeline

    EmotionPipeline.from_model(cache_dir=tmp_path / "cache")
    assert len(cached_graphs(tmp_path / "cache")) == 1


def test_a_model_that_cannot_be_found_is_named(tmp_path):
    from emotionlib import EmotionPipeline

    with pytest.raises(FileNotFoundError, match="no such model file"):
        EmotionPipeline.from_model(tmp_path / "absent.onnx")
    (tmp_path / "a.onnx").write_bytes(b"")
    (tmp_path / "b.keras").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="holds 2 model files"):
        EmotionPipeline.from_model(tmp_path)
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(ValueError, match="expected an .onnx or a Keras"):
        EmotionPipeline.from_model(tmp_path / "notes.txt")


def test_options_are_checked_and_overridable(bundled):
    from emotionlib import EmotionPipeline, PipelineOptions

    pipeline = EmotionPipeline(bundled.classifier, PipelineOptions(max_faces_per_image=1), detector="yunet")
    assert pipeline.detector_name == "yunet" and pipeline.options.max_faces_per_image == 1
    with pytest.raises(ValueError, match="detector='mtcnn' is not accepted"):
        EmotionPipeline(bundled.classifier, detector="mtcnn")
