"""GET /docs.json describes every answer of every endpoint in our shape (issue 16, item 9):
real answers of each endpoint, of every status the in-process app can be made to give, are
checked against it (tests/e2e/test_hostile.py adds 401, 408 and 503 from a real server); the
video endpoints, the task's submit, status and result and the task routes we refuse too."""
from __future__ import annotations

import jsonschema
import pytest
from PIL import Image

from emotionlib.errors import EmotionError
from emotionlib.serving.errors import STATUS, error_body
from emotionlib.serving.openapi import OPERATIONS, PHOTO_ROUTES, ROUTES, codes_by_status
from tests.helpers import FIXTURES, bomb_png, documented, encode

PHOTO = (FIXTURES / "obama.jpg").read_bytes()
GIF = encode(Image.new("RGB", (20, 20)), "GIF")


@pytest.fixture(scope="module")
def document(client):
    return client.get("/docs.json").json()


def test_every_code_is_documented_with_its_status_and_the_bodies_validate(document):
    """Each code the service raises, on every endpoint it can reach, is listed under its
    status, and the body errors.error_body makes for it validates against that entry."""
    listed = set()
    for method, route in OPERATIONS:
        responses = document["paths"][route][method]["responses"]
        for status, codes in codes_by_status(route).items():
            schema = responses[str(status)]["content"]["application/json"]["schema"]
            for code in codes:
                listed.add(code)
                body = {"error": "a message", "code": code, "status": status}
                if STATUS.get(code) == status:
                    body = error_body(EmotionError(code, "a message"))
                jsonschema.validate(body, {**schema, "components": document["components"]})
            with pytest.raises(jsonschema.ValidationError):  # another status's code is not this one's
                jsonschema.validate({"error": "x", "code": "no_such_code", "status": status},
                                    {**schema, "components": document["components"]})
    assert set(STATUS) - listed == {"not_ready", "forbidden"}  # /readyz's and a WebSocket handshake's
    assert not {"InvalidArgument", "NotFound", "InternalServerError"} & set(document["components"]["schemas"])


def form(route, data=PHOTO, name="o.jpg", content_type="image/jpeg", **fields):
    field = "images" if route.endswith("batch") else "image"
    return {"files": [(field, (name, data, content_type))], "data": fields or None}


REQUESTS = [
    ("ok", lambda route: form(route), 200),
    ("no face", lambda route: form(route, encode(Image.new("RGB", (90, 60), "white"), "PNG"), "w.png",
                                   "image/png"), 200),
    ("bad detect", lambda route: form(route, detect="sometimes"), 400),
    ("bad confidence", lambda route: form(route, min_detection_confidence="1" + "0" * 309), 400),
    ("unknown field", lambda route: form(route, colour="red"), 400),
    ("not multipart", lambda route: {"json": {"image": "x"}}, 415),
    ("missing file", lambda route: {"data": {"detect": "true"}, "files": [("other", ("a", b"a", "text/plain"))]}, 400),
    ("not an image", lambda route: form(route, b"plain text", "a.txt", "text/plain"), 400),
    ("gif", lambda route: form(route, GIF, "a.gif", "image/gif"), 415),
    ("bomb", lambda route: form(route, bomb_png(20_000, 20_000), "b.png", "image/png"), 413),
    ("too large", lambda route: form(route, b"\xff" * (11 * 1024 * 1024)), 413),
]


@pytest.mark.parametrize("route", PHOTO_ROUTES)
@pytest.mark.parametrize("name, request_of, status", REQUESTS, ids=[r[0] for r in REQUESTS])
def test_answers_match_the_document(client, document, route, name, request_of, status):
    response = client.post(route, **request_of(route))
    if route.endswith("batch") and name in ("not an image", "gif", "bomb", "too large"):
        status = 200  # a batch photo's own error is its entry (the batch's body may be 50 MiB)
    assert response.status_code == status, response.text[:300]
    documented(document, route, response)
    if route == "/emotion/annotate" and status == 200:
        as_json = client.post(route, **request_of(route), headers={"Accept": "application/json"})
        assert as_json.headers["content-type"] == "application/json"
        documented(document, route, as_json)


def test_other_methods_get_405_in_the_same_shape(client, document):
    for route in ROUTES:
        response = client.get(route)
        assert response.status_code == 405
        jsonschema.validate(response.json(), document["components"]["schemas"]["Error"])


# --- the video endpoints and the task ---
@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> bytes:
    from tests.videofiles import cv2_clip

    return cv2_clip(tmp_path_factory.mktemp("doc") / "c.mp4", frames=10, fps=5)


def video_form(data, **fields):
    return {"files": [("video", ("c.mp4", data, "video/mp4"))], "data": fields or None}


VIDEO_REQUESTS = [
    ("ok", lambda clip: video_form(clip), 200),
    ("empty", lambda clip: video_form(b""), 400),
    ("not a video", lambda clip: video_form(b"plain text"), 400),
    ("truncated", lambda clip: video_form(clip[:len(clip) // 2]), 400),
    ("a photo", lambda clip: video_form(PHOTO), 415),
    ("bad fps", lambda clip: video_form(clip, fps="1e999"), 400),
    ("bad detect", lambda clip: video_form(clip, detect="sometimes"), 400),
    ("unknown field", lambda clip: video_form(clip, colour="red"), 400),
    ("not multipart", lambda clip: {"json": {"video": "x"}}, 415),
    ("missing file", lambda clip: {"files": [("image", ("c.mp4", clip, "video/mp4"))]}, 400),
]


@pytest.mark.parametrize("route", ["/emotion/video", "/emotion/video/annotate"])
@pytest.mark.parametrize("name, request_of, status", VIDEO_REQUESTS, ids=[r[0] for r in VIDEO_REQUESTS])
def test_video_answers_match_the_document(client, document, clip, route, name, request_of, status):
    response = client.post(route, **request_of(clip))
    assert response.status_code == status, response.text[:300]
    documented(document, route, response)


def test_the_task_answers_match_the_document(client, document, clip):
    """Submit (and its refusals), status, the result of a completed and of a failed task, the
    queries BentoML refuses (no task_id, no such task), and the task routes we refuse."""
    route = "/emotion/video/task"
    ok = client.post(f"{route}/submit", **video_form(clip, fps="2"))
    documented(document, f"{route}/submit", ok)
    failed = client.post(f"{route}/submit", **video_form(b"plain text"))
    for refused_form in (video_form(clip, detect="sometimes"), {"json": {}}, video_form(clip, colour="red")):
        response = client.post(f"{route}/submit", **refused_form)
        assert response.status_code in (400, 415)
        documented(document, f"{route}/submit", response)
    for task, state, status in ((ok.json()["task_id"], "completed", 200), (failed.json()["task_id"], "failed", 400)):
        answer = client.get(f"{route}/status", params={"task_id": task})
        assert documented(document, f"{route}/status", answer, "get") and answer.json()["status"] == state
        result = client.get(f"{route}/get", params={"task_id": task})
        assert result.status_code == status
        documented(document, f"{route}/get", result, "get")
    for query in ("status", "get"):
        for params, status in (({}, 400), ({"task_id": "no-such-task"}, 404)):
            response = client.get(f"{route}/{query}", params=params)
            assert response.status_code == status
            documented(document, f"{route}/{query}", response, "get")
    for method, path in (("post", route), ("post", f"{route}/retry"), ("put", f"{route}/cancel")):
        response = client.request(method.upper(), path, params={"task_id": ok.json()["task_id"]})
        assert response.status_code == 405
        documented(document, path, response, method)
        assert "200" not in document["paths"][path][method]["responses"]  # it never answers one
