"""POST /emotion/video and /emotion/video/annotate on the real ASGI app (model worker
in-process): the answer's shape, faces classified by the model worker in batches, bad
input as 4xx JSON, no temporary file left."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from emotionlib.video import tempfiles
from tests.clips import identity_switches, three_people, write_clip
from tests.videofiles import avi_patch, cv2_clip, frame, jpeg, wav


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("http") / "short.mp4"
    write_clip(three_people(6.0, 640, 360), path, fps=10)
    return path.read_bytes()


def post(client, data: bytes, route: str = "/emotion/video", **form):
    return client.post(route, files={"video": ("clip.mp4", data, "video/mp4")}, data=form or None)


def test_video_answer(client, clip):
    response = post(client, clip, fps="10")  # the 30 s scenario in 6 s: faces move 5x faster
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["clip"]["frames_analysed"] == 60 and answer["clip"]["width"] == 640
    assert [f["t"] for f in answer["frames"]] == pytest.approx([i / 10 for i in range(60)])
    assert identity_switches(answer["frames"], three_people(6.0, 640, 360)).id_switches == 0
    assert {t["track_id"] for t in answer["tracks"]} == {f["track_id"] for fr in answer["frames"] for f in fr["faces"]}
    assert tempfiles.leftovers() == []


def test_same_answer_as_in_process(client, clip, bundled_model_store):
    from emotionlib import EmotionPipeline

    local = EmotionPipeline.from_store(threads=1).video(clip, fps=2).to_dict()
    served = post(client, clip, fps="2").json()
    assert served["clip"] == local["clip"] and served["tracks"] == local["tracks"]
    assert served["frames"] == local["frames"]


def test_annotated_webm(client, clip):
    response = post(client, clip, "/emotion/video/annotate", fps="1")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("video/webm")
    assert response.content[:4] == b"\x1a\x45\xdf\xa3"
    assert tempfiles.leftovers() == []


@pytest.mark.parametrize("data, form, status, code", [
    (b"", {}, 400, "empty_file"),
    (b"hello", {}, 400, "not_a_video"),
    (jpeg(frame(0)), {}, 415, "unsupported_video_type"),
    (wav(), {}, 415, "audio_only"),
    (None, {"fps": "0"}, 400, "invalid_fps"),
    (None, {"fps": "fast"}, 400, "invalid_fps"),
    (None, {"min_detection_confidence": "7"}, 400, "invalid_field"),
    (None, {"detect": "maybe"}, 400, "invalid_field"),
    ("truncated", {}, 400, "truncated_video"),
    ("codec", {}, 415, "unsupported_video_codec"),
])
def test_bad_video_requests_are_json_4xx(client, clip, tmp_path, data, form, status, code):
    if data is None:
        data = clip
    elif data == "truncated":
        data = clip[:len(clip) // 2]
    elif data == "codec":
        data = avi_patch(cv2_clip(tmp_path / "a.avi", "MJPG"), fourcc=b"XXXX")
    for route in ("/emotion/video", "/emotion/video/annotate"):
        response = post(client, data, route, **form)
        assert response.status_code == status, response.text
        assert response.json()["code"] == code
    assert tempfiles.leftovers() == []


def test_missing_or_wrong_field(client, clip):
    response = client.post("/emotion/video", files={"image": ("clip.mp4", clip, "video/mp4")})
    assert response.status_code == 400 and response.json()["code"] == "missing_field"
