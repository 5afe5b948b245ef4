"""training.experiments.swa: weight averaging of a gpu_train model on the CPU, resumable (generated data)."""
from __future__ import annotations

import csv
import json

import numpy as np

from tests.training.test_training import dataset  # noqa: F401  (the tiny FER2013-style folders)


def tiny_source(tmp_path):
    """A width-4 model saved the way training.experiments.gpu_train saves one (float16 npz + summary.json)."""
    from training.experiments.gpu_train import build

    spec = {"name": "teacher0", "width": 4, "head": 8, "batch": 8, "lr": 0.1, "weight_decay": 5e-4, "seed": 1}
    model = build(spec)
    folder = tmp_path / "gpu"
    folder.mkdir()
    np.savez(folder / "teacher0.weights.npz", *[w.astype(np.float16) for w in model.get_weights()])
    (folder / "summary.json").write_text(json.dumps({"teachers": [{"name": "teacher0", "spec": spec}]}))
    return folder / "teacher0.weights.npz"


def swa(dataset, source, run_dir, *extra):  # noqa: F811
    from training.experiments.swa import main

    main(["--source", str(source), "--data", str(dataset), "--run-dir", str(run_dir), "--cache-dir", "",
          "--batch", "8", "--bn-batches", "2", *extra])


def test_run_resumes_and_exports(dataset, tmp_path, monkeypatch):  # noqa: F811
    from training.experiments.gpu_train import load_weights

    monkeypatch.chdir(tmp_path)  # an empty --cache-dir must not leave caches in the working folder

    source = tiny_source(tmp_path)
    run_dir = tmp_path / "swa"
    swa(dataset, source, run_dir, "--epochs", "1")
    swa(dataset, source, run_dir, "--epochs", "2", "--resume")
    with open(run_dir / "history.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    state = json.loads((run_dir / "checkpoint" / "state.json").read_text())
    assert state["averaged"] == 2
    model, _ = load_weights(run_dir / "swa.weights.npz")
    probs = np.asarray(model(np.zeros((2, 40, 40, 1), np.float32)))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert not list(tmp_path.glob("fer_*.npz"))
