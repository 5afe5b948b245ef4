"""The training story end to end on generated data (never the real dataset): data loading,
augmentation, a tiny run with its checkpoint and resume, teacher outputs, export (int8) and
the candidate table."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image

from emotionlib.labels import EMOTIONS, FER2013_LABELS
from tests.helpers import FIXTURES

PER_CLASS = 4
VOTE_COLUMNS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt", "unknown", "NF")


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
    """Tiny FER2013 as image folders (train/, val/) with FER+ votes, and as a Kaggle-style CSV."""
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
    rng = np.random.default_rng(2)
    with open(root / "ferplus_votes.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "ferplus_image", "match_rms", *VOTE_COLUMNS])
        for path in sorted(root.glob("*/*/*.png")):
            votes = rng.multinomial(10, [0.4, 0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.04, 0.03, 0.03])
            writer.writerow([path.relative_to(root).as_posix(), "x.png", "1.7", *votes])
    return root


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """A labelled photo folder as the real-photo sets have: the two portraits, twice each."""
    folder = tmp_path_factory.mktemp("photos")
    (folder / "images").mkdir()
    rows = []
    for i, (name, emotion) in enumerate((("obama", "happy"), ("biden", "neutral"), ("obama", "neutral"),
                                         ("biden", "surprise"))):
        Image.open(FIXTURES / f"{name}.jpg").save(folder / "images" / f"{i}.jpg")
        rows.append(f"images/{i}.jpg,{emotion},{name}")
    (folder / "labels.csv").write_text("file,emotion,identity\n" + "\n".join(rows) + "\n")
    return folder


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


def test_geometric_augmentation_is_seeded_and_is_the_identity_or_mirror_without_warp():
    from training.augment import random_crop_affine

    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, (32, 48, 48), dtype=np.uint8)
    out = random_crop_affine(faces, rng, crop=48, rotation=0, scale=0, shift=0, erase_p=0)
    mirrored = [not np.array_equal(a, b) and np.array_equal(a[:, ::-1], b) for a, b in zip(faces, out)]
    assert all(np.array_equal(a, b) or m for a, b, m in zip(faces, out, mirrored))
    assert 4 < sum(mirrored) < 28
    a = random_crop_affine(faces, np.random.default_rng(5))
    b = random_crop_affine(faces, np.random.default_rng(5))
    assert a.shape == (32, 40, 40) and a.dtype == np.uint8 and np.array_equal(a, b)


def test_photo_look_softens_a_share_of_the_faces_and_keeps_the_rest():
    from training.augment import PhotoLook, photo_look, sharpness

    faces = np.random.default_rng(0).integers(0, 256, (200, 48, 48), dtype=np.uint8)
    out = photo_look(faces, np.random.default_rng(1), PhotoLook(share=0.5, p=0.5))
    assert out.shape == faces.shape and out.dtype == np.uint8
    changed = np.array([not np.array_equal(a, b) for a, b in zip(faces, out)])
    assert 0.3 < changed.mean() < 0.7  # about half get the look (each step with p = 0.5)
    assert np.median(sharpness(out[changed])) < 0.8 * np.median(sharpness(faces[changed]))
    assert np.array_equal(photo_look(faces, np.random.default_rng(1), PhotoLook(share=0.0)), faces)


def train(dataset, photos, run_dir, *extra, cache=""):
    from training.train import main

    main(["--data", str(dataset), "--photos", str(photos), "--photo-detectors", "haar", "--run-dir", str(run_dir),
          "--cache-dir", str(cache), "--width", "4", "--head", "8", "--batch", "8", "--photo-share", "0.5",
          "--lr", "0.05", *extra])


def test_a_run_writes_its_folder_and_resumes_where_it_stopped(dataset, photos, tmp_path):
    import keras

    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    train(dataset, photos, straight, "--epochs", "2", cache=tmp_path / "cache")
    for name in ("hyperparameters.json", "history.csv", "curves.png", "model.keras", "log.txt",
                 "checkpoint/state.json", "checkpoint/model.weights.h5", "checkpoint/optimizer.npz"):
        assert (straight / name).exists(), name
    hp = json.loads((straight / "hyperparameters.json").read_text())
    assert hp["width"] == 4 and hp["labels"] == list(FER2013_LABELS)
    with open(straight / "history.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert {"fer2013_7", "fer2013_6", "ferplus_6", "images_per_s"} <= set(rows[0])
    # stopped after epoch 1 (a checkpoint of a 2-epoch run), then resumed: same weights as straight
    train(dataset, photos, stopped, "--epochs", "2", "--max-epochs-this-call", "1", cache=tmp_path / "cache")
    assert json.loads((stopped / "checkpoint" / "state.json").read_text())["epoch"] == 1
    train(dataset, photos, stopped, "--resume", cache=tmp_path / "cache")
    a = keras.models.load_model(straight / "model.keras", compile=False).get_weights()
    b = keras.models.load_model(stopped / "model.keras", compile=False).get_weights()
    assert all(np.allclose(x, y, atol=1e-5) for x, y in zip(a, b))
    with pytest.raises(SystemExit, match="--resume"):
        train(dataset, photos, straight, "--epochs", "1")


def test_an_epoch_swaps_fer_faces_for_photos_class_by_class(dataset, photos, tmp_path):
    from training.augment import PhotoLook
    from training.targets import TargetMix
    from training.train import TrainingSet, parse_args

    args = parse_args(["--run-dir", str(tmp_path), "--data", str(dataset), "--photos", str(photos),
                       "--photo-detectors", "haar", "--cache-dir", ""])
    data = TrainingSet(args, TargetMix())
    pairs = data.epoch(np.random.default_rng(0), share=0.5)
    fer_labels = data.labels[pairs[pairs[:, 0] == -1, 1]]
    photo_labels = data.photo_labels[0][pairs[pairs[:, 0] == 0, 1]]
    totals = np.bincount(np.concatenate([fer_labels, photo_labels]), minlength=7)
    assert totals.tolist() == np.bincount(data.labels, minlength=7).tolist()  # FER2013's class balance kept
    assert sorted(photo_labels.tolist()) == sorted(data.photo_labels[0].tolist())  # 0.5 x 4 per class > pool
    faces, targets = data.batch(pairs[:8], np.random.default_rng(1), PhotoLook())
    assert faces.shape == (8, 48, 48) and np.allclose(targets.sum(axis=1), 1.0)


def test_distillation_reads_saved_teacher_outputs(dataset, photos, tmp_path):
    from training.teacher import main as teacher_main

    train(dataset, photos, tmp_path / "teacher", "--epochs", "1", cache=tmp_path / "cache")
    outputs = tmp_path / "teacher.npz"
    teacher_main([str(tmp_path / "teacher" / "model.keras"), str(outputs), "--data", str(dataset),
                  "--photos", str(photos), "--photo-detectors", "haar", "--cache-dir", str(tmp_path / "cache")])
    with np.load(outputs) as saved:
        assert saved["fer"].shape == (7 * PER_CLASS, 7) and saved["photos_haar"].shape == (4, 7)
        assert np.allclose(np.exp(saved["fer"]).sum(axis=1), 1.0, atol=1e-4)
    train(dataset, photos, tmp_path / "student", "--epochs", "1", "--teacher", str(outputs),
          "--teacher-weight", "0.5", "--label-weight", "0.25", "--votes-weight", "0.25", "--temperature", "2",
          cache=tmp_path / "cache")
    assert json.loads((tmp_path / "student" / "hyperparameters.json").read_text())["teacher_weight"] == 0.5


def test_export_writes_the_served_files_and_decides_int8_by_its_rule(dataset, photos, tmp_path):
    from emotionlib.classifier import Classifier
    from training.export import export

    train(dataset, photos, tmp_path / "run", "--epochs", "1", cache=tmp_path / "cache")
    out = tmp_path / "models" / "emotion_classifier.keras"
    info = export(tmp_path / "run" / "model.keras", out, str(dataset), str(photos), cache_dir=tmp_path / "cache",
                  min_speedup=0.0, max_loss=100.0)  # a rule int8 always passes: the int8 graph is written
    assert info["onnx"]["precision"] == "int8" and set(info["onnx"]["measured"]) == {"float32", "int8"}
    assert json.loads(out.with_suffix(".json").read_text()) == info
    graph = out.with_suffix(".onnx")
    import onnx

    assert any(node.op_type == "QuantizeLinear" for node in onnx.load(str(graph)).graph.node)
    classifier = Classifier.from_file(graph)
    probs = classifier(np.zeros((3, 48, 48), np.uint8))
    assert probs.shape == (3, len(EMOTIONS)) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-3)
    strict = export(tmp_path / "run" / "model.keras", out, str(dataset), None, cache_dir=tmp_path / "cache",
                    min_speedup=1e9)  # no graph can be that much faster: the float graph is kept
    assert strict["onnx"]["precision"] == "float32"
    assert not any(node.op_type == "QuantizeLinear" for node in onnx.load(str(graph)).graph.node)


def test_candidate_table_scores_the_served_graph(dataset, photos, tmp_path, capsys):
    from training.evaluate import main as evaluate
    from training.export import export

    train(dataset, photos, tmp_path / "run", "--epochs", "1", cache=tmp_path / "cache")
    out = tmp_path / "m.keras"
    export(tmp_path / "run" / "model.keras", out, str(dataset), None, int8=False, cache_dir=tmp_path / "cache")
    evaluate([str(out), str(out.with_suffix(".onnx")), "--data", str(dataset), "--photo-set", f"mini={photos}",
              "--out", str(tmp_path / "table.md"), "--report", str(tmp_path / "report"), "--cache-dir", ""])
    rows = json.loads((tmp_path / "table.json").read_text())
    assert [r["model"] for r in rows] == ["m.keras", "m.onnx"]
    assert rows[0]["fer2013_7"] == rows[1]["fer2013_7"]  # the Keras file is scored as its ONNX graph
    assert rows[0]["mini_haar"]["photos"] == 4 and rows[0]["mini_yunet"]["face_found"] == 1.0
    assert rows[0]["gflop_per_face"] > 0 and rows[0]["ms_per_face_b32"] > 0
    assert "FER+ 6c" in capsys.readouterr().out
    report = json.loads((tmp_path / "report" / "evaluation.json").read_text())
    assert set(report["per_class_6"]) == set(EMOTIONS) and (tmp_path / "report" / "confusion_matrix.png").exists()


def test_report_folds_disgust_into_angry():
    from training.evaluate import report_from_probs

    probs = np.eye(7)[[1, 0, 3]]  # predicts disgust, angry, happy
    truth = np.array([0, 1, 3])  # truth angry, disgust, happy
    report = report_from_probs(probs, truth)
    assert report["accuracy_7"] == pytest.approx(1 / 3, abs=1e-4)
    assert report["accuracy_6"] == 1.0


def test_flip_tta_export_averages_the_mirror(tmp_path):
    from training.export import with_tta
    from training.models import build_vggnet

    model = build_vggnet((48, 48, 1), 7, width=4)
    tta = with_tta(model, "flip")
    x = np.random.default_rng(0).random((3, 48, 48, 1)).astype("float32")
    expected = (np.asarray(model(x)) + np.asarray(model(x[:, :, ::-1]))) / 2
    assert np.allclose(np.asarray(tta(x)), expected, atol=1e-6)
