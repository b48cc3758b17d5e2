"""Seeded stratified splits, so that rare classes appear on both sides and runs are repeatable."""

from __future__ import annotations

import numpy as np


def stratified_pick(labels: np.ndarray, n_pick: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Pick `n_pick` row indices with class proportions kept; return (rest, picked), both sorted.

    Quotas use the largest-remainder method, so the total is exactly `n_pick`.
    """
    labels = np.asarray(labels)
    n = len(labels)
    if not 0 < n_pick < n:
        raise ValueError(f"n_pick must be between 1 and {n - 1}, got {n_pick}")
    classes, counts = np.unique(labels, return_counts=True)
    exact = counts * n_pick / n
    quota = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - quota), kind="stable")[: n_pick - quota.sum()]:
        quota[i] += 1
    rng = np.random.default_rng(seed)
    picked = np.concatenate(
        [rng.permutation(np.flatnonzero(labels == c))[:q] for c, q in zip(classes, quota)]
    )
    picked = np.sort(picked)
    rest = np.setdiff1d(np.arange(n), picked)
    return rest, picked
