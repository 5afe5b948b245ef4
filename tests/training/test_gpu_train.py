"""The GPU training command's parts, on generated data: the dataset pack and a tiny run.

The tiny run needs PyTorch (the GPU machine's framework, not a requirement of this
project): it runs where torch is importable, e.g. `pip install torch==2.13.0` on CPU.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.training.test_training import make_images, write_folder
from training.data import load_split
from training.experiments.gpu_pack import pack, pixel_digest, unpack

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    root = tmp_path_factory.mktemp("fer_jpeg")
    for split, seed, per_class in (("train", 0, 6), ("val", 1, 3)):
        images, labels = make_images(seed, per_class)
        write_folder(root / split, images, labels)
        # the pack stores JPEG bytes as they are: re-save the PNGs as JPEGs
        for png in (root / split).rglob("*.png"):
            from PIL import Image

            Image.open(png).save(png.with_suffix(".jpg"), quality=90)
            png.unlink()
    return root, pack(root, root / "pack.npz")


def test_pack_round_trip_gives_the_loaders_pixels(packed):
    root, path = packed
    for split in ("train", "val"):
        images, labels = unpack(path, split)
        expected, expected_labels = load_split(root, split)
        np.testing.assert_array_equal(images, expected)
        np.testing.assert_array_equal(labels, expected_labels)
        with np.load(path) as data:
            assert str(data[f"{split}_sha256"]) == pixel_digest(images)


def test_tiny_run_writes_models_and_summary(packed, tmp_path):
    pytest.importorskip("torch", reason="the GPU command trains with PyTorch (KERAS_BACKEND=torch)")
    _, path = packed
    out = tmp_path / "out"
    env = {**os.environ, "KERAS_BACKEND": "torch"}
    subprocess.run([sys.executable, "-m", "training.experiments.gpu_train", "--pack", str(path), "--out", str(out),
                    "--work", str(tmp_path / "work"), "--budget", "90", "--tiny", "--teachers", "1"],
                   cwd=ROOT, env=env, check=True, timeout=600)
    summary = json.loads((out / "summary.json").read_text())
    assert [t["name"] for t in summary["teachers"]] == ["teacher0"]
    assert {s["name"] for s in summary["students"]} == {"student_w4", "student_w6"}
    assert (out / "student_w4.keras").exists() and (out / "soft_labels.npz").exists()
