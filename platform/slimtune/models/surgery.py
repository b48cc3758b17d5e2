"""Structured surgery: physically remove attention heads, FFN neurons and whole layers.

transformers 5 removed `prune_heads`; we slice the weights ourselves. Each function changes one
thing, in place, and checks shapes. Supported: the BERT family and MPNet. MPNet adds one
relative-position bias per head, shared by all layers, so a layer that lost heads keeps the
indices of the heads it still has (`kept_heads`) and a pre-hook picks those bias columns.

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
from transformers.pytorch_utils import prune_linear_layer


def encoder_layers(model) -> nn.ModuleList:
    return getattr(model, model.base_model_prefix).encoder.layer


def _attention(layer):
    """(self-attention module, q, k, v, output projection) for BERT-like and MPNet layers."""
    if hasattr(layer.attention, "self"):  # BERT family
        sa = layer.attention.self
        return sa, sa.query, sa.key, sa.value, layer.attention.output.dense
    sa = layer.attention.attn  # MPNet
    return sa, sa.q, sa.k, sa.v, sa.o


def num_heads(layer) -> int:
    return _attention(layer)[0].num_attention_heads


def ffn_width(layer) -> int:
    return layer.intermediate.dense.out_features


def _is_mpnet(model) -> bool:
    return model.config.model_type == "mpnet"


def _select_bias_heads(module, args, kwargs):
    """MPNet passes the shared (batch, heads, q, k) position bias as the third argument."""
    if len(args) >= 3 and args[2] is not None:
        args = (*args[:2], args[2].index_select(1, module.kept_heads), *args[3:])
    elif kwargs.get("position_bias") is not None:
        kwargs["position_bias"] = kwargs["position_bias"].index_select(1, module.kept_heads)
    return args, kwargs


def _track_mpnet_heads(sa, original: list[int]) -> None:
    if not hasattr(sa, "kept_heads"):
        sa.register_forward_pre_hook(_select_bias_heads, with_kwargs=True)
    sa.register_buffer("kept_heads", torch.tensor(original, dtype=torch.long), persistent=False)


def prune_heads(model, layer_index: int, keep: list[int]) -> None:
    """Keep heads `keep` (current numbering) of one layer; at least one head must stay."""
    layer = encoder_layers(model)[layer_index]
    sa, q, k, v, o = _attention(layer)
    keep = sorted(set(keep))
    if not keep or keep[-1] >= sa.num_attention_heads:
        raise ValueError(f"layer {layer_index}: keep 1..{sa.num_attention_heads} heads, got {keep}")
    size = sa.attention_head_size
    rows = torch.cat([torch.arange(h * size, (h + 1) * size) for h in keep])
    new = {"q": prune_linear_layer(q, rows, dim=0), "k": prune_linear_layer(k, rows, dim=0),
           "v": prune_linear_layer(v, rows, dim=0), "o": prune_linear_layer(o, rows, dim=1)}
    if hasattr(layer.attention, "self"):
        sa.query, sa.key, sa.value = new["q"], new["k"], new["v"]
        layer.attention.output.dense = new["o"]
    else:
        sa.q, sa.k, sa.v, sa.o = new["q"], new["k"], new["v"], new["o"]
    if _is_mpnet(model):
        before = sa.kept_heads.tolist() if hasattr(sa, "kept_heads") else list(range(sa.num_attention_heads))
        _track_mpnet_heads(sa, [before[h] for h in keep])
    sa.num_attention_heads = len(keep)
    sa.all_head_size = len(keep) * size
    assert new["q"].out_features == new["o"].in_features == sa.all_head_size


def prune_ffn(model, layer_index: int, keep: list[int]) -> None:
    """Keep intermediate neurons `keep` of one layer's feed-forward block."""
    layer = encoder_layers(model)[layer_index]
    keep_t = torch.tensor(sorted(set(keep)), dtype=torch.long)
    if len(keep_t) == 0 or keep_t[-1] >= ffn_width(layer):
        raise ValueError(f"layer {layer_index}: keep 1..{ffn_width(layer)} FFN neurons")
    layer.intermediate.dense = prune_linear_layer(layer.intermediate.dense, keep_t, dim=0)
    layer.output.dense = prune_linear_layer(layer.output.dense, keep_t, dim=1)
    assert layer.intermediate.dense.out_features == layer.output.dense.in_features == len(keep_t)


def keep_layers(model, keep: list[int]) -> None:
    """Keep the encoder layers at indices `keep` (in order); drop the rest."""
    layers = encoder_layers(model)
    keep = sorted(set(keep))
    if not keep or keep[-1] >= len(layers):
        raise ValueError(f"keep 1..{len(layers)} layers, got {keep}")
    getattr(model, model.base_model_prefix).encoder.layer = nn.ModuleList([layers[i] for i in keep])
    model.config.num_hidden_layers = len(keep)


def _slice(module: nn.Module, name: str, index: torch.Tensor, dim: int) -> None:
    param = getattr(module, name)
    param.data = param.data.index_select(dim, index).clone()
    if param.grad is not None:
        param.grad = None


def hidden_slices(model) -> list[tuple[nn.Module, str, int]]:
    """Every (module, parameter name, dim) that runs along the hidden size: one list drives both
    the importance of each hidden dimension and its removal, so they cannot disagree."""
    hidden = model.config.hidden_size
    inside, out = set(), []
    for layer in encoder_layers(model):
        _, q, k, v, o = _attention(layer)
        out += [(m, "weight", 1) for m in (q, k, v, layer.intermediate.dense)]
        out += [(m, p, 0) for m in (o, layer.output.dense) for p in ("weight", "bias") if getattr(m, p) is not None]
        inside |= {id(m) for m in (q, k, v, o, layer.intermediate.dense, layer.output.dense)}
    for module in model.modules():
        if isinstance(module, nn.Embedding) and module.embedding_dim == hidden:
            out.append((module, "weight", 1))
        elif isinstance(module, nn.LayerNorm) and tuple(module.normalized_shape) == (hidden,):
            out += [(module, p, 0) for p in ("weight", "bias") if getattr(module, p) is not None]
        elif isinstance(module, nn.Linear) and id(module) not in inside:  # pooler / classifier head
            if module.in_features == hidden:
                out.append((module, "weight", 1))
            if module.out_features == hidden:
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
            module.in_features, module.out_features = module.weight.shape[1], module.weight.shape[0]
    model.config.hidden_size = n


def model_shape(model) -> dict | None:
    """Per-layer heads and FFN width (and the head size once the hidden width was cut), or None
    when the config describes the model exactly."""
    layers = []
    for layer in encoder_layers(model):
        sa = _attention(layer)[0]
        entry = {"heads": sa.num_attention_heads, "ffn": ffn_width(layer)}
        if hasattr(sa, "kept_heads"):
            entry["kept_heads"] = sa.kept_heads.tolist()
        layers.append(entry)
    uniform = all(e["heads"] == model.config.num_attention_heads and e["ffn"] == model.config.intermediate_size
                  and "kept_heads" not in e for e in layers)
    head_size = _attention(encoder_layers(model)[0])[0].attention_head_size
    narrowed = head_size * model.config.num_attention_heads != model.config.hidden_size
    if uniform and not narrowed:
        return None
    return {"layers": layers, **({"head_size": head_size} if narrowed else {})}


def rebuild(config, shape: dict | None, attn_implementation: str | None = None):
    """An untrained model of exactly `shape`, ready for `load_state_dict` of the saved weights."""
    from transformers import AutoModelForSequenceClassification

    kwargs = {"attn_implementation": attn_implementation} if attn_implementation else {}
    hidden = config.hidden_size
    if (shape or {}).get("head_size"):  # narrowed: build at the full width, then cut it the same way
        config = copy.deepcopy(config)
        config.hidden_size = shape["head_size"] * config.num_attention_heads
    model = AutoModelForSequenceClassification.from_config(config, **kwargs)
    if model.config.hidden_size != hidden:
        prune_hidden(model, list(range(hidden)))
    for i, entry in enumerate((shape or {}).get("layers", [])):
        layer = encoder_layers(model)[i]
        if entry["heads"] < num_heads(layer):
            prune_heads(model, i, list(range(entry["heads"])))
        if entry["ffn"] < ffn_width(layer):
            prune_ffn(model, i, list(range(entry["ffn"])))
        if "kept_heads" in entry:
            _track_mpnet_heads(_attention(layer)[0], entry["kept_heads"])
    return model


def encoder_flops(model, seq_len: int = 128) -> int:
    """Forward multiply-adds x 2 of the encoder layers for one sequence (embeddings and the
    classifier head excluded: they are lookups and a rounding error)."""
    hidden = model.config.hidden_size
    total = 0
    for layer in encoder_layers(model):
        sa = _attention(layer)[0]
        inner = sa.num_attention_heads * sa.attention_head_size
        total += 2 * seq_len * hidden * inner * 4  # q, k, v and the output projection
        total += 2 * seq_len * seq_len * inner * 2  # scores and the weighted sum of values
        total += 2 * seq_len * hidden * ffn_width(layer) * 2  # FFN in and out
    return total
