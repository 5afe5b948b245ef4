"""Training targets from FER2013's labels, the FER+ votes and a teacher's outputs.

FER2013 has one label per face, from one annotator; Microsoft's FER+ (Barsoum et al. 2016,
arXiv:1608.01041) had ten raters vote on every image. By the FER+ majority, half of
FER2013's "sad" training faces and a third of its "angry" and "fear" faces are neutral. A
model trained on FER2013's labels reads neutral faces as angry or sad; one trained on the
votes alone calls clear posed expressions neutral. ``TargetMix`` blends the sources per
image, so a recipe states exactly which mix it trains on.

The votes file (``ferplus_votes.csv`` beside the ``train/`` and ``val/`` folders) has, per
image file, the ten vote counts in ``VOTE_COLUMNS`` order. Our classes are FER2013's seven
(``FER2013_LABELS``); contempt, unknown and not-a-face votes are not emotions we report.
"""
from __future__ import annotations

import csv
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from emotionlib.labels import EMOTIONS, FER2013_LABELS, FOLDED

VOTES_FILE = "ferplus_votes.csv"
VOTE_COLUMNS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear",
                "contempt", "unknown", "NF")
# FER+ vote column -> FER2013 class (columns not listed are not one of our emotions).
VOTE_TO_FER = {"neutral": "neutral", "happiness": "happy", "surprise": "surprise", "sadness": "sad",
               "anger": "angry", "disgust": "disgust", "fear": "fear"}


def read_votes(data_dir: str | Path, files) -> np.ndarray:
    """(N, 10) float vote counts for ``files`` (paths under ``data_dir``), NaN rows for images
    FER+ left out; raises if the votes file lacks one of the files."""
    data_dir = Path(data_dir)
    with open(data_dir / VOTES_FILE, newline="") as handle:
        table = {row["file"]: row for row in csv.DictReader(handle)}
    votes = np.full((len(files), len(VOTE_COLUMNS)), np.nan, np.float32)
    for i, path in enumerate(files):
        key = Path(path).resolve().relative_to(data_dir.resolve()).as_posix()
        if key not in table:
            raise ValueError(f"{data_dir / VOTES_FILE} has no row for {key}")
        row = table[key]
        if row[VOTE_COLUMNS[0]] != "":
            votes[i] = [float(row[c]) for c in VOTE_COLUMNS]
    return votes


def drop_single_votes(votes: np.ndarray) -> np.ndarray:
    """FER+'s outlier rule: a class with a single vote gets none."""
    return np.where(votes <= 1, 0.0, votes)


def vote_distribution(votes: np.ndarray) -> np.ndarray:
    """(N, 7) distribution over FER2013_LABELS from (N, 10) votes (single votes dropped,
    non-emotion votes ignored); NaN rows where no emotion vote is left."""
    votes = drop_single_votes(votes)
    out = np.zeros((len(votes), len(FER2013_LABELS)), np.float32)
    for column, name in VOTE_TO_FER.items():
        out[:, FER2013_LABELS.index(name)] = votes[:, VOTE_COLUMNS.index(column)]
    total = out.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, out / total, np.nan)


def ferplus_majority(votes: np.ndarray) -> np.ndarray:
    """(N,) index into EMOTIONS of the FER+ majority label, -1 where there is none.

    FER+'s own "majority" rule (its generate_training_data.py): single votes dropped, then
    the top class must hold more than half of all remaining votes (contempt, unknown and
    not-a-face included); images whose majority is contempt, unknown or not-a-face, or that
    FER+ left out, get -1. Disgust folds into angry, as the API reports it.
    """
    votes = drop_single_votes(np.nan_to_num(votes, nan=0.0))
    out = np.full(len(votes), -1, np.int64)
    top = votes.argmax(axis=1)
    clear = votes.max(axis=1) > 0.5 * votes.sum(axis=1)
    for column, name in VOTE_TO_FER.items():
        pick = clear & (top == VOTE_COLUMNS.index(column))
        out[pick] = EMOTIONS.index(FOLDED.get(name, name))
    return out


@dataclass(frozen=True)
class TargetMix:
    """Per-image soft target: ``label`` x one-hot FER2013 label + ``votes`` x the FER+ vote
    distribution + ``teacher`` x a teacher's probabilities (softened by ``temperature``),
    renormalised over the sources an image has (an image FER+ left out, or one without a
    teacher output, splits its weight over the others)."""
    label: float = 0.5
    votes: float = 0.5
    teacher: float = 0.0
    temperature: float = 1.0

    def __post_init__(self):
        weights = (self.label, self.votes, self.teacher)
        if min(weights) < 0 or sum(weights) <= 0:
            raise ValueError(f"target weights must be >= 0 and not all 0, got {weights}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")

    def as_dict(self) -> dict:
        return asdict(self)

    def __call__(self, labels: np.ndarray, votes: np.ndarray | None = None,
                 teacher_logits: np.ndarray | None = None) -> np.ndarray:
        """(N, 7) float32 targets. labels: (N,) FER2013 indices; votes: (N, 10) or None;
        teacher_logits: (N, 7) or None (rows of NaN: no teacher output for that image)."""
        n, k = len(labels), len(FER2013_LABELS)
        parts = [(self.label, np.eye(k, dtype=np.float32)[labels])]
        if self.votes and votes is not None:
            parts.append((self.votes, vote_distribution(votes)))
        if self.teacher and teacher_logits is not None:
            parts.append((self.teacher, softmax(np.asarray(teacher_logits, np.float32) / self.temperature)))
        total = np.zeros((n, k), np.float32)
        weight = np.zeros((n, 1), np.float32)
        for w, dist in parts:
            have = np.isfinite(dist).all(axis=1, keepdims=True)
            total += w * np.where(have, dist, 0.0)
            weight += w * have
        # an image with none of its weighted sources falls back to its label
        fallback = weight[:, 0] == 0
        total[fallback] = np.eye(k, dtype=np.float32)[labels[fallback]]
        weight[fallback] = 1.0
        return total / weight


def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - np.max(logits, axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)
