"""One real end-to-end run: `bentoml serve` on a free port in a subprocess (conftest's
`served`, shared with the browser test), real HTTP."""
from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.helpers import FIXTURES, ROOT
from tests.server import free_port


@pytest.fixture(scope="module")
def server(served):
    return served.process


@pytest.fixture(scope="module")
def url(served):
    return served.url


def test_python_client_one_face(server, url):
    import bentoml

    with bentoml.SyncHTTPClient(url) as client:
        faces = client.emotion(image=FIXTURES / "obama.jpg")
    assert len(faces) == 1
    assert faces[0]["emotion"] == "happy"


def test_two_faces_left_to_right(server, url, pair):
    buffer = io.BytesIO()
    pair.save(buffer, "JPEG", quality=92)
    response = httpx.post(f"{url}/emotion", files={"image": ("pair.jpg", buffer.getvalue(), "image/jpeg")},
                          timeout=60)
    faces = response.json()
    assert response.status_code == 200 and len(faces) == 2
    assert faces[0]["bounding_box"][0] + faces[0]["bounding_box"][2] <= faces[1]["bounding_box"][0]


def test_bad_inputs_get_4xx_and_the_server_keeps_serving(server, url):
    jpeg = (FIXTURES / "biden.jpg").read_bytes()
    cases = [
        {"files": {"picture": ("x.jpg", jpeg, "image/jpeg")}},
        {"files": {"image": ("x.jpg", jpeg[:2000], "image/jpeg")}},
        {"files": {"image": ("x.txt", b"hello", "text/plain")}},
        {"json": {"image": "x"}},
    ]
    for case in cases:
        response = httpx.post(f"{url}/emotion", timeout=60, **case)
        assert 400 <= response.status_code < 500, response.text
        assert "error" in response.json()
    response = httpx.post(f"{url}/emotion", files={"image": ("b.jpg", jpeg, "image/jpeg")}, timeout=60)
    assert response.status_code == 200 and len(response.json()) == 1
    assert server.poll() is None


def test_metrics(server, url):
    httpx.post(f"{url}/emotion", files={"image": ("o.jpg", (FIXTURES / "obama.jpg").read_bytes(), "image/jpeg")},
               timeout=60)
    text = httpx.get(f"{url}/metrics", timeout=10).text
    for name in ("emotion_faces_per_request", "emotion_detection_seconds", "emotion_model_batch_size",
                 "emotion_inference_seconds", "emotion_rejected_requests_total"):
        assert name in text, name


def start_and_fail(home, extra_env: dict) -> str:
    """Run `bentoml serve` expecting it to stop by itself; its output."""
    env = {**os.environ, "BENTOML_HOME": str(home), "TF_CPP_MIN_LOG_LEVEL": "3", **extra_env}
    bentoml = Path(sys.executable).with_name("bentoml")
    result = subprocess.run([str(bentoml), "serve", ".", "--port", str(free_port())], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    return result.stdout + result.stderr


@pytest.mark.parametrize("name, value", [("EMOTION_MODEL_MAX_BATCH_FACES", "0"), ("EMOTION_UPLOAD_TIMEOUT_S", "soon")])
def test_bad_setting_stops_the_start_naming_it(bundled_model_store, name, value):
    output = start_and_fail(bundled_model_store, {name: value})
    assert f"{name}={value!r} is not accepted: expected" in output


def test_no_model_fails_at_once(tmp_path):
    assert "import_model.py" in start_and_fail(tmp_path, {})


def test_batch_over_real_http(url, pair):
    buffer = io.BytesIO()
    pair.save(buffer, "PNG")
    photos = [("images", ("pair.png", buffer.getvalue(), "image/png")),
              ("images", ("notes.txt", b"not a photo", "text/plain")),
              ("images", ("o.jpg", (FIXTURES / "obama.jpg").read_bytes(), "image/jpeg"))]
    response = httpx.post(f"{url}/emotion/batch", files=photos, timeout=120)
    assert response.status_code == 200, response.text
    entries = response.json()
    assert [len(e["faces"]) if "faces" in e else e["code"] for e in entries] == [2, "not_an_image", 1]
