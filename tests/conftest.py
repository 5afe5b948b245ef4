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

# Starting, waiting for and stopping `bentoml serve` is shared with the benchmarks.
from benchmarks.serving import free_port, start_server, stop_server, wait_ready  # noqa: E402,F401


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


def post_image(client, data: bytes, filename: str = "photo.jpg", content_type: str = "image/jpeg", **form):
    return client.post("/emotion", files={"image": (filename, data, content_type)}, data=form or None)


def gray_face_array(size: int = 48, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (size, size), dtype=np.uint8)


class Served:
    """`bentoml serve .` in a subprocess on a free port, with extra environment variables."""

    def __init__(self, home, log_path, env: dict | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(log_path)
        self.process = start_server(self.port, self.log_path, {"BENTOML_HOME": str(home), **(env or {})})

    def wait_ready(self, seconds: float = 180) -> None:
        if not wait_ready(self.url, seconds, alive=lambda: self.process.poll() is None):
            self.stop()
            pytest.fail(f"bentoml serve did not get ready:\n{self.log_path.read_text()[-4000:]}")

    def stop(self) -> None:
        stop_server(self.process)


@pytest.fixture(scope="session")
def served(bundled_model_store, tmp_path_factory):
    """One `bentoml serve .` for the session, shared by the end-to-end and browser tests."""
    server = Served(bundled_model_store, tmp_path_factory.mktemp("serve") / "serve.log")
    server.wait_ready()
    yield server
    server.stop()
