"""Shared fixtures. BENTOML_HOME points at a temporary store before bentoml is imported,
so tests never touch a developer's own model store."""
from __future__ import annotations

import io
import os
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


def post_image(client, data: bytes, filename: str = "photo.jpg", content_type: str = "image/jpeg", **form):
    return client.post("/emotion", files={"image": (filename, data, content_type)}, data=form or None)


def gray_face_array(size: int = 48, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (size, size), dtype=np.uint8)


def free_port() -> int:
    """A TCP port nobody listens on now (tests never take 9000: `make serve` may be running)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Served:
    """`bentoml serve .` in a subprocess on a free port, with extra environment variables."""

    def __init__(self, home, log_path, env: dict | None = None):
        import subprocess

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(log_path)
        full_env = {**os.environ, "BENTOML_HOME": str(home), "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
        bentoml = Path(sys.executable).with_name("bentoml")
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen([str(bentoml), "serve", ".", "--port", str(self.port)], cwd=ROOT,
                                            env=full_env, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)

    def wait_ready(self, seconds: float = 180) -> None:
        if not wait_ready(self.url, seconds, alive=lambda: self.process.poll() is None):
            self.stop()
            pytest.fail(f"bentoml serve did not get ready:\n{self.log_path.read_text()[-4000:]}")

    def stop(self) -> None:
        import signal
        import subprocess

        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
