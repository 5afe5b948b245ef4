"""Shared fixtures. BENTOML_HOME points at a temporary store before bentoml is imported,
so tests never touch a developer's own model store.

tests/ is a package: pytest puts the repository root on sys.path (the folder above the
outermost package), so service.py, import_model.py and training/ import as they do there.
"""
from __future__ import annotations

import os
import tempfile

os.environ["BENTOML_HOME"] = tempfile.mkdtemp(prefix="emotion-tests-bentoml-")
# Keras models converted for in-process use (emotionlib.classifier) go to a temporary cache too.
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="emotion-tests-cache-")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")

import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from tests.helpers import FIXTURES, Served, side_by_side  # noqa: E402


@pytest.fixture(scope="session")
def obama() -> Image.Image:
    return Image.open(FIXTURES / "obama.jpg").convert("RGB")


@pytest.fixture(scope="session")
def biden() -> Image.Image:
    return Image.open(FIXTURES / "biden.jpg").convert("RGB")


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
    from _bentoml_impl.tasks.result import Sqlite3Store
    from bentoml._internal.configuration.containers import BentoMLContainer
    from starlette.testclient import TestClient

    from service import EmotionAPI

    # the task result store, made as `bentoml serve` makes it before it starts the workers
    Sqlite3Store.init_db(BentoMLContainer.result_store_file.get())
    with TestClient(app=EmotionAPI.to_asgi()) as test_client:
        yield test_client


@pytest.fixture(scope="session")
def served(bundled_model_store, tmp_path_factory):
    """One `bentoml serve .` for the session, shared by the end-to-end and browser tests."""
    server = Served(bundled_model_store, tmp_path_factory.mktemp("serve") / "serve.log")
    server.wait_ready()
    yield server
    server.stop()
