"""EmotionPipeline in-process, built from the bundled model file (no BentoML): faces, both
detectors, given boxes, the steps one by one. (The same faces as the HTTP API:
tests/e2e/test_inprocess_matches_http.py.)"""
from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import FIXTURES, encode


@pytest.fixture(scope="module")
def pipeline():
    from emotionlib import EmotionPipeline

    return EmotionPipeline.from_model(threads=1).prepare()


def test_predict_bytes(pipeline):
    faces = pipeline.predict((FIXTURES / "obama.jpg").read_bytes())
    assert len(faces) == 1 and faces[0].emotion == "happy"
    assert 0.5 <= faces[0].detection_confidence <= 1.0 and faces[0].landmarks is None


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
    from emotionlib import EmotionPipeline

    yunet = EmotionPipeline.from_store(detector="yunet", threads=1)
    faces = yunet.predict(encode(pair))
    assert len(faces) == 2 and yunet.detector_name == "yunet"
    for face in faces:
        assert 0.6 <= face.detection_confidence <= 1.0
        assert len(face.landmarks) == 5
        b = face.box
        eyes = face.landmarks[:2]
        assert all(b.x <= x <= b.x + b.w and b.y <= y <= b.y + b.h / 1.5 for x, y in eyes)
