"""Shared fixtures. BENTOML_HOME points at a temporary store before bentoml is imported,
so tests never touch a developer's own model store."""
from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
sys.path.insert(0, str(ROOT))
os.environ["BENTOML_HOME"] = tempfile.mkdtemp(prefix="emotion-tests-bentoml-")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402


def encode(image: Image.Image, fmt: str = "JPEG", **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def obama() -> Image.Image:
    return Image.open(FIXTURES / "obama.jpg").convert("RGB")


@pytest.fixture(scope="session")
def biden() -> Image.Image:
    return Image.open(FIXTURES / "biden.jpg").convert("RGB")


def side_by_side(left: Image.Image, right: Image.Image, height: int = 600) -> Image.Image:
    """Both portraits scaled to one height, left then right, on a white canvas."""
    a = left.resize((round(left.width * height / left.height), height))
    b = right.resize((round(right.width * height / right.height), height))
    canvas = Image.new("RGB", (a.width + b.width + 40, height), "white")
    canvas.paste(a, (0, 0))
    canvas.paste(b, (a.width + 40, 0))
    return canvas


@pytest.fixture(scope="session")
def pair(obama, biden) -> Image.Image:
    """Obama on the left, Biden on the right."""
    return side_by_side(obama, biden)


@pytest.fixture(scope="session")
def face_crop(obama) -> Image.Image:
    """Obama's face as the Haar cascade frames it (box found on the fixture)."""
    return obama.crop((342, 95, 642, 395))


@pytest.fixture(scope="session")
def bundled_model_store():
    """The bundled default model registered (by import_model.py's own code) in the test store."""
    import import_model

    assert import_model.main([]) == 0
    return os.environ["BENTOML_HOME"]


@pytest.fixture(scope="session")
def client(bundled_model_store):
    """An HTTP client on the real ASGI app of EmotionAPI (model worker in-process)."""
    from starlette.testclient import TestClient

    from service import EmotionAPI

    with TestClient(app=EmotionAPI.to_asgi()) as test_client:
        yield test_client


def wait_ready(url: str, seconds: float, alive=lambda: True) -> bool:
    """Poll url/readyz until it answers 200 (True), time runs out or alive() turns False."""
    import time

    import httpx

    deadline = time.time() + seconds
    while time.time() < deadline and alive():
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(1)
    return False


PORT = 9000
URL = f"http://127.0.0.1:{PORT}"


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def start(home, log_path):
    env = {**os.environ, "BENTOML_HOME": str(home), "TF_CPP_MIN_LOG_LEVEL": "3"}
    bentoml = Path(sys.executable).with_name("bentoml")
    log = open(log_path, "wb")
    return subprocess.Popen([str(bentoml), "serve", ".", "--port", str(PORT)], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def stop(process):
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


@pytest.fixture(scope="session")
def server(bundled_model_store, tmp_path_factory):
    """`bentoml serve .` on PORT in a subprocess, shared by the end-to-end and browser tests."""
    if not port_is_free(PORT):
        pytest.fail(f"port {PORT} is busy: stop whatever listens there to run the end-to-end test")
    log_path = tmp_path_factory.mktemp("serve") / "serve.log"
    process = start(bundled_model_store, log_path)
    if not wait_ready(URL, 180, alive=lambda: process.poll() is None):
        stop(process)
        pytest.fail(f"bentoml serve did not get ready:\n{log_path.read_text()[-4000:]}")
    yield process
    stop(process)


def post_image(client, data: bytes, filename: str = "photo.jpg", content_type: str = "image/jpeg", **form):
    return client.post("/emotion", files={"image": (filename, data, content_type)}, data=form or None)


def gray_face_array(size: int = 48, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (size, size), dtype=np.uint8)
