"""One adapter per model family: where its layers, attention, FFN and embeddings live.

Surgery, importance scores, FLOPs and the saved shape read a model only through its family's
adapter, so a family's quirks live here and nowhere else. An adapter names attribute paths, and
overrides a hook where the family needs more:

- the encoder layers, and per layer: the projections whose output rows are per head (q, k, v,
  or one fused qkv whose thirds each are), the output projection whose input columns are per
  head, the FFN's first projection (its rows are neurons; a gated FFN holds two halves) and its
  second (columns), and the attribute holding the layer's head count, if any;
- MPNet: one relative-position bias per head, shared by all layers: a layer that lost heads
  keeps the original indices of the heads it still has (`kept_heads`), and a pre-hook picks those
  bias columns;
- DeBERTa-v2/v3: a head's content and position projections go together; with `share_att_key` the
  position projections are q and k themselves, otherwise `pos_key_proj` / `pos_query_proj` are
  sliced as well; the pooler's width is its own config field;
- ModernBERT: fused Wqkv, gated MLP, alternating global and sliding-window attention (each kept
  layer keeps its kind: `config.layer_types` follows the layers kept) and no attention norm in
  layer 0 (a kept layer keeps the norm it has; the saved shape records it);
- the zero-layer student (`models.bag`): no layers at all, so shape, FLOPs and latency code see
  an empty layer list.

Models needing `trust_remote_code` are refused by design (see models.load): their code could
lay out anything.

To add a family: subclass `Family`, fill in the paths (check them against the family's modeling
file in transformers), override what differs, add it to FAMILIES, and add it to the tiny-model
tests in tests/models/test_families.py (removal equals masking, reload, ONNX parity).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from slimtune.errors import SlimtuneError


def _get(root, path: str):
    for part in path.split("."):
        root = getattr(root, part)
    return root


@dataclass(frozen=True)
class Part:
    """A weight that runs along units (heads or neurons): `module.weight` along `dim` (0 rows,
    1 columns) holds `parts` blocks of (units x unit size); the bias follows when `dim` is 0."""

    module: nn.Linear
    dim: int
    parts: int = 1


class Family:
    """The BERT layout; the default for the families that share it."""

    model_types: tuple[str, ...] = ()
    layers = "encoder.layer"
    """The encoder layers, from the base model (`model.<base_model_prefix>`)."""
    q, k, v = "attention.self.query", "attention.self.key", "attention.self.value"
    qkv: str | None = None
    """A fused projection holding q, k and v as thirds (then q, k, v are unused)."""
    extra_heads: tuple[str, ...] = ()
    """More projections whose rows are per head (skipped where the layer has none)."""
    o = "attention.output.dense"
    attention = "attention.self"
    """The module holding the head count and head size."""
    heads_attr: str | None = "num_attention_heads"
    head_size_attr = "attention_head_size"
    all_head_attr: str | None = "all_head_size"
    up, down, gated = "intermediate.dense", "output.dense", False
    ffn_config = "intermediate_size"
    embedding_norm = "embeddings.LayerNorm"
    """The LayerNorm over the token embeddings, from the base model (a zero-layer student copies it)."""

    default_lr: float | None = None
    """A default peak learning rate of the family's own, where the width rule (train.loop.auto_lr)
    does not fit it; None: the width rule."""
    ort_model_type = "bert"
    """ONNX Runtime's transformer optimiser to fuse the exported graph with (its `model_type`): its
    "bert" fuser is the one for encoders, RoBERTa, MPNet and DeBERTa included (their own names are
    not among its types); a family that needs another says so here."""

    label_layers = ("classifier.out_proj", "classifier")
    """Where the projection to the labels may be (RoBERTa-style heads nest it), first found wins."""

    def label_layer(self, model) -> nn.Linear | None:
        """The Linear whose outputs are the logits: its output runs along the labels, never the
        hidden width, even where the two sizes are equal."""
        for path in self.label_layers:
            try:
                module = _get(model, path)
            except AttributeError:
                continue
            if isinstance(module, nn.Linear):
                return module
        return None

    # -- limits
    padded_positions: tuple[str, ...] = ()
    """Model types whose position ids start after the pad id (RoBERTa's scheme): their table holds
    pad_token_id + 1 positions no token can use."""

    def positions_from_pad(self, config) -> bool:
        """Position ids count from the pad id (so the ids up to it must keep their numbers)."""
        return config.model_type in self.padded_positions

    def usable_positions(self, config) -> int:
        """The most tokens a text may have, special tokens included."""
        if self.positions_from_pad(config):
            return config.max_position_embeddings - (config.pad_token_id or 0) - 1
        return config.max_position_embeddings

    # -- where things are
    def base(self, model):
        return getattr(model, model.base_model_prefix)

    def layer_list(self, model) -> nn.ModuleList:
        return _get(self.base(model), self.layers)

    def set_layer_list(self, model, layers: list[nn.Module]) -> None:
        parent, _, name = self.layers.rpartition(".")
        setattr(_get(self.base(model), parent) if parent else self.base(model), name, nn.ModuleList(layers))
        model.config.num_hidden_layers = len(layers)

    def ffn_size(self, config) -> int:
        return getattr(config, self.ffn_config)

    def embedding_norm_of(self, model) -> nn.Module | None:
        base = self.base(model)
        return _get(base, self.embedding_norm) if _has(base, self.embedding_norm) else None

    # -- heads
    def head_size(self, layer) -> int:
        return getattr(_get(layer, self.attention), self.head_size_attr)

    def head_parts(self, layer) -> list[Part]:
        if self.qkv:
            rows = [Part(_get(layer, self.qkv), 0, 3)]
        else:
            rows = [Part(_get(layer, p), 0) for p in (self.q, self.k, self.v)]
            rows += [Part(_get(layer, p), 0) for p in self.extra_heads if _has(layer, p)]
        return rows + [Part(_get(layer, self.o), 1)]

    def num_heads(self, layer) -> int:
        first = self.head_parts(layer)[0]
        return first.module.weight.shape[0] // first.parts // self.head_size(layer)

    def set_heads(self, layer, keep: list[int]) -> None:
        """After the weights are sliced: the attributes that hold the head count."""
        module = _get(layer, self.attention)
        if self.heads_attr:
            setattr(module, self.heads_attr, len(keep))
        if self.all_head_attr:
            setattr(module, self.all_head_attr, len(keep) * self.head_size(layer))

    # -- FFN
    def ffn_parts(self, layer) -> list[Part]:
        return [Part(_get(layer, self.up), 0, 2 if self.gated else 1), Part(_get(layer, self.down), 1)]

    def ffn_width(self, layer) -> int:
        return _get(layer, self.down).in_features

    # -- the residual stream
    def readers(self, layer) -> list[nn.Linear]:
        """Projections that read the residual stream (their input columns are hidden dims)."""
        if self.qkv:
            names = [self.qkv]
        else:
            names = [self.q, self.k, self.v] + [p for p in self.extra_heads if _has(layer, p)]
        return [_get(layer, p) for p in names] + [_get(layer, self.up)]

    def writers(self, layer) -> list[nn.Linear]:
        """Projections that add to the residual stream (their output rows are hidden dims)."""
        return [_get(layer, self.o), _get(layer, self.down)]

    def narrow_config(self, config, width: int) -> None:
        config.hidden_size = width

    # -- what the config cannot say, saved beside the weights
    def layer_extra(self, model, index: int, layer) -> dict:
        """What a rebuild from the config would get wrong about this layer (empty: nothing)."""
        return {}

    def restore(self, model, shape: dict) -> None:
        """After a rebuild at the saved sizes: put back what `layer_extra` saved."""

    def after_keep_layers(self, model, kept: list[int]) -> None:
        """After layers were dropped (the list holds the kept ones, `kept` their old indices)."""


def _has(root, path: str) -> bool:
    try:
        _get(root, path)
        return True
    except AttributeError:
        return False


class Bert(Family):
    model_types = ("bert", "roberta", "xlm-roberta", "electra", "camembert")
    padded_positions = ("roberta", "xlm-roberta", "camembert")


class DistilBert(Family):
    model_types = ("distilbert",)
    layers = "transformer.layer"
    q, k, v, o = "attention.q_lin", "attention.k_lin", "attention.v_lin", "attention.out_lin"
    attention = "attention"
    heads_attr, all_head_attr = "n_heads", None
    up, down = "ffn.lin1", "ffn.lin2"
    ffn_config = "hidden_dim"


def _select_bias_heads(module, args, kwargs):
    """MPNet passes the shared (batch, heads, q, k) position bias as the third argument."""
    if len(args) >= 3 and args[2] is not None:
        args = (*args[:2], args[2].index_select(1, module.kept_heads), *args[3:])
    elif kwargs.get("position_bias") is not None:
        kwargs["position_bias"] = kwargs["position_bias"].index_select(1, module.kept_heads)
    return args, kwargs


class MPNet(Family):
    model_types = ("mpnet",)
    padded_positions = ("mpnet",)
    q, k, v, o = "attention.attn.q", "attention.attn.k", "attention.attn.v", "attention.attn.o"
    attention = "attention.attn"

    def set_heads(self, layer, keep: list[int]) -> None:
        sa = _get(layer, self.attention)
        before = sa.kept_heads.tolist() if hasattr(sa, "kept_heads") else list(range(sa.num_attention_heads))
        self._track(sa, [before[h] for h in keep])
        super().set_heads(layer, keep)

    @staticmethod
    def _track(sa, original: list[int]) -> None:
        if not hasattr(sa, "kept_heads"):
            sa.register_forward_pre_hook(_select_bias_heads, with_kwargs=True)
        sa.register_buffer("kept_heads", torch.tensor(original, dtype=torch.long), persistent=False)

    def layer_extra(self, model, index: int, layer) -> dict:
        sa = _get(layer, self.attention)
        return {"kept_heads": sa.kept_heads.tolist()} if hasattr(sa, "kept_heads") else {}

    def restore(self, model, shape: dict) -> None:
        for layer, entry in zip(self.layer_list(model), shape.get("layers", [])):
            if "kept_heads" in entry:
                self._track(_get(layer, self.attention), entry["kept_heads"])


class DebertaV2(Family):
    model_types = ("deberta-v2",)
    q, k, v = "attention.self.query_proj", "attention.self.key_proj", "attention.self.value_proj"
    # separate position projections (share_att_key off) are per head too; with it on, the
    # position terms go through q and k, which are sliced anyway
    extra_heads = ("attention.self.pos_key_proj", "attention.self.pos_query_proj")

    def narrow_config(self, config, width: int) -> None:
        if getattr(config, "pooler_hidden_size", None) == config.hidden_size:
            config.pooler_hidden_size = width  # the classification pooler is sized by its own field
        super().narrow_config(config, width)


class ModernBert(Family):
    model_types = ("modernbert",)
    layers = "layers"
    qkv, o = "attn.Wqkv", "attn.Wo"
    attention = "attn"
    heads_attr, head_size_attr, all_head_attr = None, "head_dim", None
    up, down, gated = "mlp.Wi", "mlp.Wo", True
    embedding_norm = "embeddings.norm"

    def layer_extra(self, model, index: int, layer) -> dict:
        # layer 0 is built without an attention norm; once the original layer 0 is dropped, the
        # new first layer has one, and a rebuild must give it back. The kinds of attention are
        # in config.layer_types, which the rebuild reads.
        return {"attn_norm": True} if index == 0 and not isinstance(layer.attn_norm, nn.Identity) else {}

    def after_keep_layers(self, model, kept: list[int]) -> None:
        layers = self.layer_list(model)
        model.config.layer_types = [layer.attention_type for layer in layers]
        for i, layer in enumerate(layers):
            layer.layer_idx = layer.attn.layer_idx = i

    def restore(self, model, shape: dict) -> None:
        config = model.config
        for layer, entry in zip(self.layer_list(model), shape.get("layers", [])):
            if entry.get("attn_norm") and isinstance(layer.attn_norm, nn.Identity):
                layer.attn_norm = nn.LayerNorm(config.hidden_size, eps=config.norm_eps, bias=config.norm_bias)


class Bag(Family):
    """The zero-layer student (models.bag): embeddings, a masked mean and a head, no encoder layers.
    Whatever walks the layers finds none; cutting or adding layers has nothing to act on."""

    model_types = ("slimtune-bag",)
    embedding_norm = "norm"

    @property
    def default_lr(self) -> float:
        from slimtune.models.bag import BAG_LR  # embeddings and a head: far larger steps than an encoder

        return BAG_LR

    def base(self, model):
        return model  # no base model inside: the embeddings sit on the classifier itself

    def layer_list(self, model) -> nn.ModuleList:
        return nn.ModuleList()

    def set_layer_list(self, model, layers: list[nn.Module]) -> None:
        raise SlimtuneError("layers: a zero-layer student has no layers to keep or drop; cut the teacher instead")


FAMILIES: tuple[Family, ...] = (Bert(), DistilBert(), MPNet(), DebertaV2(), ModernBert(), Bag())


def family_lr(config) -> float | None:
    """The family's own default learning rate, or None (an unknown family too: the width rule)."""
    try:
        return family_of(config).default_lr
    except SlimtuneError:
        return None


def supported() -> list[str]:
    return sorted(t for f in FAMILIES for t in f.model_types)


def family_of(config_or_model) -> Family:
    """The adapter of a model or config; an unknown family fails at once with the supported ones."""
    config = getattr(config_or_model, "config", config_or_model)
    model_type = getattr(config, "model_type", None)
    for family in FAMILIES:
        if model_type in family.model_types:
            return family
    raise SlimtuneError(f"model family '{model_type}' is not supported; supported: {', '.join(supported())}")
