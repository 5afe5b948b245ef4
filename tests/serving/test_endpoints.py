"""POST /emotion/annotate, POST /emotion/batch, the boxes field and GET /ui, through the
real ASGI app with the bundled model."""
from __future__ import annotations

import io
import json
import re

import numpy as np
import pytest
from PIL import Image

from emotionlib.framing import FRAMINGS, framed_box
from emotionlib.geometry import Box
from tests.helpers import check_face, encode, error_of, post_image


def annotate(client, data, filename="photo.jpg", content_type="image/jpeg", **form):
    return client.post("/emotion/annotate", files={"image": (filename, data, content_type)}, data=form or None)


def faces_header(response):
    return json.loads(response.headers["X-Emotion-Faces"])


def edge_pixels(array, box):
    """The pixels along the four edges of box (one pixel inside it)."""
    x, y, w, h = box
    return np.concatenate([array[y, x:x + w], array[y + h - 1, x:x + w], array[y:y + h, x], array[y:y + h, x + w - 1]])


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_annotate_draws_the_boxes(client, pair, fmt):
    data = encode(pair, fmt)
    response = annotate(client, data, "pair." + fmt.lower(), "image/" + fmt.lower())
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/" + fmt.lower()
    out = Image.open(io.BytesIO(response.content))
    assert out.format == fmt and out.size == pair.size
    faces = faces_header(response)
    assert faces == post_image(client, data, "pair." + fmt.lower(), "image/" + fmt.lower()).json()
    assert len(faces) == 2
    before = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), np.int16)
    after = np.asarray(out.convert("RGB"), np.int16)
    for face in faces:
        # Drawn lines change the edges far beyond JPEG re-encoding noise.
        assert np.abs(edge_pixels(after, face["bounding_box"]) - edge_pixels(before, face["bounding_box"])).mean() > 40
    corner = (slice(pair.height - 40, pair.height), slice(0, 40))  # no face there
    assert np.abs(after[corner] - before[corner]).mean() < (3 if fmt == "JPEG" else 0.01)


def test_annotate_returns_the_upright_image(client, obama):
    exif = Image.Exif()
    exif[0x0112] = 8  # stored rotated, displayed upright
    response = annotate(client, encode(obama.rotate(90, expand=True), exif=exif.tobytes()))
    out = Image.open(io.BytesIO(response.content))
    assert out.size == obama.size
    assert out.getexif().get(0x0112) in (None, 1)
    [face] = faces_header(response)
    check_face(face, obama.width, obama.height)


def test_annotate_without_faces_returns_the_photo(client):
    response = annotate(client, encode(Image.new("RGB", (300, 200), "skyblue"), "PNG"), "sky.png", "image/png")
    assert response.status_code == 200 and faces_header(response) == []
    assert np.all(np.asarray(Image.open(io.BytesIO(response.content))) == np.asarray(Image.new("RGB", (300, 200), "skyblue")))


def test_annotate_bad_input_is_json_4xx(client):
    assert error_of(annotate(client, b"just text"), 400)["code"] == "not_an_image"
    response = client.post("/emotion/annotate", files={"photo": ("x.jpg", b"x", "image/jpeg")})
    assert error_of(response, 400)["code"] == "missing_field"


@pytest.mark.parametrize("width, height, form", [
    (1, 300_000, {"detect": "false"}), (1, 300_000, {"boxes": "[[0, 0, 1, 300000]]"}),
    (3_000_000, 1, {}), (300_000, 1, {"detect": "false"}), (7071, 7071, {"detect": "false"}),
], ids=["1x300000-detect-false", "1x300000-boxes", "3000000x1", "300000x1-detect-false", "7071x7071"])
def test_annotate_draws_on_any_shape_inside_the_limits(client, width, height, form):
    """Extreme shapes within the 50 M pixel limit (issue 16: a 500 after up to 8.8 s of CPU,
    Pillow's bomb check on a 6,667-pixel font and FreeType's invalid pixel size)."""
    from tests.helpers import bomb_png

    response = annotate(client, bomb_png(width, height), "strip.png", "image/png", **form)
    assert response.status_code == 200, response.text[:300]
    assert Image.open(io.BytesIO(response.content)).size == (width, height)
    assert int(response.headers["X-Emotion-Face-Count"]) == len(faces_header(response)) == (0 if not form else 1)


def test_annotate_as_json_for_clients_that_cannot_take_large_headers(client, pair, face_crop):
    """`Accept: application/json`: the faces and the image inline. The X-Emotion-Faces header
    carries at most 32 faces (under 8 KB whatever the faces); past that it is left out and
    X-Emotion-Face-Count still says how many."""
    import base64

    from emotionlib.serving.fields import MAX_HEADER_FACES

    data = encode(pair, "PNG")
    plain = annotate(client, data, "pair.png", "image/png")
    response = client.post("/emotion/annotate", files={"image": ("pair.png", data, "image/png")},
                           headers={"Accept": "application/json"})
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"faces", "media_type", "image"} and body["media_type"] == "image/png"
    assert body["faces"] == faces_header(plain) and len(body["faces"]) == 2
    assert base64.b64decode(body["image"]) == plain.content
    for accept, json_answer in [("image/*, application/json;q=0.5", False), ("*/*", False),
                                ("application/json, */*;q=0.1", True), ("application/json;q=0", False),
                                ("text/html;q=0.9, application/json;q=nan", False)]:
        got = client.post("/emotion/annotate", files={"image": ("pair.png", data, "image/png")},
                          headers={"Accept": accept})
        assert got.headers["content-type"] == ("application/json" if json_answer else "image/png"), accept

    # more faces than the header carries: 40 given boxes on a 2000x1000 photo
    canvas = Image.new("RGB", (2000, 1000), "white")
    boxes = [[10 + 49 * i, 10 + 20 * (i % 7), 40, 40] for i in range(40)]
    big = encode(canvas)
    many = client.post("/emotion/annotate", files={"image": ("c.jpg", big, "image/jpeg")},
                       data={"boxes": json.dumps(boxes)})
    assert many.status_code == 200 and many.headers["X-Emotion-Face-Count"] == "40"
    assert "X-Emotion-Faces" not in many.headers
    everything = client.post("/emotion/annotate", files={"image": ("c.jpg", big, "image/jpeg")},
                             data={"boxes": json.dumps(boxes)}, headers={"Accept": "application/json"}).json()
    assert [face["bounding_box"] for face in everything["faces"]] == sorted(boxes)
    few = client.post("/emotion/annotate", files={"image": ("c.jpg", big, "image/jpeg")},
                      data={"boxes": json.dumps(boxes[:MAX_HEADER_FACES])})
    assert len(faces_header(few)) == MAX_HEADER_FACES


def test_outside_an_http_request_the_annotation_is_an_image():
    from bentoml._internal.context import ServiceContext

    from emotionlib.serving.fields import wants_json

    assert wants_json(ServiceContext()) is False


def test_the_faces_header_stays_under_8_kb_for_the_longest_faces():
    """32 faces with the longest JSON a face can have: 10-digit box numbers (an image of
    500 M pixels, the highest EMOTION_MAX_IMAGE_PIXELS, has sides below 10 digits), the longest
    emotion, and scores and confidences of the most characters."""
    from emotionlib.labels import EMOTIONS
    from emotionlib.serving.fields import FACES_HEADER, MAX_HEADER_FACES

    longest = {"bounding_box": [4_999_999_999] * 4, "emotion": max(EMOTIONS, key=len), "confidence": 0.1234,
               "scores": {name: 0.1234 for name in EMOTIONS}, "detection_confidence": 0.1234}
    header = f"{FACES_HEADER}: " + json.dumps([longest] * MAX_HEADER_FACES, separators=(",", ":")) + "\r\n"
    assert len(header.encode()) < 8 * 1024


def test_boxes_classify_exactly_the_given_regions(client, obama):
    data = encode(obama, "PNG")
    [detected] = post_image(client, data, "o.png", "image/png").json()
    # the detected face as the detector's framing crops it (given boxes are cropped exactly)
    framed = framed_box(Box(*detected["bounding_box"]), FRAMINGS["haar"]).as_list()
    boxes = [[0, 0, 120, 150], framed]
    response = post_image(client, data, "o.png", "image/png", boxes=json.dumps(boxes))
    assert response.status_code == 200
    faces = response.json()
    assert [f["bounding_box"] for f in faces] == boxes  # in the order given, no detection
    for face in faces:
        check_face(face, obama.width, obama.height)
    assert faces[1]["scores"] == pytest.approx(detected["scores"], abs=2e-4)  # same pixels, same scores
    annotated = annotate(client, data, "o.png", "image/png", boxes=json.dumps(boxes))
    assert faces_header(annotated) == faces


INVALID = [
    ("[[0, 0, 10, 10], [1, 2, 3]]", "boxes[1]"),
    ("[[0, 0, 10, 10], [0, 0, 0, 10]]", "boxes[1]"),
    ("[[0, 0, 10, 10], [900, 0, 20, 20]]", "boxes[1] = [900, 0, 20, 20] is outside"),
    ("[[-5, 0, 10, 10]]", "boxes[0]"),
    ("nonsense", "not valid JSON"),
    (json.dumps([[0, 0, 10, 10]] * 101), "too many boxes"),
]


@pytest.mark.parametrize("boxes, message", INVALID)
@pytest.mark.parametrize("route", ["/emotion", "/emotion/annotate"])
def test_invalid_boxes_are_400_naming_the_box(client, obama, route, boxes, message):
    response = client.post(route, files={"image": ("o.jpg", encode(obama), "image/jpeg")}, data={"boxes": boxes})
    body = error_of(response, 400)
    assert body["code"] == "invalid_boxes" and message in body["error"]


def batch(client, photos):
    files = [("images", (name, data, "application/octet-stream")) for name, data in photos]
    return client.post("/emotion/batch", files=files)


def model_calls():
    from prometheus_client import REGISTRY

    return (REGISTRY.get_sample_value("emotion_model_batch_size_count") or 0,
            REGISTRY.get_sample_value("emotion_model_batch_size_sum") or 0)


def test_batch_answers_photo_by_photo(client, obama, pair):
    good, two = encode(obama), encode(pair, "PNG")
    calls_before, faces_before = model_calls()
    response = batch(client, [("a.jpg", good), ("b.txt", b"hello"), ("c.jpg", good[:3000]), ("d.png", two),
                              ("e.jpg", b"")])
    calls_after, faces_after = model_calls()
    assert response.status_code == 200
    entries = response.json()
    assert len(entries) == 5
    assert entries[0] == {"faces": post_image(client, good).json()}
    assert error_of_entry(entries[1])["code"] == "not_an_image"
    assert error_of_entry(entries[2])["code"] in ("truncated_image", "corrupt_image")
    assert entries[3] == {"faces": post_image(client, two, "d.png", "image/png").json()}
    assert len(entries[3]["faces"]) == 2
    assert error_of_entry(entries[4])["code"] == "empty_file"
    assert (calls_after - calls_before, faces_after - faces_before) == (1, 3)  # all faces in one model call


def error_of_entry(entry):
    assert set(entry) == {"error", "code", "status"} and 400 <= entry["status"] < 500
    return entry


def test_batch_of_only_bad_photos_and_a_photo_over_the_size_limit(client):
    entries = batch(client, [("x.txt", b"text"), ("big.jpg", b"\xff\xd8" + b"\0" * (11 * 1024 * 1024))]).json()
    assert error_of_entry(entries[0])["code"] == "not_an_image"
    assert error_of_entry(entries[1])["code"] == "upload_too_large" and entries[1]["status"] == 413


def test_batch_limits_and_fields(client, face_crop):
    data = encode(face_crop.resize((60, 60)))
    body = error_of(batch(client, [(f"{i}.jpg", data) for i in range(17)]), 400)
    assert body["code"] == "too_many_files" and "16" in body["error"]
    assert error_of(client.post("/emotion/batch", files={"image": ("x.jpg", data, "image/jpeg")}), 400)["code"] \
        == "missing_field"
    response = client.post("/emotion/batch", files=[("images", ("x.jpg", data, "image/jpeg"))],
                           data={"images": "http://127.0.0.1:1/x.jpg"})
    assert error_of(response, 400)["code"] == "not_a_file"


def test_batch_with_detect_false(client, face_crop):
    entries = batch(client, [("a.jpg", encode(face_crop)), ("b.jpg", encode(face_crop))]).json()
    assert len(entries) == 2 and all(len(e["faces"]) == 1 for e in entries)
    files = [("images", ("a.jpg", encode(face_crop), "image/jpeg"))]
    [entry] = client.post("/emotion/batch", files=files, data={"detect": "false"}).json()
    assert entry["faces"][0]["bounding_box"] == [0, 0, face_crop.width, face_crop.height]


def test_ui_page_loads_only_from_the_service(client):
    page = client.get("/ui")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "/emotion/annotate" in client.get("/ui/ui.js").text
    refs = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert refs and not [ref for ref in refs if "//" in ref or ref.startswith("data:")]
    for ref in refs:
        assert client.get(ref if ref.startswith("/") else "/ui/" + ref).status_code == 200, ref
    assert "default-src 'self'" in page.text  # the page's CSP refuses anything from elsewhere


def test_detection_confidence_and_its_threshold(client, pair):
    data = encode(pair, "PNG")
    faces = post_image(client, data, "p.png", "image/png").json()
    scores = sorted(f["detection_confidence"] for f in faces)
    assert len(scores) == 2 and all(0.0 < s <= 1.0 for s in scores)
    assert post_image(client, data, "p.png", "image/png", min_detection_confidence="0").json() == faces
    if scores[0] < scores[1]:
        threshold = (scores[0] + scores[1]) / 2
        kept = post_image(client, data, "p.png", "image/png", min_detection_confidence=str(threshold)).json()
        assert [f["detection_confidence"] for f in kept] == [scores[1]]
        [entry] = client.post(
            "/emotion/batch", files=[("images", ("p.png", data, "image/png"))],
            data={"min_detection_confidence": str(threshold)}).json()
        assert entry == {"faces": kept}
    above_all = post_image(client, data, "p.png", "image/png", min_detection_confidence="1").json()
    assert all(f["detection_confidence"] == 1.0 for f in above_all)


def test_given_boxes_have_no_detection_confidence_and_are_not_filtered(client, obama):
    faces = post_image(client, encode(obama), boxes="[[0, 0, 100, 100]]", min_detection_confidence="0.99").json()
    assert len(faces) == 1 and faces[0]["detection_confidence"] is None
    faces = post_image(client, encode(obama), detect="false", min_detection_confidence="0.99").json()
    assert len(faces) == 1 and faces[0]["detection_confidence"] is None  # no detector ran either


@pytest.mark.parametrize("route", ["/emotion", "/emotion/annotate", "/emotion/batch"])
def test_bad_min_detection_confidence(client, obama, route):
    field = "images" if route.endswith("batch") else "image"
    response = client.post(route, files=[(field, ("o.jpg", encode(obama), "image/jpeg"))],
                           data={"min_detection_confidence": "1.5"})
    body = error_of(response, 400)
    assert body["code"] == "invalid_field" and "min_detection_confidence" in body["error"]


def test_page_files_are_open_when_the_api_needs_a_key():
    """With EMOTION_API_KEY set, the page's static files and the API documentation (the page's
    "API docs" link: /, /docs.json, Swagger UI's files) load without it; the API does not."""
    import anyio

    from emotionlib.serving.access import ApiKeyGuard

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def status_of(path):
        sent = []

        async def send(message):
            sent.append(message)

        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}

        guard = ApiKeyGuard(app, api_key="k" * 16)
        await guard({"type": "http", "method": "GET", "path": path, "headers": []}, receive, send)
        return sent[0]["status"]

    for path, status in [("/ui", 200), ("/ui/", 200), ("/ui/ui.js", 200), ("/uix", 401),
                         ("/emotion/annotate", 401), ("/", 200), ("/docs.json", 200),
                         ("/static_content/swagger-ui.css", 200), ("/static_contentx", 401), ("/docs.jsonx", 401)]:
        assert anyio.run(status_of, path) == status, path


def test_batch_with_more_faces_than_one_model_batch(client, face_crop):
    """100 faces in one request (EMOTION_MODEL_MAX_BATCH_FACES is 64): every photo still gets its own faces."""
    tile = face_crop.resize((100, 100))
    photos = []
    for shift in (0, 1):
        canvas = Image.new("RGB", (10 * 120, 5 * 130), "white")
        for i in range(50):
            canvas.paste(tile if (i + shift) % 2 else tile.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
                         (10 + (i % 10) * 120, 10 + (i // 10) * 130))
        photos.append(encode(canvas))
    entries = batch(client, [("a.jpg", photos[0]), ("b.jpg", photos[1])]).json()
    for entry, data in zip(entries, photos):
        assert entry["faces"] == post_image(client, data).json()
        assert len(entry["faces"]) >= 45
