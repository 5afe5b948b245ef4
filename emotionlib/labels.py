"""Emotion label sets and the folding of a model's classes into the API's six."""
from __future__ import annotations

from typing import Sequence

import numpy as np

# The six emotions the API reports, in the order `scores` lists them.
EMOTIONS: tuple[str, ...] = ("happy", "sad", "angry", "fear", "surprise", "neutral")

# FER2013's seven classes in the dataset's own index order (0..6).
FER2013_LABELS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

# Classes a model may predict that the API folds into one of EMOTIONS.
FOLDED: dict[str, str] = {"disgust": "angry"}

KNOWN_LABELS = frozenset(EMOTIONS) | frozenset(FOLDED)


def validate_labels(labels: Sequence[str]) -> list[str]:
    """Return labels as a list, or raise ValueError naming what is wrong."""
    labels = [str(label).strip().lower() for label in labels]
    unknown = [label for label in labels if label not in KNOWN_LABELS]
    if unknown:
        raise ValueError(
            f"unknown emotion label(s) {unknown}; each label must be one of "
            f"{sorted(KNOWN_LABELS)}"
        )
    if len(set(labels)) != len(labels):
        raise ValueError(f"duplicate labels in {labels}")
    return labels


def fold_matrix(labels: Sequence[str]) -> np.ndarray:
    """A (len(labels), 6) 0/1 matrix: probs @ fold_matrix(labels) gives EMOTIONS scores."""
    matrix = np.zeros((len(labels), len(EMOTIONS)), dtype=np.float32)
    for i, label in enumerate(validate_labels(labels)):
        matrix[i, EMOTIONS.index(FOLDED.get(label, label))] = 1.0
    return matrix


def fold_probabilities(probs: np.ndarray, labels: Sequence[str]) -> np.ndarray:
    """Map (N, len(labels)) model probabilities to (N, 6) EMOTIONS probabilities.

    Folded classes add their probability to their target; the rows are renormalised
    so they sum to 1 even for a model that does not predict every emotion.
    """
    probs = np.asarray(probs, dtype=np.float32)
    if probs.ndim != 2 or probs.shape[1] != len(labels):
        raise ValueError(f"expected probabilities of shape (N, {len(labels)}), got {probs.shape}")
    scores = np.clip(probs, 0.0, None) @ fold_matrix(labels)
    total = scores.sum(axis=1, keepdims=True)
    uniform = np.full_like(scores, 1.0 / len(EMOTIONS))
    return np.where(total > 0, scores / np.where(total > 0, total, 1.0), uniform)
