"""Tiny end-to-end training runs on generated data (never the real dataset)."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image

from emotionlib.labels import FER2013_LABELS

PER_CLASS = 4


def make_images(seed: int, per_class: int = PER_CLASS):
    """48x48 gray images whose brightness pattern depends on the class."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for label in range(len(FER2013_LABELS)):
        for _ in range(per_class):
            image = rng.integers(0, 60, (48, 48)).astype(np.uint8)
            image[:, label * 6:label * 6 + 6] += 180
            images.append(image)
            labels.append(label)
    return images, labels


def write_folder(root, images, labels):
    for i, (image, label) in enumerate(zip(images, labels)):
        folder = root / FER2013_LABELS[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{i:04d}.png")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """The same tiny data as image folders (train/, val/) and as a Kaggle-style CSV."""
    root = tmp_path_factory.mktemp("fer")
    train, val = make_images(0), make_images(1, per_class=2)
    write_folder(root / "train", *train)
    write_folder(root / "val", *val)
    with open(root / "fer2013.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["emotion", "pixels", "Usage"])
        for usage, (images, labels) in (("Training", train), ("PublicTest", val), ("PrivateTest", val)):
            for image, label in zip(images, labels):
                writer.writerow([label, " ".join(map(str, image.ravel())), usage])
    return root


def test_folder_and_csv_readers_agree(dataset):
    from training.data import load_split

    for split in ("train", "val"):
        x_dir, y_dir = load_split(dataset, split)
        x_csv, y_csv = load_split(dataset / "fer2013.csv", split)
        order_dir, order_csv = np.lexsort((x_dir.reshape(len(x_dir), -1).sum(1), y_dir)), \
            np.lexsort((x_csv.reshape(len(x_csv), -1).sum(1), y_csv))
        assert np.array_equal(y_dir[order_dir], y_csv[order_csv])
        assert np.array_equal(x_dir[order_dir], x_csv[order_csv])
    x_test, _ = load_split(dataset / "fer2013.csv", "test")
    assert x_test.shape == (2 * len(FER2013_LABELS), 48, 48)


def test_reader_errors(tmp_path):
    from training.data import load_folder, load_split

    (tmp_path / "joy").mkdir()
    with pytest.raises(ValueError, match="one folder per FER2013 class"):
        load_folder(tmp_path)
    with pytest.raises(FileNotFoundError):
        load_split(tmp_path / "missing.csv")


def test_augmentation_is_seeded_and_flips():
    from training.augment import random_affine

    images = np.tile(np.arange(48, dtype=np.uint8)[None, None, :], (8, 48, 1))
    a = random_affine(images, np.random.default_rng(5))
    b = random_affine(images, np.random.default_rng(5))
    assert np.array_equal(a, b) and not np.array_equal(a, images)
    flipped = random_affine(images[:1], _AlwaysFlip(), rotation=0, zoom=0, shift=0)
    assert np.array_equal(flipped[0], images[0][:, ::-1])


class _AlwaysFlip:
    """An rng whose uniform() returns the middle of the range and random() says flip."""

    def uniform(self, low, high, size):
        return np.full(size, (low + high) / 2.0)

    def random(self, n):
        return np.zeros(n)


def run(dataset, run_dir, *extra):
    from training.train import main

    main(["--data", str(dataset), "--run-dir", str(run_dir), "--cache-dir", "", "--verbose", "0",
          "--batch-size", "8", *extra])


def test_vggnet_run_folder(dataset, tmp_path):
    run_dir = tmp_path / "run"
    run(dataset, run_dir, "--epochs", "1", "--width", "4")
    for name in ("hyperparameters.json", "history.csv", "curves.png", "best.keras", "checkpoint.keras",
                 "evaluation.json", "confusion_matrix.png"):
        assert (run_dir / name).exists(), name
    hp = json.loads((run_dir / "hyperparameters.json").read_text())
    assert hp["model"] == "vggnet" and hp["seed"] == 1337 and hp["labels"] == list(FER2013_LABELS)
    report = json.loads((run_dir / "evaluation.json").read_text())
    assert report["samples"] == 2 * len(FER2013_LABELS)


def test_resume_continues_from_the_checkpoint(dataset, tmp_path):
    run_dir = tmp_path / "run"
    run(dataset, run_dir, "--epochs", "1", "--width", "4")
    run(dataset, run_dir, "--epochs", "3", "--resume")
    with open(run_dir / "history.csv") as handle:
        epochs = [int(row["epoch"]) for row in csv.DictReader(handle)]
    assert epochs == [0, 1, 2]
    assert json.loads((run_dir / "state.json").read_text())["epoch"] == 3
    hp = json.loads((run_dir / "hyperparameters.json").read_text())
    assert hp["width"] == 4  # the run's own settings survive a resume


def test_vgg19_builder_trains(dataset, tmp_path):
    run_dir = tmp_path / "vgg19"
    run(dataset, run_dir, "--model", "vgg19", "--size", "32", "--epochs", "1")
    import keras

    model = keras.models.load_model(run_dir / "best.keras", compile=False)
    assert model.input_shape == (None, 32, 32, 3) and model.output_shape == (None, 7)
    assert any(layer.name == "vgg19" for layer in model.layers)


def test_imagenet_weights_fail_fast_offline(monkeypatch, tmp_path):
    from training.models import build_model

    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(RuntimeError, match="--weights"):
        build_model("vgg19", (48, 48, 3), weights="imagenet")


def test_evaluate_cli(dataset, tmp_path, capsys):
    from training.evaluate import main as evaluate
    from training.models import build_model

    model = build_model("vggnet", (48, 48, 1), 7, width=4)
    model.save(tmp_path / "m.keras")
    evaluate([str(tmp_path / "m.keras"), str(dataset / "fer2013.csv"), "--split", "test",
              "--out", str(tmp_path / "eval")])
    assert "7-class accuracy" in capsys.readouterr().out
    report = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    assert set(report["per_class_7"]) == set(FER2013_LABELS)
    assert set(report["per_class_6"]) == {"happy", "sad", "angry", "fear", "surprise", "neutral"}
    assert 0.0 <= report["accuracy_7"] <= 1.0 and 0.0 <= report["accuracy_6"] <= 1.0
    assert np.asarray(report["confusion_7"]).sum() == report["samples"]
    assert (tmp_path / "eval" / "confusion_matrix.png").stat().st_size > 1000


def test_report_folds_disgust_into_angry():
    from training.evaluate import report_from_probs

    probs = np.eye(7)[[1, 0, 3]]  # predicts disgust, angry, happy
    truth = np.array([0, 1, 3])  # truth angry, disgust, happy
    report = report_from_probs(probs, truth)
    assert report["accuracy_7"] == pytest.approx(1 / 3, abs=1e-4)
    assert report["accuracy_6"] == 1.0


def test_shift_tta_views_match_numpy():
    from training.export import TTA_VIEWS, with_tta
    from training.models import build_model

    model = build_model("vggnet", (48, 48, 1), 7, width=4)
    x = np.random.default_rng(1).random((2, 48, 48, 1)).astype("float32")

    def view(a, flip, dx, dy):
        a = a[:, :, ::-1] if flip else a
        rows, cols = np.clip(np.arange(48) - dy, 0, 47), np.clip(np.arange(48) - dx, 0, 47)
        return a[:, rows][:, :, cols]

    expected = np.mean([np.asarray(model(view(x, *v))) for v in TTA_VIEWS["flip_shift"]], axis=0)
    assert np.allclose(np.asarray(with_tta(model, "flip_shift")(x)), expected, atol=1e-6)


def test_flip_tta_export_averages_the_mirror(tmp_path):
    from training.export import with_tta
    from training.models import build_model

    model = build_model("vggnet", (48, 48, 1), 7, width=4)
    tta = with_tta(model, "flip")
    x = np.random.default_rng(0).random((3, 48, 48, 1)).astype("float32")
    expected = (np.asarray(model(x)) + np.asarray(model(x[:, :, ::-1]))) / 2
    assert np.allclose(np.asarray(tta(x)), expected, atol=1e-6)
