"""A bad EMOTION_* setting stops `bentoml serve` with one line that names the variable and
what it accepts, and a non-zero exit status (issue 16; it was a 58-line traceback)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT
from tests.server import free_port


@pytest.mark.parametrize("variable, value, expected", [
    ("EMOTION_MAX_FACES_PER_IMAGE", "abc",
     "EMOTION_MAX_FACES_PER_IMAGE='abc' is not accepted: expected an integer from 1 to 1,000"),
    # under its old name too: the value is refused before the rename's warning
    ("EMOTION_MAX_FACES", "abc", "EMOTION_MAX_FACES='abc' is not accepted: expected an integer from 1 to 1,000"),
    ("EMOTION_DETECTOR", "dlib", "EMOTION_DETECTOR='dlib' is not accepted: expected one of haar, yunet"),
    ("EMOTION_MAX_FACE", "3", "unknown setting(s) ['EMOTION_MAX_FACE']"),
])
def test_bad_setting_stops_serve_with_one_line(bundled_model_store, variable, value, expected):
    env = {**os.environ, "BENTOML_HOME": bundled_model_store, "TF_CPP_MIN_LOG_LEVEL": "3", variable: value}
    run = subprocess.run([str(Path(sys.executable).with_name("bentoml")), "serve", ".", "--port", str(free_port())],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    lines = [line for line in (run.stdout + run.stderr).splitlines() if line.strip()]
    assert run.returncode != 0
    assert len(lines) == 1 and expected in lines[0], lines
