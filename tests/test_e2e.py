"""One real end-to-end run: `bentoml serve` on port 9000 in a subprocess (conftest's
`server`), real HTTP."""
from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import httpx

from conftest import FIXTURES, ROOT, URL

def test_python_client_one_face(server):
    import bentoml

    with bentoml.SyncHTTPClient(URL) as client:
        faces = client.emotion(image=FIXTURES / "obama.jpg")
    assert len(faces) == 1
    assert faces[0]["emotion"] == "happy"


def test_two_faces_left_to_right(server, pair):
    buffer = io.BytesIO()
    pair.save(buffer, "JPEG", quality=92)
    response = httpx.post(f"{URL}/emotion", files={"image": ("pair.jpg", buffer.getvalue(), "image/jpeg")},
                          timeout=60)
    faces = response.json()
    assert response.status_code == 200 and len(faces) == 2
    assert faces[0]["bounding_box"][0] + faces[0]["bounding_box"][2] <= faces[1]["bounding_box"][0]


def test_bad_inputs_get_4xx_and_the_server_keeps_serving(server):
    jpeg = (FIXTURES / "biden.jpg").read_bytes()
    cases = [
        {"files": {"picture": ("x.jpg", jpeg, "image/jpeg")}},
        {"files": {"image": ("x.jpg", jpeg[:2000], "image/jpeg")}},
        {"files": {"image": ("x.txt", b"hello", "text/plain")}},
        {"json": {"image": "x"}},
    ]
    for case in cases:
        response = httpx.post(f"{URL}/emotion", timeout=60, **case)
        assert 400 <= response.status_code < 500, response.text
        assert "error" in response.json()
    response = httpx.post(f"{URL}/emotion", files={"image": ("b.jpg", jpeg, "image/jpeg")}, timeout=60)
    assert response.status_code == 200 and len(response.json()) == 1
    assert server.poll() is None


def test_metrics(server):
    httpx.post(f"{URL}/emotion", files={"image": ("o.jpg", (FIXTURES / "obama.jpg").read_bytes(), "image/jpeg")},
               timeout=60)
    text = httpx.get(f"{URL}/metrics", timeout=10).text
    for name in ("emotion_faces_per_request", "emotion_detection_seconds", "emotion_model_batch_size",
                 "emotion_inference_seconds", "emotion_rejected_requests"):
        assert name in text, name


def test_no_model_fails_at_once(tmp_path):
    env = {**os.environ, "BENTOML_HOME": str(tmp_path), "TF_CPP_MIN_LOG_LEVEL": "3"}
    bentoml = Path(sys.executable).with_name("bentoml")
    result = subprocess.run([str(bentoml), "serve", ".", "--port", "9011"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "import_model.py" in result.stdout + result.stderr


def test_batch_over_real_http(server, pair):
    buffer = io.BytesIO()
    pair.save(buffer, "PNG")
    photos = [("images", ("pair.png", buffer.getvalue(), "image/png")),
              ("images", ("notes.txt", b"not a photo", "text/plain")),
              ("images", ("o.jpg", (FIXTURES / "obama.jpg").read_bytes(), "image/jpeg"))]
    response = httpx.post(f"{URL}/emotion/batch", files=photos, timeout=120)
    assert response.status_code == 200, response.text
    entries = response.json()
    assert [len(e["faces"]) if "faces" in e else e["code"] for e in entries] == [2, "not_an_image", 1]
