"""EmotionPipeline for a Python user without the model store: from the bundled model folder
(the ONNX graph training.export shipped beside the Keras file), from an .onnx file, from a
Keras file alone (converted once, into a cache folder), from a folder; and what it says when
the model cannot be found."""
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
    return sorted(cache.glob("*.onnx"))


def test_the_bundled_model_is_the_shipped_graph_with_no_conversion(bundled, tmp_path):
    from emotionlib import EmotionPipeline

    cache = tmp_path / "cache"
    again = EmotionPipeline.from_model(ROOT / "models" / "emotion_classifier.keras", threads=1, cache_dir=cache)
    assert not cache.exists()  # the graph beside it, recorded in the sidecar, is used as it is
    photo = (FIXTURES / "obama.jpg").read_bytes()
    assert again.predict(photo) == bundled.predict(photo)
    assert bundled.classifier.labels == json.loads((ROOT / "models" / "emotion_classifier.json").read_text())["labels"]


def test_an_onnx_file_with_its_labels_beside_it(bundled, tmp_path):
    from emotionlib import EmotionPipeline

    shutil.copyfile(ROOT / "models" / "emotion_classifier.onnx", tmp_path / "mine.onnx")
    shutil.copyfile(ROOT / "models" / "emotion_classifier.json", tmp_path / "mine.json")
    for where in (tmp_path / "mine.onnx", tmp_path):  # the file, or the folder holding only it
        pipeline = EmotionPipeline.from_model(where, threads=1, detector="yunet")
        assert pipeline.classifier.input_size == 48 and pipeline.classifier.channels == 1  # read from the graph
        faces = pipeline.predict((FIXTURES / "biden.jpg").read_bytes())
        assert len(faces) == 1 and faces[0].landmarks is not None


def test_a_keras_file_without_its_graph_is_converted_once_into_the_chosen_cache(bundled, tmp_path):
    from emotionlib import EmotionPipeline

    model = tmp_path / "mine.keras"
    shutil.copyfile(ROOT / "models" / "emotion_classifier.keras", model)
    shutil.copyfile(ROOT / "models" / "emotion_classifier.json", tmp_path / "mine.json")  # names a graph not here
    first = EmotionPipeline.from_model(model, threads=1, cache_dir=tmp_path / "cache")
    [graph] = cached_graphs(tmp_path / "cache")
    made = graph.stat().st_mtime_ns
    again = EmotionPipeline.from_model(model, threads=1, cache_dir=tmp_path / "cache")
    assert cached_graphs(tmp_path / "cache") == [graph] and graph.stat().st_mtime_ns == made  # not converted again
    photo = (FIXTURES / "obama.jpg").read_bytes()
    assert again.predict(photo) == first.predict(photo)
    assert [f.emotion for f in first.predict(photo)] == [f.emotion for f in bundled.predict(photo)]


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
