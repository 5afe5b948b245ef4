"""Video over real HTTP against `bentoml serve`: the task endpoint answers at once and runs the
clip after its answer, the clip lives in a private file only while it runs, and a worker
killed mid-task leaves no file once it is restarted."""
from __future__ import annotations

import os
import signal
import stat
import time
from pathlib import Path

import httpx
import pytest

from emotionlib.video import tempfiles
from tests.clips import three_people, write_clip
from tests.helpers import Served


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> bytes:
    """20 s of the three-person scenario at 480x270, analysed at 10 frames/s: 200 frames."""
    path = tmp_path_factory.mktemp("e2e-video") / "clip.mp4"
    write_clip(three_people(20.0, 480, 270), path, fps=10)
    return path.read_bytes()


def server_files(process) -> list:
    """The spooled files of the server's processes (others may use the same folder)."""
    import psutil

    pids = {p.pid for p in psutil.Process(process.pid).children(recursive=True)} | {process.pid}
    return [p for p in tempfiles.folder().iterdir()
            if (owner := tempfiles._process_of(p.name)) is not None and owner[0] in pids]


def submit(url: str, clip: bytes, **form) -> str:
    response = httpx.post(f"{url}/emotion/video/task/submit", files={"video": ("clip.mp4", clip, "video/mp4")},
                          data=form, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()["task_id"]


def wait_for(url: str, task_id: str, seconds: float = 300) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        status = httpx.get(f"{url}/emotion/video/task/status", params={"task_id": task_id}, timeout=30).json()
        if status["status"] != "in_progress":
            return status["status"]
        time.sleep(0.5)
    raise AssertionError(f"task {task_id} still in progress after {seconds} s")


def test_a_task_answers_at_once_runs_after_and_leaves_no_file(served, clip):
    started = time.monotonic()
    task_id = submit(served.url, clip, fps="10")
    answered = time.monotonic() - started
    files = server_files(served.process)
    status = httpx.get(f"{served.url}/emotion/video/task/status", params={"task_id": task_id}, timeout=30).json()
    assert status["status"] == "in_progress", (status, answered)
    assert len(files) == 1 and files[0].stat().st_size == len(clip)
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
    assert wait_for(served.url, task_id) == "completed"
    answer = httpx.get(f"{served.url}/emotion/video/task/get", params={"task_id": task_id}, timeout=60).json()
    assert answer["clip"]["frames_analysed"] == 200 and len(answer["tracks"]) >= 3
    assert server_files(served.process) == []


def test_the_synchronous_endpoint_over_real_http(served, clip):
    response = httpx.post(f"{served.url}/emotion/video", files={"video": ("clip.mp4", clip, "video/mp4")},
                          data={"fps": "1"}, timeout=60)
    assert response.status_code == 200, response.text
    assert response.json()["clip"]["frames_analysed"] == 20
    annotated = httpx.post(f"{served.url}/emotion/video/annotate", files={"video": ("clip.mp4", clip, "video/mp4")},
                           data={"fps": "1"}, timeout=60)
    assert annotated.status_code == 200 and annotated.headers["content-type"] == "video/webm"
    assert server_files(served.process) == []


def test_a_worker_killed_mid_task_leaves_no_file_after_its_restart(bundled_model_store, tmp_path, clip):
    # A home of its own (the same model store): `bentoml serve` starts by deleting the task
    # store BENTOML_HOME/task_result.db, which would break the session server's.
    home = tmp_path / "home"
    home.mkdir()
    (home / "models").symlink_to(Path(bundled_model_store) / "models")
    server = Served(home, tmp_path / "serve.log")
    try:
        server.wait_ready()
        submit(server.url, clip, fps="10")
        files = server_files(server.process)
        assert len(files) == 1
        owner = tempfiles._process_of(files[0].name)[0]
        os.kill(owner, signal.SIGKILL)  # the API worker, mid-task
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and (files[0].exists() or not _ready(server.url)):
            time.sleep(1)
        assert not files[0].exists(), "the killed worker's clip is still on disk"
        assert _ready(server.url)
    finally:
        server.stop()


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def test_the_readmes_python_calls(served, clip, tmp_path):
    """BentoML's client for the synchronous endpoint; plain HTTP for the task (the 1.4.40
    client's task submit raises AttributeError '_opened_files' after the request went out)."""
    import bentoml

    path = tmp_path / "clip.mp4"
    path.write_bytes(clip)
    with bentoml.SyncHTTPClient(served.url) as client:
        answer = client.video(video=path, fps=1)
    url = served.url
    with open(path, "rb") as file:
        task = httpx.post(f"{url}/emotion/video/task/submit", files={"video": file}, data={"fps": 1}).json()
    ask = {"task_id": task["task_id"]}
    while httpx.get(f"{url}/emotion/video/task/status", params=ask).json()["status"] == "in_progress":
        time.sleep(1)
    assert httpx.get(f"{url}/emotion/video/task/get", params=ask).json() == answer
    assert answer["clip"]["frames_analysed"] == 20 and len(answer["tracks"]) >= 3
