"""No usage event leaves on a plain `bentoml serve .` without BENTOML_DO_NOT_TRACK (issue 16;
emotionlib/serving/patches.py no_usage_tracking).

BentoML's own debug switch `__BENTOML_DEBUG_USAGE=True` logs each event's payload
("Tracking Payload: ...") instead of sending it, so these runs send nothing either way.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.helpers import ROOT
from tests.server import free_port, wait_ready

PAYLOAD = "Tracking Payload"
# BentoML's serve_update interval under __BENTOML_DEBUG_USAGE (usage_stats.track_serve), plus 1 s.
UPDATE_INTERVAL_S = 6


def serve_and_stop(home: str, log_path: Path, **env: str) -> str:
    """`bentoml serve .` with usage debugging, without BENTOML_DO_NOT_TRACK unless given: until
    ready, one serve_update interval more, then stopped; its output."""
    full_env = {key: value for key, value in os.environ.items() if key != "BENTOML_DO_NOT_TRACK"}
    full_env.update({"BENTOML_HOME": home, "TF_CPP_MIN_LOG_LEVEL": "3", "__BENTOML_DEBUG_USAGE": "True", **env})
    port = free_port()
    with open(log_path, "wb") as log:
        process = subprocess.Popen([str(Path(sys.executable).with_name("bentoml")), "serve", ".", "--port", str(port)],
                                   cwd=ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        ready = wait_ready(f"http://127.0.0.1:{port}", 180, alive=lambda: process.poll() is None)
        assert ready, log_path.read_text()[-3000:]
        time.sleep(UPDATE_INTERVAL_S)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)  # the command's own event is sent as it ends
            process.wait(60)
    return log_path.read_text()


def test_plain_bentoml_serve_sends_no_usage_event(bundled_model_store, tmp_path):
    output = serve_and_stop(bundled_model_store, tmp_path / "serve.log")
    assert "Starting production HTTP BentoServer" in output
    assert PAYLOAD not in output, output


def test_tracking_turned_on_is_logged_at_start(bundled_model_store, tmp_path):
    """With BENTOML_DO_NOT_TRACK=false the user chose tracking: a warning says so, and the
    payloads it logs show the test above would see an event if one were sent."""
    output = serve_and_stop(bundled_model_store, tmp_path / "serve.log", BENTOML_DO_NOT_TRACK="false")
    assert "BENTOML_DO_NOT_TRACK=false: BentoML sends usage events" in output
    assert "'serve_init'" in output and "'cmd_name': 'serve'" in output, output


def store_model(home: Path, code: str) -> str:
    """Python code run with usage debugging and BENTOML_DO_NOT_TRACK unset; its log."""
    env = {key: value for key, value in os.environ.items() if key != "BENTOML_DO_NOT_TRACK"}
    env.update({"BENTOML_HOME": str(home), "TF_CPP_MIN_LOG_LEVEL": "3", "__BENTOML_DEBUG_USAGE": "True"})
    run = subprocess.run([sys.executable, "-c", "import logging; logging.basicConfig(level='INFO'); " + code],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    return run.stderr


def test_model_import_sends_no_usage_event(tmp_path):
    assert PAYLOAD not in store_model(tmp_path, "import import_model; raise SystemExit(import_model.main([]))")


def test_storing_a_model_would_log_its_event(tmp_path):
    """The control for the test above: BentoML's model_save event, logged in that setup."""
    log = store_model(tmp_path, "import bentoml\nwith bentoml.models.create('control'): pass")
    assert PAYLOAD in log and "model_save" in log, log
