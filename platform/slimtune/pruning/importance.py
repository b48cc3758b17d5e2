"""Importance of each attention head and FFN neuron: which units to remove first.

- `magnitude`: L2 norm of every weight tied to the unit (its q/k/v rows and output columns for a
  head; its input row and output column for a neuron). Needs no data.
- `taylor`: first-order Taylor estimate of the loss change when the unit is removed, summed
  |weight x gradient| over the unit's weights across calibration batches (Molchanov et al. 2019).
- hidden dimensions: either measure, summed over every weight along the residual stream.
"""

from __future__ import annotations

import torch

from slimtune.models.surgery import _attention, encoder_layers, hidden_slices

IMPORTANCE = ("magnitude", "taylor")


def _head_units(layer, values_of) -> torch.Tensor:
    sa, q, k, v, o = _attention(layer)
    heads, size = sa.num_attention_heads, sa.attention_head_size
    rows = sum(values_of(m.weight).view(heads, size, -1).sum(dim=(1, 2)) for m in (q, k, v))
    rows = rows + sum(values_of(m.bias).view(heads, size).sum(dim=1) for m in (q, k, v))
    cols = values_of(o.weight).view(o.out_features, heads, size).sum(dim=(0, 2))
    return rows + cols


def _ffn_units(layer, values_of) -> torch.Tensor:
    up, down = layer.intermediate.dense, layer.output.dense
    return values_of(up.weight).sum(dim=1) + values_of(up.bias) + values_of(down.weight).sum(dim=0)


def _scores(model, values_of) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    with torch.no_grad():
        layers = encoder_layers(model)
        return [_head_units(l, values_of).cpu() for l in layers], [_ffn_units(l, values_of).cpu() for l in layers]


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
