"""import_model.py on real VGG19-based classifiers (.h5 and .keras), in their own stores."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from tests.helpers import FIXTURES, ROOT

SERVE_CHECK = textwrap.dedent("""
    import json, sys
    from starlette.testclient import TestClient
    from service import EmotionAPI
    with TestClient(app=EmotionAPI.to_asgi()) as client:
        with open(sys.argv[1], "rb") as handle:
            response = client.post("/emotion", files={"image": ("face.jpg", handle.read(), "image/jpeg")})
    print("RESULT", response.status_code, json.dumps(response.json()))
""")


@pytest.fixture(scope="module")
def vgg19_files(tmp_path_factory):
    """A keras.applications.VGG19(weights=None) classifier with a 7-way head, saved both ways."""
    import keras

    base = keras.applications.VGG19(include_top=False, weights=None, input_shape=(48, 48, 3))
    inputs = keras.Input((48, 48, 3))
    x = keras.layers.Flatten()(base(inputs))
    outputs = keras.layers.Dense(7, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    folder = tmp_path_factory.mktemp("vgg19")
    model.save(folder / "vgg19.keras")
    model.save(folder / "vgg19.h5")  # the legacy HDF5 format tf.keras 2.x wrote
    narrow = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))
    narrow.save(folder / "three_outputs.keras")
    return folder


def run(args, home, timeout=300):
    env = {**os.environ, "BENTOML_HOME": str(home), "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def models_in(home):
    folder = home / "models" / "emotion_classifier"
    return sorted(p.name for p in folder.iterdir() if p.name != "latest") if folder.exists() else []


@pytest.mark.parametrize("suffix", ["h5", "keras"])
def test_vgg19_imports_and_serves(vgg19_files, tmp_path, suffix):
    path = vgg19_files / f"vgg19.{suffix}"
    result = run(["import_model.py", "--model", str(path), "--scaling", "unit"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "registered: emotion_classifier:" in result.stdout
    assert len(models_in(tmp_path)) == 1
    again = run(["import_model.py", "--model", str(path), "--scaling", "unit"], tmp_path)
    assert again.returncode == 0 and "already registered" in again.stdout
    assert len(models_in(tmp_path)) == 1  # no second copy
    served = run(["-c", SERVE_CHECK, str(FIXTURES / "obama.jpg")], tmp_path)
    line = [ln for ln in served.stdout.splitlines() if ln.startswith("RESULT")]
    assert line, served.stderr[-3000:]
    _, status, body = line[0].split(" ", 2)
    faces = json.loads(body)
    assert status == "200" and len(faces) == 1
    assert sum(faces[0]["scores"].values()) == pytest.approx(1.0, abs=1e-3)


def test_wrong_output_width_is_refused(vgg19_files, tmp_path):
    result = run(["import_model.py", "--model", str(vgg19_files / "three_outputs.keras")], tmp_path)
    assert result.returncode == 2
    assert "outputs" in result.stderr and "3" in result.stderr and "nothing registered" in result.stderr
    assert models_in(tmp_path) == []


def test_unknown_labels_are_refused(vgg19_files, tmp_path):
    result = run(["import_model.py", "--model", str(vgg19_files / "three_outputs.keras"),
                  "--labels", "happy,sad,bored"], tmp_path)
    assert result.returncode == 2 and "bored" in result.stderr
    assert models_in(tmp_path) == []


def test_matching_labels_are_accepted(vgg19_files, tmp_path):
    result = run(["import_model.py", "--model", str(vgg19_files / "three_outputs.keras"),
                  "--labels", "happy,sad,neutral"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "labels happy,sad,neutral" in result.stdout


def test_missing_and_non_model_files_are_refused(tmp_path):
    (tmp_path / "notes.keras").write_text("not a model")
    for path in (tmp_path / "absent.keras", tmp_path / "notes.keras"):
        result = run(["import_model.py", "--model", str(path)], tmp_path / "home")
        assert result.returncode == 2 and "nothing registered" in result.stderr


def test_bundled_model_is_registered_with_its_card_numbers(bundled_model_store):
    import bentoml

    model = bentoml.models.get("emotion_classifier:latest")
    meta = model.info.metadata
    card = json.loads((ROOT / "models" / "emotion_classifier.json").read_text())
    assert meta["labels"] == card["labels"] and meta["scaling"] == card["scaling"]
    assert meta["accuracy"] == card["accuracy"] and card["accuracy"]["fer2013_7"] >= 0.66
    assert os.path.exists(model.path_of("MODEL_CARD.md"))
