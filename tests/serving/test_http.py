"""The HTTP contract of POST /emotion, through the real ASGI app with the bundled model."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tests.fuzzing import HOSTILE_FIELDS
from tests.helpers import bomb_png, check_face, encode, error_of, post_image


def test_one_smiling_face(client, obama):
    response = post_image(client, encode(obama))
    assert response.status_code == 200
    faces = response.json()
    assert len(faces) == 1
    check_face(faces[0], obama.width, obama.height)
    assert faces[0]["emotion"] == "happy"  # the official portrait is smiling


def test_two_faces_left_to_right(client, pair):
    faces = post_image(client, encode(pair, "PNG"), "pair.png", "image/png").json()
    assert len(faces) == 2
    for face in faces:
        check_face(face, pair.width, pair.height)
    assert faces[0]["bounding_box"][0] < faces[1]["bounding_box"][0]


def test_no_face_is_an_empty_list(client):
    response = post_image(client, encode(Image.new("RGB", (300, 200), "skyblue")))
    assert response.status_code == 200 and response.json() == []


def test_detect_false_classifies_the_whole_image(client, face_crop):
    response = post_image(client, encode(face_crop), detect="false")
    assert response.status_code == 200
    faces = response.json()
    assert len(faces) == 1
    assert faces[0]["bounding_box"] == [0, 0, face_crop.width, face_crop.height]
    check_face(faces[0], face_crop.width, face_crop.height)


def test_detect_false_matches_the_detected_face(client, obama, face_crop):
    """The same pixels give the same scores, whether found by the detector or sent cropped
    (as the detector's face is framed: emotionlib.framing)."""
    from emotionlib.geometry import Box
    from emotionlib.framing import FRAMINGS, framed_box

    detected = post_image(client, encode(obama, "PNG"), "o.png", "image/png").json()[0]
    x, y, w, h = framed_box(Box(*detected["bounding_box"]), FRAMINGS["haar"]).as_list()
    assert x >= 0 and y >= 0 and x + w <= obama.width and y + h <= obama.height
    cropped = post_image(client, encode(obama.crop((x, y, x + w, y + h)), "PNG"), "c.png", "image/png",
                         detect="false").json()[0]
    assert cropped["scores"] == pytest.approx(detected["scores"], abs=2e-4)


def test_exif_rotated_photo_gets_upright_boxes(client, obama):
    stored = obama.rotate(90, expand=True)  # as a phone stores a portrait shot
    exif = Image.Exif()
    exif[0x0112] = 8  # display rotated 90 degrees clockwise: upright again
    faces = post_image(client, encode(stored, exif=exif.tobytes())).json()
    assert len(faces) == 1
    check_face(faces[0], obama.width, obama.height)  # coordinates of the upright image


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "CMYK"])
def test_other_color_modes(client, obama, mode):
    image = obama.convert(mode)
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    faces = post_image(client, encode(image, fmt), "x." + fmt.lower(), "image/" + fmt.lower()).json()
    assert len(faces) == 1


def test_fifty_faces(client, face_crop):
    tile = face_crop.resize((100, 100))
    canvas = Image.new("RGB", (10 * 120, 5 * 130), "white")
    for i in range(50):
        canvas.paste(tile, (10 + (i % 10) * 120, 10 + (i // 10) * 130))
    faces = post_image(client, encode(canvas)).json()
    assert len(faces) >= 45
    keys = [(f["bounding_box"][0], f["bounding_box"][1]) for f in faces]
    assert keys == sorted(keys)


def test_large_photo_boxes_in_original_coordinates(client, obama):
    big = obama.resize((obama.width * 3, obama.height * 3))
    faces = post_image(client, encode(big, quality=80)).json()
    assert len(faces) == 1
    check_face(faces[0], big.width, big.height)
    assert faces[0]["bounding_box"][2] > 700


def test_octet_stream_upload_is_sniffed(client, obama):
    response = post_image(client, encode(obama), "blob", "application/octet-stream")
    assert response.status_code == 200 and len(response.json()) == 1


def random_bytes(n=4096):
    return np.random.default_rng(1).integers(0, 256, n, dtype=np.uint8).tobytes()


BAD_FILES = [
    ("empty", b"", 400, "empty_file"),
    ("random bytes", random_bytes(), 400, "not_an_image"),
    ("text", b"just some text\n", 400, "not_an_image"),
    ("html", b"<html><body>no</body></html>", 400, "not_an_image"),
    ("pdf", b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\n", 400, "not_an_image"),
]


@pytest.mark.parametrize("name, data, status, code", BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_bad_files(client, name, data, status, code):
    assert error_of(post_image(client, data), status)["code"] == code


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_images(client, obama, fmt):
    data = encode(obama, fmt)
    body = error_of(post_image(client, data[: len(data) // 3]), 400)
    assert body["code"] in ("truncated_image", "corrupt_image")


def test_unsupported_image_type(client, obama):
    body = error_of(post_image(client, encode(obama, "GIF"), "x.gif", "image/gif"), 415)
    assert "GIF" in body["error"]


def test_decompression_bomb(client):
    body = error_of(post_image(client, bomb_png(10_000, 6_000), "bomb.png", "image/png"), 413)
    assert body["code"] == "image_too_large"


def test_upload_over_the_size_limit(client):
    body = error_of(post_image(client, b"\xff\xd8" + b"\0" * (11 * 1024 * 1024)), 413)
    assert body["code"] == "upload_too_large"


def test_wrong_field_name_is_400_not_500(client, obama):
    response = client.post("/emotion", files={"picture": ("x.jpg", encode(obama), "image/jpeg")})
    body = error_of(response, 400)
    assert body["code"] == "missing_field" and "'image'" in body["error"]


def test_no_fields_at_all(client):
    response = client.post("/emotion", files={"detect": (None, "true")})
    assert error_of(response, 400)["code"] == "missing_field"


def test_image_sent_as_text_field(client):
    response = client.post("/emotion", data={"image": "not a file"},
                           headers={"content-type": "multipart/form-data; boundary=x"},
                           content=b'--x\r\nContent-Disposition: form-data; name="image"\r\n\r\nhello\r\n--x--\r\n')
    assert error_of(response, 400)["code"] == "not_a_file"


def test_extra_unknown_field(client, obama):
    response = client.post("/emotion", files={"image": ("x.jpg", encode(obama), "image/jpeg"),
                                              "extra": ("y.bin", random_bytes(), "application/octet-stream")})
    assert error_of(response, 400)["code"] == "unknown_field"


def test_bad_detect_value(client, obama):
    assert error_of(post_image(client, encode(obama), detect="sometimes"), 400)["code"] == "invalid_field"


@pytest.mark.parametrize("route, field, value", [
    ("/emotion", "boxes", "[[0, 0, " + "9" * 5000 + ", 1]]"),
    ("/emotion", "boxes", "[" * 30_000 + "]" * 30_000),
    ("/emotion/annotate", "min_detection_confidence", "9" * 5000),
    ("/emotion/batch", "min_detection_confidence", "[" * 30_000),
], ids=["5000-digit-box", "boxes-nested-30000-deep", "5000-digit-confidence", "batch-confidence-30000-deep"])
def test_text_fields_that_json_cannot_read_are_400(client, obama, route, field, value):
    """BentoML reads every text field with json.loads and expects only JSONDecodeError; an
    integer of over 4,300 digits (ValueError) or lists nested 30,000 deep (RecursionError)
    answered 500 (found by benchmarks/hostile_sweep.py)."""
    photo = "images" if route == "/emotion/batch" else "image"
    response = client.post(route, files={photo: ("x.jpg", encode(obama.resize((114, 142))), "image/jpeg")},
                           data={field: value})
    body = error_of(response, 400)
    assert body["code"] == "invalid_field" and field in body["error"]


# Every numeric and JSON form field on every endpoint that takes it, with what overflows,
# is not a number, is infinite or is too long (tests/fuzzing.py HOSTILE_FIELDS).
SMALL_PNG = encode(Image.new("RGB", (60, 40), "white"), "PNG")
CASES = [(route, field, value) for field, values in HOSTILE_FIELDS.items() for value in values
         for route in ("/emotion", "/emotion/annotate", "/emotion/batch") if not (field == "boxes" and "batch" in route)]


@pytest.mark.parametrize("route, field, value", CASES,
                         ids=[f"{route}-{field}-{value[:12]}-{len(value)}" for route, field, value in CASES])
def test_numeric_and_json_fields_refuse_what_they_cannot_use(client, route, field, value):
    photo = "images" if route == "/emotion/batch" else "image"
    response = client.post(route, files={photo: ("x.png", SMALL_PNG, "image/png")}, data={field: value})
    body = error_of(response, 400)
    assert body["code"] in ("invalid_field", "invalid_boxes") and field in body["error"], body
    assert len(body["error"]) < 400


def test_json_body_is_refused(client):
    response = client.post("/emotion", json={"image": "http://127.0.0.1:1/x.jpg"})
    assert error_of(response, 415)["code"] == "unsupported_media_type"


def test_malformed_multipart(client):
    response = client.post("/emotion", content=b"--nope\r\ngarbage",
                           headers={"content-type": "multipart/form-data; boundary=zzz"})
    assert response.status_code == 400
    assert response.json()["code"] in ("malformed_multipart", "missing_field")


def test_still_serving_after_bad_inputs(client, obama):
    for _, data, _, _ in BAD_FILES:
        post_image(client, data)
    response = post_image(client, encode(obama))
    assert response.status_code == 200 and len(response.json()) == 1


def test_model_calls_have_a_deadline_shorter_than_the_clients(bundled_model_store):
    """The internal client's timeout is the model service's traffic timeout (x1.01), and its
    aiohttp session is never recycled under in-flight calls (BentoML's default: every 100)."""
    from service import SETTINGS, EmotionAPI, EmotionModel

    assert EmotionModel.config["traffic"]["timeout"] == SETTINGS.model.model_timeout_s
    assert SETTINGS.model.model_timeout_s * 1.01 < EmotionAPI.config["traffic"]["timeout"]
    assert EmotionModel.config["runner_connection"]["max_requests"] >= 2**31 - 1


def test_answers_match_the_schema_in_the_openapi_document(client, pair):
    """Face.to_dict() is the one serialisation; the schema in /docs.json documents it."""
    import jsonschema

    from emotionlib.serving.fields import FACE_SCHEMA

    faces = post_image(client, encode(pair, "PNG"), "pair.png", "image/png").json()
    assert len(faces) == 2
    jsonschema.validate(faces, {"type": "array", "items": FACE_SCHEMA})
    document = client.get("/docs.json").json()
    answer = document["paths"]["/emotion"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert answer == {"type": "array", "items": FACE_SCHEMA}
