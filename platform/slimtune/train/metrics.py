"""Classification metrics from a confusion matrix: the matrix sums across workers, metrics don't."""

from __future__ import annotations

import numpy as np


def confusion_matrix(labels, predictions, num_labels: int) -> np.ndarray:
    """Rows: true label; columns: predicted label."""
    matrix = np.zeros((num_labels, num_labels), dtype=np.int64)
    np.add.at(matrix, (np.asarray(labels), np.asarray(predictions)), 1)
    return matrix


def metrics_from_confusion(matrix) -> dict[str, float]:
    """Accuracy and macro-F1 (mean F1 over the classes present in labels or predictions)."""
    matrix = np.asarray(matrix, dtype=np.float64)
    total = matrix.sum()
    true_pos = np.diag(matrix)
    support = matrix.sum(axis=1)
    predicted = matrix.sum(axis=0)
    present = (support + predicted) > 0
    f1 = np.divide(2 * true_pos, support + predicted, out=np.zeros_like(true_pos), where=present)
    return {
        "accuracy": float(true_pos.sum() / total) if total else 0.0,
        "f1_macro": float(f1[present].mean()) if present.any() else 0.0,
    }


def metrics_from_logits(labels, logits, num_labels: int) -> dict:
    """Accuracy, macro-F1 and the confusion matrix (as lists) of (examples, labels) logits."""
    confusion = confusion_matrix(labels, np.asarray(logits).argmax(-1), num_labels)
    return {**metrics_from_confusion(confusion), "confusion": confusion.tolist()}
