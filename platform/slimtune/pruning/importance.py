"""Importance of each attention head and FFN neuron: which units to remove first.

- `magnitude`: L2 norm of every weight tied to the unit (its q/k/v rows and output columns for a
  head; its input row and output column for a neuron). Needs no data.
- `taylor`: first-order Taylor estimate of the loss change when the unit is removed, summed
  |weight x gradient| over the unit's weights across calibration batches (Molchanov et al. 2019).
- hidden dimensions: either measure, summed over every weight along the residual stream.
"""

from __future__ import annotations

import torch

from slimtune.models.families import Part, family_of
from slimtune.models.surgery import hidden_slices

from slimtune.pruning import IMPORTANCE  # noqa: F401  (the names live with the package: no torch to check a flag)


def _per_unit(part: Part, values_of, unit: int) -> torch.Tensor:
    """Sum of `values_of` over each unit's weights in one part (all its blocks, bias included)."""
    w = values_of(part.module.weight)
    if part.dim == 0:
        total = w.view(part.parts, -1, unit, w.shape[1]).sum(dim=(0, 2, 3))
        if part.module.bias is not None:
            total = total + values_of(part.module.bias).view(part.parts, -1, unit).sum(dim=(0, 2))
        return total
    return w.view(w.shape[0], part.parts, -1, unit).sum(dim=(0, 1, 3))


def _scores(model, values_of) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    family = family_of(model)
    heads, ffn = [], []
    with torch.no_grad():
        for layer in family.layer_list(model):
            size = family.head_size(layer)
            heads.append(sum(_per_unit(p, values_of, size) for p in family.head_parts(layer)).cpu())
            ffn.append(sum(_per_unit(p, values_of, 1) for p in family.ffn_parts(layer)).cpu())
    return heads, ffn


def hidden_scores(model, values_of=None) -> torch.Tensor:
    """One score per hidden dimension, over every weight along the residual stream. Each weight's
    share is divided by its mean first, so the vocabulary-sized embedding table does not drown
    the LayerNorms and projections."""
    values_of = values_of or (lambda w: w.detach() ** 2)
    total = torch.zeros(model.config.hidden_size)
    with torch.no_grad():
        for module, name, dim in hidden_slices(model):
            value = values_of(getattr(module, name)).float()
            per_dim = value.sum(dim=[d for d in range(value.ndim) if d != dim]) if value.ndim > 1 else value
            total += (per_dim / per_dim.mean().clamp_min(1e-12)).cpu()
    return total


def magnitude_scores(model):
    """(head scores per layer, neuron scores per layer), from squared weights (sqrt per unit)."""
    heads, ffn = _scores(model, lambda w: w.detach() ** 2)
    return [h.sqrt() for h in heads], [f.sqrt() for f in ffn]


def _taylor(w):
    return (w.detach() * w.grad).abs() if w.grad is not None else torch.zeros_like(w)


def _with_gradients(model, batches, loss_fn, score):
    """`score(model)` while the calibration batches' summed gradients sit on the weights."""
    model.zero_grad(set_to_none=True)
    was_training = model.training
    model.eval()  # dropout off: the scores describe the deterministic model
    for batch in batches:
        loss_fn(model, batch).backward()  # gradients accumulate over the calibration batches
    model.train(was_training)
    try:
        return score(model)
    finally:
        model.zero_grad(set_to_none=True)


def taylor_scores(model, batches, loss_fn):
    """Sum of |w * dL/dw| per unit over `batches` (each a dict the loss function takes)."""
    return _with_gradients(model, batches, loss_fn, lambda m: _scores(m, _taylor))


def taylor_hidden_scores(model, batches, loss_fn) -> torch.Tensor:
    """`hidden_scores` from |w * dL/dw| instead of w^2."""
    return _with_gradients(model, batches, loss_fn, lambda m: hidden_scores(m, _taylor))


def calibration_batches(encoded_train, pad_token_id: int, batch_size: int, n_batches: int, seed: int) -> list[dict]:
    """`n_batches` padded batches of labelled training rows, drawn by `seed`: the gradients that
    score units need a label."""
    from slimtune.data.tokenize import PadCollator

    order = torch.randperm(encoded_train.labelled(), generator=torch.Generator().manual_seed(seed)).tolist()
    collate = PadCollator(pad_token_id)
    picks = order[: batch_size * n_batches]
    return [collate([encoded_train[i] for i in picks[s : s + batch_size]]) for s in range(0, len(picks), batch_size)]
