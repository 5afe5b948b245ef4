"""The README's examples run as written, with files in the repository, against a real `bentoml
serve` (its URL for http://localhost:9000): every curl command, and the Python client example."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import pytest

from tests.helpers import ROOT

README = (ROOT / "README.md").read_text()
LOCAL = "http://localhost:9000"


def curl_commands() -> list[str]:
    blocks = re.findall(r"```(?:bash|console)\n(.*?)```", README, re.S)
    lines = [line.lstrip("$ ").split("  #")[0].strip() for block in blocks for line in block.splitlines()]
    inline = re.findall(r"`(curl [^`]+)`", README)
    return [line for line in lines + inline if line.startswith("curl ") and LOCAL in line]


@pytest.fixture
def repository_folder(tmp_path):
    """A folder where the README's relative paths resolve (its tests/ and docs/), whose own files
    (what -o and -D write) are the test's."""
    for name in ("tests", "docs"):
        (tmp_path / name).symlink_to(ROOT / name)
    return tmp_path


COMMANDS = curl_commands()


def test_the_readme_has_the_curl_examples():
    assert len(COMMANDS) >= 6 and any("/emotion/batch" in c for c in COMMANDS) and any("annotate" in c for c in COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_curl_example(served, repository_folder, command):
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    run = subprocess.run(command.replace(LOCAL, served.url), shell=True, cwd=repository_folder, capture_output=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    if " -o " in command:
        written = repository_folder / command.split(" -o ")[1].split()[0]
        assert written.read_bytes()[:2] in (b"\xff\xd8", b"\x89P", b"\x1a\x45")  # JPEG, PNG, WebM
    else:
        answer = json.loads(run.stdout)
        assert answer and not (isinstance(answer, dict) and "error" in answer), answer


def test_python_client_example(served, repository_folder):
    match = re.search(r"<!-- client example[^\n]*-->\n```python\n(.*?)```", README, re.S)
    assert match, "the README's client example is marked with <!-- client example ... -->"
    run = subprocess.run([sys.executable, "-c", match.group(1).replace(LOCAL, served.url)], cwd=repository_folder,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "'emotion': 'happy'" in run.stdout and "'faces'" in run.stdout
    emotion = "'(?:happy|sad|angry|fear|surprise|neutral)'"
    assert re.search(rf"\[{emotion}, {emotion}, {emotion}\]\s*$", run.stdout), run.stdout[-300:]  # docs/clip.mp4's 3
