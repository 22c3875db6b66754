"""Classification metrics computed from predicted probabilities (numpy only)."""

from __future__ import annotations

import numpy as np

__all__ = ["accuracy", "roc_auc", "classification_metrics"]


def accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    """Share of samples whose most probable class is the label."""
    if len(labels) == 0:
        return float("nan")
    return float(np.mean(np.argmax(probs, axis=1) == labels))


def _binary_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    # Mann-Whitney U with average ranks for ties.
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    ranks = np.empty(len(scores))
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def roc_auc(probs: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve.

    Binary tasks: AUC of the class-1 probability. Multi-class: the mean of the
    one-vs-rest AUCs over the classes present (as the MedMNIST evaluator does).
    NaN when only one class is present.
    """
    if probs.shape[1] == 2:
        return _binary_auc(probs[:, 1], labels == 1)
    aucs = [_binary_auc(probs[:, c], labels == c) for c in range(probs.shape[1])]
    aucs = [a for a in aucs if not np.isnan(a)]
    return float(np.mean(aucs)) if aucs else float("nan")


def classification_metrics(probs: np.ndarray, labels: np.ndarray,
                           loss_sum: float) -> dict[str, float]:
    """``loss`` (mean cross-entropy), ``accuracy``, ``auc`` and ``n`` for one evaluation."""
    n = len(labels)
    return {
        "loss": loss_sum / n if n else float("nan"),
        "accuracy": accuracy(probs, labels),
        "auc": roc_auc(probs, labels),
        "n": float(n),
    }
