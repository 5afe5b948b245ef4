"""POST /emotion/video and /emotion/video/annotate on the real ASGI app (model worker
in-process): the answer's shape, faces classified by the model worker in batches, bad
input as 4xx JSON, no temporary file left."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from emotionlib.video import tempfiles
from tests.clips import identity_switches, three_people, write_clip
from tests.helpers import error_of
from tests.videofiles import CASES, avi_patch, cv2_clip, frame, jpeg, made_clips, wav


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


def test_answer_matches_the_schema_in_the_openapi_document(client, clip):
    import jsonschema

    from emotionlib.serving.fields import VIDEO_SCHEMA

    jsonschema.validate(post(client, clip, fps="2").json(), VIDEO_SCHEMA)
    document = client.get("/docs.json").json()
    for path, method in (("/emotion/video", "post"), ("/emotion/video/task/get", "get")):  # the task's answer
        answer = document["paths"][path][method]["responses"]["200"]["content"]["application/json"]["schema"]
        assert answer == VIDEO_SCHEMA


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory) -> bytes:
    """61 s of small frames at 2 frames/s: over the synchronous endpoints' 60 s."""
    return cv2_clip(tmp_path_factory.mktemp("long") / "long.mp4", frames=122, fps=2, width=64, height=48)


def submit(client, data: bytes, **form):
    response = client.post("/emotion/video/task/submit", files={"video": ("clip.mp4", data, "video/mp4")},
                           data=form or None, headers={"Authorization": "Bearer a-key-the-store-must-not-keep"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"task_id", "status"}
    return body["task_id"]


def test_a_long_clip_is_refused_with_413_naming_the_task_endpoint_which_takes_it(client, long_clip):
    for route in ("/emotion/video", "/emotion/video/annotate"):
        body = error_of(post(client, long_clip, route), 413)
        assert body["code"] == "video_too_long" and "POST /emotion/video/task/submit" in body["error"]
    task_id = submit(client, long_clip, fps="1")
    status = client.get("/emotion/video/task/status", params={"task_id": task_id}).json()
    assert status["status"] == "completed" and status["task_id"] == task_id
    answer = client.get("/emotion/video/task/get", params={"task_id": task_id})
    assert answer.status_code == 200
    assert answer.json()["clip"]["frames_analysed"] == 61 and answer.json()["clip"]["duration"] == pytest.approx(61)
    assert tempfiles.leftovers() == []


def test_too_many_frames_for_one_request_is_413_too(client, tmp_path):
    data = cv2_clip(tmp_path / "fast.mp4", frames=1000, fps=25, width=32, height=24)  # 40 s, 1000 frames
    assert post(client, data, fps="2").status_code == 200
    body = error_of(post(client, data, fps="1000"), 413)
    assert body["code"] == "video_too_long" and "1,000 frames" in body["error"] and "task/submit" in body["error"]


def test_the_task_gives_what_the_endpoint_gives(client, clip):
    task_id = submit(client, clip, fps="2", min_detection_confidence="0.5")
    answer = client.get("/emotion/video/task/get", params={"task_id": task_id}).json()
    assert answer == post(client, clip, fps="2", min_detection_confidence="0.5").json()


def test_the_task_store_keeps_neither_the_clip_nor_the_key(client, clip, bundled_model_store):
    """BentoML keeps each task's request in BENTOML_HOME/task_result.db, and rows of tasks
    that never end are never deleted: what it keeps is the fields and a token, not the clip."""
    import sqlite3
    from pathlib import Path

    task_id = submit(client, clip, fps="2")
    with sqlite3.connect(Path(bundled_model_store) / "task_result.db") as db:
        stored, status = db.execute("SELECT input, status FROM result WHERE task_id = ?", (task_id,)).fetchone()
    assert status == "completed"
    assert len(stored) < 2000, len(stored)
    import base64
    import json

    request = json.loads(stored)
    body = base64.b64decode(request["content"])
    assert clip[2000:2064] not in body and clip[:64] not in body
    assert b"a-key-the-store-must-not-keep" not in stored and b"authorization" not in stored.lower()
    assert tempfiles.leftovers() == []


@pytest.mark.parametrize("data, form, status, code", [
    (b"hello", {}, 400, "not_a_video"),
    (None, {"fps": "0"}, 400, "invalid_fps"),
    ("codec", {}, 415, "unsupported_video_codec"),
])
def test_a_failed_task_keeps_its_json_error(client, clip, tmp_path, data, form, status, code):
    if data is None:
        data = clip
    elif data == "codec":
        data = avi_patch(cv2_clip(tmp_path / "a.avi", "MJPG"), fourcc=b"XXXX")
    task_id = submit(client, data, **form)
    assert client.get("/emotion/video/task/status", params={"task_id": task_id}).json()["status"] == "failed"
    assert error_of(client.get("/emotion/video/task/get", params={"task_id": task_id}), status)["code"] == code
    assert tempfiles.leftovers() == []


def test_task_routes_without_a_clip_to_run_are_refused(client, clip):
    task_id = submit(client, clip, fps="1")
    for method, path in [("POST", "/emotion/video/task"), ("POST", "/emotion/video/task/retry"),
                         ("PUT", "/emotion/video/task/cancel")]:
        response = client.request(method, path, params={"task_id": task_id},
                                  files={"video": ("clip.mp4", clip, "video/mp4")} if method == "POST" else None)
        assert error_of(response, 405)["code"] == "not_supported"
    assert client.get("/emotion/video/task/status", params={"task_id": "nope"}).status_code == 404


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    return made_clips(tmp_path_factory.mktemp("made"))


def test_every_kind_of_bad_video_is_its_json_4xx_over_http(client, made):
    """The 33 kinds of tests/pipeline/test_video_input.py, uploaded: each its status and code
    in the JSON shape, none a 5xx, no temporary file left."""
    assert len(CASES) >= 20
    for name, (data, status, code) in CASES.items():
        data = data(made) if callable(data) else data
        body = error_of(post(client, data), status)
        assert body["code"] == code, (name, body)
    assert tempfiles.leftovers() == []
