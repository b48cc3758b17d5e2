import numpy as np

from slimtune.train.metrics import confusion_matrix, metrics_from_confusion


def test_accuracy_and_macro_f1_by_hand():
    labels = [0, 0, 0, 1, 1, 2]
    preds = [0, 0, 1, 1, 2, 2]
    matrix = confusion_matrix(labels, preds, 3)
    assert matrix.tolist() == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    m = metrics_from_confusion(matrix)
    assert m["accuracy"] == 4 / 6
    f1 = [2 * 2 / (3 + 2), 2 * 1 / (2 + 2), 2 * 1 / (1 + 2)]
    assert np.isclose(m["f1_macro"], np.mean(f1))


def test_absent_class_is_ignored():
    m = metrics_from_confusion(confusion_matrix([0, 1], [0, 1], 3))
    assert m == {"accuracy": 1.0, "f1_macro": 1.0}
