"""Classification and segmentation metrics from predicted probabilities (numpy only);
reconstruction metrics live in :mod:`fedlab.imaging`."""

from __future__ import annotations

import numpy as np

__all__ = ["accuracy", "roc_auc", "classification_metrics", "dice", "segmentation_metrics",
           "task_metrics", "confusion_matrix", "sensitivity_specificity", "reliability",
           "expected_calibration_error"]


def accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    """Share of samples whose most probable class is the label.

    Parameters
    ----------
    probs, labels : ndarray
        Class probabilities ``(N, n_classes)`` and true classes ``(N,)`` (integers).
    """
    if len(labels) == 0:
        return float("nan")
    return float(np.mean(np.argmax(probs, axis=1) == labels))


def binary_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    n_pos, n_neg = int(positive.sum()), int(len(positive) - positive.sum())
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

    Parameters
    ----------
    probs, labels : ndarray
        Class probabilities ``(N, n_classes)`` and true classes ``(N,)`` (integers).
    """
    if probs.shape[1] == 2:
        return binary_auc(probs[:, 1], labels == 1)
    aucs = [binary_auc(probs[:, c], labels == c) for c in range(probs.shape[1])]
    aucs = [a for a in aucs if not np.isnan(a)]
    return float(np.mean(aucs)) if aucs else float("nan")


def classification_metrics(probs: np.ndarray, labels: np.ndarray,
                           loss_sum: float) -> dict[str, float]:
    """``loss`` (mean cross-entropy), ``accuracy``, ``auc`` and ``n`` for one evaluation,
    plus two numbers that expose a collapsed model: ``majority``, the accuracy of always
    answering the most frequent true class (the baseline to beat), and ``top_share``,
    the share of images predicted as the model's most frequent answer (1.0: one class for
    every image).

    Parameters
    ----------
    probs, labels : ndarray
        Class probabilities ``(N, n_classes)`` and true classes ``(N,)`` (integers).
    loss_sum : float
        Cross-entropy summed over the samples.
    """
    n = len(labels)
    if n:
        counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=probs.shape[1])
        answers = np.bincount(probs.argmax(axis=1), minlength=probs.shape[1])
        majority, top_share = counts.max() / n, answers.max() / n
    else:
        majority = top_share = float("nan")
    return {
        "loss": loss_sum / n if n else float("nan"),
        "accuracy": accuracy(probs, labels),
        "auc": roc_auc(probs, labels),
        "n": float(n),
        "majority": float(majority),
        "top_share": float(top_share),
    }


def dice(pred: np.ndarray, target: np.ndarray, n_classes: int) -> np.ndarray:
    """Dice of every image and foreground class: array ``(N, n_classes - 1)``.

    ``pred`` and ``target`` are integer masks ``(N, H, W)`` or ``(N, D, H, W)``; class 0
    is the background and is not scored. Dice is ``2 |P & T| / (|P| + |T|)`` for the
    pixels (voxels) ``P`` predicted and ``T`` labelled as the class. Empty masks: when
    neither prediction nor label holds the class, the image scores 1 for it (nothing to
    find, nothing found); when only one of them does, it scores 0.
    """
    if pred.shape != target.shape or pred.ndim not in (3, 4):
        raise ValueError(f"pred and target must be masks of the same shape (N, H, W) or "
                         f"(N, D, H, W), got {pred.shape} and {target.shape}")
    p = pred.reshape(len(pred), -1)
    t = target.reshape(len(target), -1)
    out = np.empty((len(p), n_classes - 1))
    for c in range(1, n_classes):
        pc, tc = p == c, t == c
        both = (pc & tc).sum(axis=1)
        total = pc.sum(axis=1) + tc.sum(axis=1)
        out[:, c - 1] = np.where(total > 0, 2.0 * both / np.maximum(total, 1), 1.0)
    return out


def segmentation_metrics(probs: np.ndarray, masks: np.ndarray,
                         loss_sum: float) -> dict[str, float]:
    """Metrics of one segmentation evaluation, from probabilities ``(N, C, H, W)``.

    ``loss`` is the mean cross-entropy per pixel, ``accuracy`` the share of pixels whose
    most probable class is the label, ``auc`` NaN (not defined for masks), ``dice`` the
    mean over images and foreground classes of :func:`dice`, ``dice_<c>`` the mean Dice
    of foreground class ``c`` alone, and ``n`` the number of images.

    Parameters
    ----------
    probs : ndarray
        Class probabilities per pixel ``(N, C, H, W)`` (``(N, C, D, H, W)``: volumes).
    masks : ndarray
        True integer masks ``(N, H, W)`` (``(N, D, H, W)``); class 0 is the background.
    loss_sum : float
        Cross-entropy summed over all pixels.
    """
    n, n_classes = len(masks), (probs.shape[1] if probs.ndim >= 4 else 0)
    out = {"loss": loss_sum / masks.size if n else float("nan"),
           "accuracy": float("nan"), "auc": float("nan"), "dice": float("nan")}
    per_class = np.full(max(n_classes - 1, 0), float("nan"))
    if n:
        pred = np.argmax(probs, axis=1)
        scores = dice(pred, masks, n_classes)
        out["accuracy"] = float(np.mean(pred == masks))
        out["dice"] = float(scores.mean())
        per_class = scores.mean(axis=0)
    out.update({f"dice_{c + 1}": float(v) for c, v in enumerate(per_class)})
    out["n"] = float(n)
    return out


def task_metrics(probs: np.ndarray, labels: np.ndarray, loss_sum: float,
                 inputs: np.ndarray | None = None) -> dict[str, float]:
    """:func:`segmentation_metrics` when ``labels`` are masks ``(N, [D,] H, W)``,
    :func:`fedlab.imaging.reconstruction_metrics` when they are images ``(N, C, H, W)``
    (with the zero-filled baseline of ``inputs``), else :func:`classification_metrics`.

    Parameters
    ----------
    probs, labels : ndarray
        Class probabilities and true classes ``(N,)``, per pixel for masks ``(N, H, W)``,
        or the model's images and the true ones (floats) for a reconstruction.
    loss_sum : float
        The loss summed over the samples (over the pixels for masks and images).
    inputs : ndarray, optional
        The model's inputs: a reconstruction scores their zero-filled images too.
    """
    if labels.dtype.kind == "f":
        from .data.kspace import zero_filled
        from .imaging import reconstruction_metrics  # MONAI: imported when needed
        return reconstruction_metrics(probs, labels, loss_sum,
                                      None if inputs is None else zero_filled(inputs))
    if labels.ndim > 1:
        return segmentation_metrics(probs, labels, loss_sum)
    return classification_metrics(probs, labels, loss_sum)


def confusion_matrix(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Counts ``(n_classes, n_classes)``: row = true class, column = predicted class.

    Parameters
    ----------
    probs, labels : ndarray
        Class probabilities ``(N, n_classes)`` and true classes ``(N,)`` (integers).
    """
    k = probs.shape[1]
    return np.bincount(labels * k + np.argmax(probs, axis=1), minlength=k * k).reshape(k, k)


def sensitivity_specificity(probs: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Sensitivity (recall of the positive class) and specificity (recall of the negative).

    Binary: class 1 is positive. Multi-class: the macro mean over classes of one-vs-rest
    sensitivity and specificity. NaN where a class has no samples.

    Parameters
    ----------
    probs, labels : ndarray
        Class probabilities ``(N, n_classes)`` and true classes ``(N,)`` (integers).
    """
    cm = confusion_matrix(probs, labels).astype(float)
    tp = np.diag(cm)
    fn, fp = cm.sum(1) - tp, cm.sum(0) - tp
    tn = cm.sum() - tp - fn - fp
    with np.errstate(invalid="ignore", divide="ignore"):
        sens, spec = tp / (tp + fn), tn / (tn + fp)
    if len(cm) == 2:
        return float(sens[1]), float(spec[1])
    return (float(np.nanmean(sens)) if np.isfinite(sens).any() else float("nan"),
            float(np.nanmean(spec)) if np.isfinite(spec).any() else float("nan"))


def reliability(probs: np.ndarray, labels: np.ndarray, bins: int = 10) -> dict[str, np.ndarray]:
    """Confidence (top probability) against accuracy in ``bins`` equal-width bins of
    ``[0, 1]``: arrays ``lower``, ``upper``, ``count``, ``confidence``, ``accuracy`` (NaN in
    empty bins). The data of a reliability diagram.

    Parameters
    ----------
    probs, labels : ndarray
        Class probabilities ``(N, n_classes)`` and true classes ``(N,)`` (integers).
    bins : int
        Number of equal-width confidence bins, at least 1.
    """
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    conf = np.max(probs, axis=1)
    hit = (np.argmax(probs, axis=1) == labels).astype(float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, bins - 1)
    count = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(which, conf, minlength=bins) / count
        mean_acc = np.bincount(which, hit, minlength=bins) / count
    return {"lower": edges[:-1], "upper": edges[1:], "count": count,
            "confidence": mean_conf, "accuracy": mean_acc}


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 10) -> float:
    """ECE: the sample-weighted mean of |accuracy - confidence| over the bins of
    :func:`reliability` (Guo et al., "On Calibration of Modern Neural Networks", ICML 2017).

    Parameters
    ----------
    probs, labels : ndarray
        Class probabilities ``(N, n_classes)`` and true classes ``(N,)`` (integers).
    bins : int
        Number of equal-width confidence bins, at least 1.
    """
    if len(labels) == 0:
        return float("nan")
    r = reliability(probs, labels, bins)
    full = r["count"] > 0
    gaps = np.abs(r["accuracy"][full] - r["confidence"][full])
    return float(np.sum(r["count"][full] * gaps) / len(labels))
