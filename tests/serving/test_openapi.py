"""GET /docs.json describes every answer of every endpoint in our shape (issue 16, item 9):
real answers of each endpoint, of every status the in-process app can be made to give, are
checked against it (tests/e2e/test_hostile.py adds 401, 408 and 503 from a real server)."""
from __future__ import annotations

import jsonschema
import pytest
from PIL import Image

from emotionlib.errors import EmotionError
from emotionlib.serving.errors import STATUS, error_body
from emotionlib.serving.openapi import ROUTES, codes_by_status
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
    for route in ROUTES:
        responses = document["paths"][route]["post"]["responses"]
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


@pytest.mark.parametrize("route", ROUTES)
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
