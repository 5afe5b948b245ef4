"""training.targets and training.photos on generated data: FER+ votes, target mixes, photo crops."""
from __future__ import annotations

import csv

import numpy as np
import pytest
from PIL import Image

from emotionlib.labels import EMOTIONS, FER2013_LABELS

COLUMNS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt", "unknown", "NF")


def write_votes(root, rows):
    """rows: (relative file, vote counts in COLUMNS order, or None for a file FER+ left out)."""
    with open(root / "ferplus_votes.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "ferplus_image", "match_rms", *COLUMNS])
        for name, votes in rows:
            writer.writerow([name, "x.png", "1.7", *(votes if votes is not None else [""] * len(COLUMNS))])


@pytest.fixture
def voted(tmp_path):
    names = ["train/sad/a.jpg", "train/angry/b.jpg", "train/fear/c.jpg", "train/happy/d.jpg", "train/sad/e.jpg"]
    votes = [
        [7, 0, 0, 3, 0, 0, 0, 0, 0, 0],   # FER2013 sad, FER+ mostly neutral
        [0, 0, 0, 0, 5, 4, 0, 0, 1, 0],   # anger 5 of 10: not a majority
        [1, 0, 6, 0, 0, 0, 3, 0, 0, 0],   # surprise; the single neutral vote is an outlier
        None,                              # left out by FER+
        [0, 0, 0, 0, 0, 0, 0, 2, 4, 4],   # no emotion vote left
    ]
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    write_votes(tmp_path, zip(names, votes))
    labels = np.array([FER2013_LABELS.index(n.split("/")[1]) for n in names])
    return tmp_path, [tmp_path / n for n in names], labels


def test_votes_are_read_per_file_and_missing_rows_are_nan(voted):
    from training.targets import read_votes

    root, files, _ = voted
    votes = read_votes(root, files)
    assert votes.shape == (5, 10)
    assert votes[0].tolist() == [7, 0, 0, 3, 0, 0, 0, 0, 0, 0]
    assert np.isnan(votes[3]).all()
    with pytest.raises(ValueError, match="no row"):
        read_votes(root, [root / "train/sad/unknown.jpg"])


def test_vote_distribution_drops_single_votes_and_non_emotions(voted):
    from training.targets import read_votes, vote_distribution

    root, files, _ = voted
    dist = vote_distribution(read_votes(root, files))
    neutral, sad, surprise, fear = (FER2013_LABELS.index(n) for n in ("neutral", "sad", "surprise", "fear"))
    assert dist[0, neutral] == pytest.approx(0.7) and dist[0, sad] == pytest.approx(0.3)
    assert dist[2, neutral] == 0 and dist[2, surprise] == pytest.approx(6 / 9) and dist[2, fear] == pytest.approx(3 / 9)
    assert np.isnan(dist[3]).all() and np.isnan(dist[4]).all()
    assert np.allclose(dist[[0, 1, 2]].sum(axis=1), 1.0)


def test_ferplus_majority_follows_the_ferplus_rule(voted):
    from training.targets import ferplus_majority, read_votes

    root, files, _ = voted
    majority = ferplus_majority(read_votes(root, files))
    # neutral 7/10; anger 5/9 after the single unknown vote is dropped; surprise 6/9; none; none
    assert [EMOTIONS[m] if m >= 0 else None for m in majority] == ["neutral", "angry", "surprise", None, None]


def test_target_mix_weights_sources_and_falls_back_to_the_label(voted):
    from training.targets import TargetMix, read_votes, softmax

    root, files, labels = voted
    votes = read_votes(root, files)
    sad, neutral = FER2013_LABELS.index("sad"), FER2013_LABELS.index("neutral")
    half = TargetMix(label=0.5, votes=0.5)(labels, votes)
    assert half[0, sad] == pytest.approx(0.5 + 0.5 * 0.3) and half[0, neutral] == pytest.approx(0.35)
    assert np.allclose(half.sum(axis=1), 1.0)
    # no votes: the label alone (its weight renormalised), not a half-empty target
    assert half[3].tolist() == np.eye(7)[labels[3]].tolist()
    only_votes = TargetMix(label=0.0, votes=1.0)(labels, votes)
    assert only_votes[4].tolist() == np.eye(7)[labels[4]].tolist()  # nothing to use: the label
    teacher = np.log(np.full((5, 7), 1 / 7, np.float32))
    teacher[:, 0] = 0.0
    mixed = TargetMix(label=0.5, votes=0.0, teacher=0.5, temperature=2.0)(labels, votes, teacher)
    expected = 0.5 * np.eye(7)[labels] + 0.5 * softmax(teacher / 2.0)
    assert np.allclose(mixed, expected, atol=1e-6)
    with pytest.raises(ValueError):
        TargetMix(label=0, votes=0, teacher=0)
    with pytest.raises(ValueError):
        TargetMix(temperature=0)


def test_photo_folders_are_cropped_by_the_service_code_and_cached(tmp_path, obama, biden):
    from emotionlib.pipeline import EmotionPipeline
    from training.photos import crop_folder_cached

    folder = tmp_path / "photos"
    (folder / "images").mkdir(parents=True)
    obama.save(folder / "images" / "a.jpg")
    biden.save(folder / "images" / "b.jpg")
    Image.new("RGB", (200, 200), "gray").save(folder / "images" / "blank.jpg")
    with open(folder / "labels.csv", "w", newline="") as handle:
        handle.write("file,emotion,identity\nimages/a.jpg,happy,A\nimages/blank.jpg,neutral,B\n"
                     "images/b.jpg,contempt,C\n")
    crops = crop_folder_cached(folder, "haar", tmp_path / "cache")
    assert crops.found.tolist() == [True, False, True]
    assert crops.labels.tolist() == [FER2013_LABELS.index("happy"), FER2013_LABELS.index("neutral"), -1]
    assert crops.index.tolist() == [0, 2] and crops.images.shape == (2, 48, 48)
    # the crop is exactly what the service sends to its model for that photo's largest face
    served = EmotionPipeline(detector="haar", input_size=48).locate((folder / "images" / "a.jpg").read_bytes())
    assert np.array_equal(crops.images[0], served.pixels[0])
    again = crop_folder_cached(folder, "haar", tmp_path / "cache")
    assert len(list((tmp_path / "cache").iterdir())) == 1
    assert np.array_equal(again.images, crops.images) and again.identities.tolist() == ["A", "B", "C"]
