"""How much to cut: turn importance scores and a ratio into the units each layer keeps."""

from __future__ import annotations

import torch


def units_kept(units: int, ratio: float, min_keep: int = 1) -> int:
    """How many of `units` stay when `ratio` of them go (rounded), at least `min_keep`."""
    return max(min_keep, round(units * (1 - ratio)))


def keep_per_layer(scores: list[torch.Tensor], ratio, scope: str = "layer", min_keep: int = 1) -> list[list[int]]:
    """Indices to keep in each layer after removing `ratio` of the units.

    `ratio`: one share for every layer, or a sequence with one share per layer (scope "layer").
    scope "layer": that share from each layer. scope "global": the lowest-scoring units
    model-wide, with scores divided by their layer's mean so that layers of different scale
    compete fairly. Every layer keeps at least `min_keep` units either way.
    """
    ratios = list(ratio) if isinstance(ratio, (list, tuple)) else [ratio] * len(scores)
    if len(ratios) != len(scores):
        raise ValueError(f"give one ratio, or one per layer ({len(scores)}), not {len(ratios)}")
    if not all(0 <= r < 1 for r in ratios):
        raise ValueError(f"ratios must be in [0, 1), got {ratio}")
    if scope == "layer":
        keep = []
        for s, r in zip(scores, ratios):
            n = units_kept(len(s), r, min_keep)
            keep.append(sorted(torch.topk(s, n).indices.tolist()))
        return keep
    if isinstance(ratio, (list, tuple)):
        raise ValueError("per-layer ratios go with scope 'layer'")
    if scope != "global":
        raise ValueError(f"scope must be 'layer' or 'global', got {scope}")
    normed = [s / s.mean().clamp_min(1e-12) for s in scores]
    flat = torch.cat(normed)
    n_keep = max(len(scores) * min_keep, round(len(flat) * (1 - ratio)))
    threshold = torch.topk(flat, n_keep).values.min()
    keep = []
    for s in normed:
        chosen = (s >= threshold).nonzero().flatten().tolist()
        if len(chosen) < min_keep:
            chosen = torch.topk(s, min_keep).indices.tolist()
        keep.append(sorted(chosen))
    return keep


def evenly_spaced_layers(total: int, keep: int) -> list[int]:
    """`keep` layer indices spread over `total`, always including the last (it feeds the head)."""
    if not 1 <= keep <= total:
        raise ValueError(f"keep must be between 1 and {total}, got {keep}")
    if keep == 1:
        return [total - 1]
    step = (total - 1) / (keep - 1)
    return sorted({round(i * step) for i in range(keep)})
