"""Structured surgery: physically remove attention heads, FFN neurons, whole layers and hidden width.

transformers 5 removed `prune_heads`; we slice the weights ourselves, for every family through
its adapter (`models.families`: which weights run along heads, neurons and the hidden size).
Each function changes one thing, in place, and checks shapes.

Hidden width (`prune_hidden`) is the residual stream: every embedding's columns, every LayerNorm,
the input columns of whatever reads the stream (q, k, v, the FFN's first projection, the head)
and the output rows of whatever adds to it (the attention output, the FFN's second projection).
Heads keep their size, so a narrowed model's hidden size is no longer heads x head size.

The per-layer shape (`model_shape`) is saved beside the weights so `rebuild` can restore a
non-uniform model exactly: transformers' configs cannot express per-layer sizes.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from slimtune.models.families import Part, family_of


def encoder_layers(model) -> nn.ModuleList:
    return family_of(model).layer_list(model)


def num_heads(layer, model) -> int:
    return family_of(model).num_heads(layer)


def ffn_width(layer, model) -> int:
    return family_of(model).ffn_width(layer)


def _slice(module: nn.Module, name: str, index: torch.Tensor, dim: int) -> None:
    param = getattr(module, name)
    param.data = param.data.index_select(dim, index.to(param.device)).clone()
    param.grad = None


def _unit_index(part: Part, keep: list[int], unit: int) -> torch.Tensor:
    """Indices along `part.dim` of units `keep` (each `unit` wide) in every block of the part."""
    block = part.module.weight.shape[part.dim] // part.parts
    return torch.cat([torch.arange(p * block + u * unit, p * block + (u + 1) * unit)
                      for p in range(part.parts) for u in keep])


def _slice_units(parts: list[Part], keep: list[int], unit: int) -> None:
    for part in parts:
        index = _unit_index(part, keep, unit)
        _slice(part.module, "weight", index, part.dim)
        if part.dim == 0 and part.module.bias is not None:
            _slice(part.module, "bias", index, 0)
        part.module.out_features, part.module.in_features = part.module.weight.shape


def prune_heads(model, layer_index: int, keep: list[int]) -> None:
    """Keep heads `keep` (current numbering) of one layer; at least one head must stay."""
    family = family_of(model)
    layer = family.layer_list(model)[layer_index]
    total = family.num_heads(layer)
    keep = sorted(set(keep))
    if not keep or keep[-1] >= total:
        raise ValueError(f"layer {layer_index}: keep 1..{total} heads, got {keep}")
    _slice_units(family.head_parts(layer), keep, family.head_size(layer))
    family.set_heads(layer, keep)
    assert family.num_heads(layer) == len(keep)


def prune_ffn(model, layer_index: int, keep: list[int]) -> None:
    """Keep intermediate neurons `keep` of one layer's feed-forward block (both halves if gated)."""
    family = family_of(model)
    layer = family.layer_list(model)[layer_index]
    keep = sorted(set(keep))
    if not keep or keep[-1] >= family.ffn_width(layer):
        raise ValueError(f"layer {layer_index}: keep 1..{family.ffn_width(layer)} FFN neurons")
    _slice_units(family.ffn_parts(layer), keep, 1)
    assert family.ffn_width(layer) == len(keep)


def keep_layers(model, keep: list[int]) -> None:
    """Keep the encoder layers at indices `keep` (in order); drop the rest."""
    family = family_of(model)
    layers = family.layer_list(model)
    keep = sorted(set(keep))
    if not keep or keep[-1] >= len(layers):
        raise ValueError(f"keep 1..{len(layers)} layers, got {keep}")
    family.set_layer_list(model, [layers[i] for i in keep])
    family.after_keep_layers(model, keep)


def hidden_slices(model) -> list[tuple[nn.Module, str, int]]:
    """Every (module, parameter name, dim) that runs along the hidden size: one list drives both
    the importance of each hidden dimension and its removal, so they cannot disagree."""
    family = family_of(model)
    hidden = model.config.hidden_size
    inside, out = set(), []
    for layer in family.layer_list(model):
        for m in family.readers(layer):
            out.append((m, "weight", 1))
            inside.add(id(m))
        for m in family.writers(layer):
            out += [(m, p, 0) for p in ("weight", "bias") if getattr(m, p) is not None]
            inside.add(id(m))
        inside |= {id(p.module) for p in family.head_parts(layer) + family.ffn_parts(layer)}
    logits = family.label_layer(model)  # its outputs are labels, whatever their number
    for module in model.modules():
        if isinstance(module, nn.Embedding) and module.embedding_dim == hidden:
            out.append((module, "weight", 1))
        elif isinstance(module, nn.LayerNorm) and tuple(module.normalized_shape) == (hidden,):
            out += [(module, p, 0) for p in ("weight", "bias") if getattr(module, p) is not None]
        elif isinstance(module, nn.Linear) and id(module) not in inside:  # embedding projection, pooler, head
            if module.in_features == hidden:
                out.append((module, "weight", 1))
            if module.out_features == hidden and module is not logits:
                out += [(module, p, 0) for p in ("weight", "bias") if getattr(module, p) is not None]
    return out


def prune_hidden(model, keep: list[int]) -> None:
    """Keep hidden dimensions `keep` everywhere along the residual stream."""
    hidden = model.config.hidden_size
    keep_t = torch.tensor(sorted(set(keep)), dtype=torch.long)
    if len(keep_t) == 0 or keep_t[-1] >= hidden:
        raise ValueError(f"keep 1..{hidden} hidden dimensions, got {len(keep_t)}")
    for module, name, dim in hidden_slices(model):
        _slice(module, name, keep_t, dim)
    n = len(keep_t)
    for module in model.modules():  # keep each module's own size fields true
        if isinstance(module, nn.Embedding) and module.embedding_dim == hidden:
            module.embedding_dim = n
        elif isinstance(module, nn.LayerNorm) and tuple(module.normalized_shape) == (hidden,):
            module.normalized_shape = (n,)
        elif isinstance(module, nn.Linear):
            module.out_features, module.in_features = module.weight.shape
    family_of(model).narrow_config(model.config, n)


def model_layer_shape(model) -> list[tuple[int, int]]:
    """(heads, FFN neurons) kept by each encoder layer."""
    family = family_of(model)
    return [(family.num_heads(layer), family.ffn_width(layer)) for layer in family.layer_list(model)]


def model_shape(model) -> dict | None:
    """Per-layer heads and FFN width (the head size once the hidden width was cut, and what a
    family's adapter adds), or None when the config describes the model exactly."""
    family = family_of(model)
    config = model.config
    if not family.layer_list(model):
        return None  # no layers (the zero-layer student): the config holds every size
    layers, plain = [], True
    for i, layer in enumerate(family.layer_list(model)):
        extra = family.layer_extra(model, i, layer)
        entry = {"heads": family.num_heads(layer), "ffn": family.ffn_width(layer), **extra}
        plain &= not extra and entry["heads"] == config.num_attention_heads and entry["ffn"] == family.ffn_size(config)
        layers.append(entry)
    head_size = family.head_size(family.layer_list(model)[0])
    narrowed = head_size * config.num_attention_heads != config.hidden_size
    if plain and not narrowed:
        return None
    return {"layers": layers, **({"head_size": head_size} if narrowed else {})}


def rebuild(config, shape: dict | None, attn_implementation: str | None = None):
    """An untrained model of exactly `shape`, ready for `load_state_dict` of the saved weights."""
    from transformers import AutoModelForSequenceClassification

    family = family_of(config)
    kwargs = {"attn_implementation": attn_implementation} if attn_implementation else {}
    hidden = config.hidden_size
    if (shape or {}).get("head_size"):  # narrowed: build at the full width, then cut it the same way
        config = copy.deepcopy(config)
        config.hidden_size = shape["head_size"] * config.num_attention_heads
    model = AutoModelForSequenceClassification.from_config(config, **kwargs)
    if model.config.hidden_size != hidden:
        prune_hidden(model, list(range(hidden)))
    for i, entry in enumerate((shape or {}).get("layers", [])):
        layer = family.layer_list(model)[i]
        if entry["heads"] < family.num_heads(layer):
            prune_heads(model, i, list(range(entry["heads"])))
        if entry["ffn"] < family.ffn_width(layer):
            prune_ffn(model, i, list(range(entry["ffn"])))
    family.restore(model, shape or {})
    return model


def encoder_flops(model, seq_len: int = 128) -> int:
    """Forward multiply-adds x 2 of the encoder layers for one sequence (embeddings and the
    classifier head excluded: they are lookups and a rounding error)."""
    family = family_of(model)
    total = 0
    for layer in family.layer_list(model):
        inner = family.num_heads(layer) * family.head_size(layer)
        for part in family.head_parts(layer) + family.ffn_parts(layer):
            total += 2 * seq_len * part.module.in_features * part.module.out_features
        total += 2 * seq_len * seq_len * inner * 2  # scores and the weighted sum of values
    return total
