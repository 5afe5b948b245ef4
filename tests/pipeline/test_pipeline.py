"""EmotionPipeline in-process: the same faces as the HTTP API, both detectors, given boxes."""
from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import FIXTURES, encode


@pytest.fixture(scope="module")
def pipeline(bundled_model_store):
    from emotionlib.pipeline import EmotionPipeline

    return EmotionPipeline.from_store(threads=1).prepare()


def test_predict_bytes_matches_the_http_answer(pipeline, client):
    data = (FIXTURES / "obama.jpg").read_bytes()
    faces = pipeline.predict(data)
    answer = client.post("/emotion", files={"image": ("obama.jpg", data, "image/jpeg")}).json()
    assert [f.as_dict() for f in faces] == answer
    assert len(faces) == 1 and faces[0].emotion == "happy"
    assert 0.5 <= faces[0].detector_score <= 1.0 and faces[0].landmarks is None


def test_predict_array_and_given_boxes(pipeline, obama):
    image = np.asarray(obama)
    found = pipeline.predict(image)
    again = pipeline.predict(image, boxes=[f.box for f in found])
    assert [f.box for f in again] == [f.box for f in found]
    assert again[0].emotion == found[0].emotion  # identity framing for Haar: same crop
    assert pipeline.predict(np.full((200, 200, 3), 200, np.uint8)) == []


def test_steps_compose_to_predict(pipeline, pair):
    image = np.asarray(pair)
    detections = pipeline.detect(image)
    pixels = pipeline.crops(image, detections)
    assert pixels.dtype == np.uint8 and pixels.shape == (2, 48, 48)
    faces = pipeline.faces(detections, pipeline.classify(pixels))
    assert faces == pipeline.predict(image)
    assert faces[0].box.x < faces[1].box.x


def test_yunet_finds_both_faces_with_landmarks(bundled_model_store, pair):
    from emotionlib.pipeline import EmotionPipeline

    yunet = EmotionPipeline.from_store(detector="yunet", threads=1)
    faces = yunet.predict(encode(pair))
    assert len(faces) == 2 and yunet.detector_name == "yunet"
    for face in faces:
        assert 0.6 <= face.detector_score <= 1.0
        assert len(face.landmarks) == 5
        b = face.box
        eyes = face.landmarks[:2]
        assert all(b.x <= x <= b.x + b.w and b.y <= y <= b.y + b.h / 1.5 for x, y in eyes)


def test_detector_setting_is_validated():
    from emotionlib.serving.settings import Settings, SettingsError

    assert Settings.from_env({"EMOTION_DETECTOR": "YuNet"}).detection.detector == "yunet"
    with pytest.raises(SettingsError, match="EMOTION_DETECTOR"):
        Settings.from_env({"EMOTION_DETECTOR": "mtcnn"})


def test_model_calls_have_a_deadline_shorter_than_the_clients(bundled_model_store):
    """The internal client's timeout is the model service's traffic timeout (x1.01), and its
    aiohttp session is never recycled under in-flight calls (BentoML's default: every 100)."""
    from service import SETTINGS, EmotionAPI, EmotionModel

    assert EmotionModel.config["traffic"]["timeout"] == SETTINGS.model.model_timeout_s
    assert SETTINGS.model.model_timeout_s * 1.01 < EmotionAPI.config["traffic"]["timeout"]
    assert EmotionModel.config["runner_connection"]["max_requests"] >= 2**31 - 1
