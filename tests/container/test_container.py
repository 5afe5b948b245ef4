"""Build the Bento's container image for real, run it, and call it on port 9000.

Run with `make container-test` (it is the second stage of .ci/run). Needs root to install
buildah/podman/runc/debootstrap when they are missing; elsewhere it skips with the reason,
except under CI, where it fails instead.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import pytest

from tests.helpers import FIXTURES, ROOT
from tests.server import free_port, wait_ready

IMAGE = "face-emotion:test"
CONTAINER = "face-emotion-test"
pytestmark = pytest.mark.container


def sh(args, env, timeout=1800, check=True):
    result = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        pytest.fail(f"{' '.join(map(str, args))} failed ({result.returncode}):\n"
                    f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


@pytest.fixture(scope="module")
def container_env():
    """Tools and base image ready; environment for buildah/podman."""
    tools = subprocess.run(
        ["bash", "-c", "source scripts/container-tools.sh && printf '%s\\n%s' \"$CONTAINERS_CONF\" \"$BUILDAH_ISOLATION\""],
        cwd=ROOT, capture_output=True, text=True, timeout=1800)
    if tools.returncode != 0:
        message = f"container tools unavailable: {tools.stderr.strip()[-500:]}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    conf, isolation = tools.stdout.strip().splitlines()[-2:]
    home = tempfile.mkdtemp(prefix="emotion-container-bentoml-")
    return {**os.environ, "CONTAINERS_CONF": conf, "BUILDAH_ISOLATION": isolation,
            "BENTOML_HOME": home, "TF_CPP_MIN_LOG_LEVEL": "3"}


@pytest.fixture(scope="module")
def image(container_env):
    """The README's commands: import the model, bentoml build, bentoml containerize (its
    temporary build context under build/, as `make image` makes it: BentoML#5566)."""
    bin_dir = Path(sys.executable).parent
    sh([sys.executable, "import_model.py"], container_env)
    built = sh([str(bin_dir / "bentoml"), "build"], container_env).stdout
    tag = re.search(r"face-emotion:[a-z0-9]+", built).group(0)
    (ROOT / "build").mkdir(exist_ok=True)
    sh([str(bin_dir / "bentoml"), "containerize", "--backend", "buildah", tag, "-t", IMAGE],
       {**container_env, "TMPDIR": str(ROOT / "build")})
    return tag


@pytest.fixture(scope="module")
def running(image, container_env):
    port = free_port()
    sh(["podman", "rm", "-f", CONTAINER], container_env, check=False)
    sh(["podman", "run", "-d", "--name", CONTAINER, "-p", f"{port}:9000", IMAGE], container_env)
    url = f"http://127.0.0.1:{port}"
    try:
        if not wait_ready(url, 240):
            logs = sh(["podman", "logs", CONTAINER], container_env, check=False)
            pytest.fail(f"container not ready:\n{logs.stdout[-3000:]}{logs.stderr[-3000:]}")
        yield url
    finally:
        sh(["podman", "rm", "-f", CONTAINER], container_env, check=False)


def test_bento_holds_only_what_serving_needs(image, container_env):
    listed = sh([str(Path(sys.executable).parent / "bentoml"), "get", image, "-o", "path"], container_env)
    bento = Path(listed.stdout.strip())
    files = {str(p.relative_to(bento / "src")) for p in (bento / "src").rglob("*") if p.is_file()}
    assert "service.py" in files and "emotionlib/preprocess.py" in files
    assert "emotionlib/convert.py" not in files  # the Keras-to-ONNX converter: model import only
    assert not any(f.startswith(("training/", "tests/", ".venv/", "runs/", "models/")) for f in files), files


# Anything here in the image fails the test: what only building, importing or training uses.
# (sh's `command -v` looks up one name per call.)
NOT_IN_IMAGE = {
    "a C toolchain": ["command -v gcc", "command -v cc", "command -v g++", "command -v cpp", "command -v make",
                      "command -v ld", "ls -d /usr/lib/gcc"],
    "git": ["command -v git", "ls -d /usr/lib/git-core"],
    "uv": ["command -v uv", "ls /usr/local/bin/uv /app/.venv/bin/uv"],
    "apt's package cache and lists": ["ls /var/cache/apt/archives/*.deb /var/cache/apt/*.bin",
                                      "find /var/lib/apt/lists -type f ! -name lock"],
    "a Keras file": ["find /home/bentoml/bento/models -name '*.keras' -o -name '*.h5' -o -name '*.hdf5'"],
}
LIMIT_BYTES = 700_000_000


def test_image_is_lean(image, container_env, capsys):
    """Only what serving needs, one declared port, from the official Python base: the
    generated Dockerfile starts from python:3.11-slim (pulled where a registry answers; made
    locally by scripts/container-tools.sh where none does)."""
    size = int(sh(["podman", "image", "inspect", IMAGE, "--format", "{{.Size}}"], container_env).stdout)
    with capsys.disabled():
        print(f"\nimage {IMAGE}: {size / 1e6:.0f} MB (limit {LIMIT_BYTES / 1e6:.0f} MB)")
    found = {}
    for what, commands in NOT_IN_IMAGE.items():
        script = "; ".join(f"{command} 2>/dev/null" for command in commands) + "; true"
        listed = sh(["podman", "run", "--rm", "--entrypoint", "/bin/sh", IMAGE, "-c", script],
                    container_env).stdout.strip()
        if listed:
            found[what] = listed
    assert not found, found
    ports = json.loads(sh(["podman", "image", "inspect", IMAGE, "--format", "{{json .Config.ExposedPorts}}"],
                          container_env).stdout)
    assert sorted(ports) == ["9000/tcp"], ports
    bento = Path(sh([str(Path(sys.executable).parent / "bentoml"), "get", image, "-o", "path"],
                    container_env).stdout.strip())
    bases = re.findall(r"^FROM (\S+)", (bento / "env" / "docker" / "Dockerfile").read_text(), re.MULTILINE)
    assert bases and all(base == "python:3.11-slim" for base in bases), bases
    assert size <= LIMIT_BYTES


def test_real_photo_through_the_container(running):
    data = (FIXTURES / "obama.jpg").read_bytes()
    response = httpx.post(f"{running}/emotion", files={"image": ("obama.jpg", data, "image/jpeg")}, timeout=60)
    assert response.status_code == 200, response.text
    faces = response.json()
    assert len(faces) == 1 and faces[0]["emotion"] == "happy"


def test_bad_input_is_a_4xx(running):
    response = httpx.post(f"{running}/emotion", files={"picture": ("x.jpg", b"abc", "image/jpeg")}, timeout=60)
    assert response.status_code == 400 and response.json()["code"] == "missing_field"
    response = httpx.post(f"{running}/emotion", files={"image": ("x.jpg", b"abc", "image/jpeg")}, timeout=60)
    assert response.status_code == 400


def test_page_and_annotated_image_from_the_container(running):
    page = httpx.get(f"{running}/ui/", timeout=30)
    assert page.status_code == 200 and "ui.js" in page.text
    data = (FIXTURES / "obama.jpg").read_bytes()
    response = httpx.post(f"{running}/emotion/annotate", files={"image": ("obama.jpg", data, "image/jpeg")},
                          timeout=60)
    assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
    assert len(json.loads(response.headers["X-Emotion-Faces"])) == 1


def test_a_clip_and_its_task_through_the_container(running):
    """The image's OpenCV decodes a clip and writes the annotated WebM, its temporary folder
    takes the spooled upload, and its task store runs a task (README's docs/clip.mp4)."""
    import time

    clip = (ROOT / "docs" / "clip.mp4").read_bytes()
    video = {"video": ("clip.mp4", clip, "video/mp4")}
    answer = httpx.post(f"{running}/emotion/video", files=video, data={"fps": "1"}, timeout=120)
    assert answer.status_code == 200, answer.text[:500]
    assert answer.json()["clip"]["frames_analysed"] == 30 and len(answer.json()["tracks"]) >= 1
    annotated = httpx.post(f"{running}/emotion/video/annotate", files=video, data={"fps": "0.5"}, timeout=120)
    assert annotated.status_code == 200 and annotated.content[:4] == b"\x1a\x45\xdf\xa3"  # WebM
    task = httpx.post(f"{running}/emotion/video/task/submit", files=video, data={"fps": "1"}, timeout=60).json()
    for _ in range(120):
        status = httpx.get(f"{running}/emotion/video/task/status", params={"task_id": task["task_id"]}).json()
        if status["status"] != "in_progress":
            break
        time.sleep(1)
    result = httpx.get(f"{running}/emotion/video/task/get", params={"task_id": task["task_id"]}, timeout=60)
    assert status["status"] == "completed" and result.json() == answer.json()


def test_bad_setting_stops_the_container_with_one_line(image, container_env):
    run = sh(["podman", "run", "--rm", "-e", "EMOTION_MAX_FACES_PER_IMAGE=abc", IMAGE], container_env, timeout=300,
             check=False)
    lines = [line for line in (run.stdout + run.stderr).splitlines() if line.strip()]
    assert run.returncode != 0
    assert len(lines) == 1 and "EMOTION_MAX_FACES_PER_IMAGE='abc' is not accepted" in lines[0], lines


def test_a_killed_worker_stops_the_container(image, container_env):
    """Inside a container BentoML restarts no worker (its watchers' respawn is off when
    BENTOML_CONTAINERIZED is set): the server stops and the container's restart policy
    (Kubernetes: the pod's) brings it back, as the README says."""
    name, port = f"{CONTAINER}-kill", free_port()
    sh(["podman", "rm", "-f", name], container_env, check=False)
    sh(["podman", "run", "-d", "--name", name, "-p", f"{port}:9000", IMAGE], container_env)
    try:
        assert wait_ready(f"http://127.0.0.1:{port}", 240)
        # the pattern's brackets keep this shell's own command line from matching it
        sh(["podman", "exec", name, "sh", "-c", "for p in /proc/[0-9]*; do grep -qa 'emotion_[m]odel' $p/cmdline "
            "2>/dev/null && kill -9 ${p#/proc/}; done; true"], container_env)
        try:
            sh(["podman", "wait", name], container_env, timeout=120)
        except subprocess.TimeoutExpired:
            pytest.fail("the container kept running for 120 s after its model worker was killed")
    finally:
        sh(["podman", "rm", "-f", name], container_env, check=False)
