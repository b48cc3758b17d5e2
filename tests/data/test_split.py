import numpy as np

from slimtune.data.split import stratified_pick


def test_exact_count_and_proportions():
    labels = np.array([0] * 90 + [1] * 9 + [2] * 1)
    rest, picked = stratified_pick(labels, 20, seed=1)
    assert len(picked) == 20 and len(rest) == 80
    assert set(rest) | set(picked) == set(range(100)) and not set(rest) & set(picked)
    counts = np.bincount(labels[picked], minlength=3)
    assert counts[0] == 18 and counts[1] == 2  # 90 * 0.2 and 9 * 0.2 rounded by largest remainder


def test_seeded_and_sorted():
    labels = np.arange(50) % 3
    a = stratified_pick(labels, 10, seed=7)[1]
    b = stratified_pick(labels, 10, seed=7)[1]
    c = stratified_pick(labels, 10, seed=8)[1]
    assert (a == b).all() and not (a == c).all()
    assert (np.diff(a) > 0).all()
