import numpy as np
import pytest

from fedlab.metrics import accuracy, classification_metrics, roc_auc


def test_binary_auc_by_hand():
    # positives 0.8, 0.4; negatives 0.6, 0.2: pairs (0.8>0.6, 0.8>0.2, 0.4<0.6, 0.4>0.2) = 3/4
    p1 = np.array([0.8, 0.4, 0.6, 0.2])
    probs = np.stack([1 - p1, p1], axis=1)
    assert roc_auc(probs, np.array([1, 1, 0, 0])) == pytest.approx(0.75)


def test_ties_count_half():
    probs = np.array([[0.5, 0.5]] * 4)
    assert roc_auc(probs, np.array([0, 1, 0, 1])) == pytest.approx(0.5)


def test_multiclass_auc_is_mean_one_vs_rest():
    probs = np.eye(3)[[0, 1, 2, 0]] * 0.9 + 0.1 / 3
    assert roc_auc(probs, np.array([0, 1, 2, 0])) == pytest.approx(1.0)


def test_single_class_gives_nan():
    assert np.isnan(roc_auc(np.array([[0.2, 0.8]]), np.array([1])))


def test_accuracy_and_summary():
    probs = np.array([[0.9, 0.1], [0.3, 0.7], [0.6, 0.4]])
    labels = np.array([0, 1, 1])
    assert accuracy(probs, labels) == pytest.approx(2 / 3)
    m = classification_metrics(probs, labels, loss_sum=3.0)
    assert m["loss"] == pytest.approx(1.0) and m["n"] == 3
