"""What the tests share besides fixtures: paths, image encoding, requests to the API and the
checks of its answers, and a `bentoml serve` subprocess for the end-to-end tests."""
from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from tests.fuzzing import encode, png_chunk, zeros_deflated
from tests.server import start_server, stop_server, wait_ready

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"

__all__ = ["ROOT", "FIXTURES", "encode", "side_by_side", "post_image", "check_face", "error_of", "bomb_png",
           "Served", "documented"]


def side_by_side(left: Image.Image, right: Image.Image, height: int = 600) -> Image.Image:
    """Both portraits scaled to one height, left then right, on a white canvas."""
    a = left.resize((round(left.width * height / left.height), height))
    b = right.resize((round(right.width * height / right.height), height))
    canvas = Image.new("RGB", (a.width + b.width + 40, height), "white")
    canvas.paste(a, (0, 0))
    canvas.paste(b, (a.width + 40, 0))
    return canvas


def post_image(client, data: bytes, filename: str = "photo.jpg", content_type: str = "image/jpeg", **form):
    return client.post("/emotion", files={"image": (filename, data, content_type)}, data=form or None)


def check_face(face, width, height):
    """One face of an /emotion answer, as the README documents it, inside a width x height image."""
    from emotionlib.labels import EMOTIONS

    assert set(face) == {"bounding_box", "emotion", "confidence", "scores", "detection_confidence"}
    assert face["detection_confidence"] is None or 0.0 <= face["detection_confidence"] <= 1.0
    x, y, w, h = face["bounding_box"]
    assert all(isinstance(v, int) for v in (x, y, w, h))
    assert 0 <= x and 0 <= y and w > 0 and h > 0 and x + w <= width and y + h <= height
    assert face["emotion"] in EMOTIONS
    assert 0.0 <= face["confidence"] <= 1.0
    assert list(face["scores"]) == list(EMOTIONS)
    assert sum(face["scores"].values()) == pytest.approx(1.0, abs=1e-3)
    assert face["confidence"] == max(face["scores"].values())
    assert face["scores"][face["emotion"]] == face["confidence"]


def error_of(response, status):
    """The JSON error body of an answer that must have ``status``, checked for the shape."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "code", "status"} and body["status"] == status
    assert isinstance(body["error"], str) and len(body["error"]) > 10
    return body


def documented(document: dict, route: str, response, method: str = "post") -> dict:
    """Check an answer of ``method`` ``route`` against the OpenAPI document (GET /docs.json): its
    status is documented, its media type too, its body validates against that schema (JSON
    bodies) and every documented header of ours it carries; returns the documented response."""
    import json

    import jsonschema

    responses = document["paths"][route][method]["responses"]
    assert str(response.status_code) in responses, (route, response.status_code, response.text[:200])
    expected = responses[str(response.status_code)]
    media_type = response.headers["content-type"].split(";")[0].strip()
    assert media_type in expected["content"], (route, response.status_code, media_type)
    schema = expected["content"][media_type]["schema"]
    if media_type == "application/json":
        jsonschema.validate(response.json(), {**schema, "components": document["components"]})
    for name, header in expected.get("headers", {}).items():
        if name in response.headers and header["schema"]["type"] == "integer":
            assert response.headers[name].isdigit(), (name, response.headers[name])
        elif name in response.headers and name.lower() == "x-emotion-faces":
            jsonschema.validate(json.loads(response.headers[name]), {**responses["200"]["content"][
                "application/json"]["schema"]["properties"]["faces"], "components": document["components"]})
    return expected


def bomb_png(width: int, height: int) -> bytes:
    """A valid, highly compressed all-black grayscale PNG: small file, huge bitmap."""
    import struct

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zeros_deflated((width + 1) * height))
            + png_chunk(b"IEND", b""))


class Served:
    """`bentoml serve .` in a subprocess on a free port, with extra environment variables."""

    def __init__(self, home, log_path, env: dict | None = None):
        from tests.server import free_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(log_path)
        # A task store of its own (BentoML's BENTOML_RESULT_STORE; default BENTOML_HOME/task_result.db):
        # `bentoml serve` deletes and re-creates it as it starts, which breaks another server's
        # open store on the same home (sqlite: disk I/O error), as docs/video.md says.
        store = str(self.log_path.with_name(f"task_result-{self.port}.db"))
        self.process = start_server(self.port, self.log_path, {"BENTOML_HOME": str(home),
                                                               "BENTOML_RESULT_STORE": store, **(env or {})})

    def wait_ready(self, seconds: float = 180) -> None:
        if not wait_ready(self.url, seconds, alive=lambda: self.process.poll() is None):
            self.stop()
            pytest.fail(f"bentoml serve did not get ready:\n{self.log_path.read_text()[-4000:]}")

    def stop(self) -> None:
        stop_server(self.process)
