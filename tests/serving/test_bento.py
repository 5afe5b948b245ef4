"""What `bentoml build` puts in the Bento, decided from bentofile.yaml as BentoML decides it
(its own path spec), without building: serving code and assets only."""
from __future__ import annotations

import subprocess

import yaml

from tests.helpers import ROOT


def bento_files() -> set[str]:
    from bentoml._internal.bento.build_config import BentoPathSpec

    config = yaml.safe_load((ROOT / "bentofile.yaml").read_text())
    spec = BentoPathSpec(config["include"], config["exclude"], str(ROOT))
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return {path for path in tracked.splitlines() if spec.includes(path)}


def test_the_bento_holds_serving_code_and_assets_only():
    files = bento_files()
    assert {"service.py", "emotionlib/pipeline.py", "emotionlib/serving/upload.py", "emotionlib/serving/ui/ui.js",
            "emotionlib/detectors/models/face_detection_yunet_2023mar.onnx"} <= files
    assert "emotionlib/convert.py" not in files  # the Keras-to-ONNX converter: model import only
    assert not any(f.startswith(("training/", "tests/", "models/", "benchmarks/", "docs/")) for f in files), files
