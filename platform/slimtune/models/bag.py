"""The zero-layer student: the base's token embeddings, a masked mean over the tokens, a small head.

A transformer cut to no layers cannot pool its first token: without attention, position 0 only
ever sees [CLS]. So the zero-layer student is its own model: each token's embedding (the base's
word-embedding table, after whatever vocabulary cut the candidate applies; optionally the base's
embedding LayerNorm, per token), their mean over real tokens (`attention_mask`), then dropout,
Linear(hidden, hidden), GELU, dropout, Linear(hidden, labels). It is a bag of embeddings: the
speed and size of a linear model, started from embeddings that already place words by meaning,
and distilled from the teacher's logits like any student.

It is a transformers model (`slimtune-bag`), registered with AutoConfig and
AutoModelForSequenceClassification when this module is imported (slimtune's loaders import it),
so saving, loading, the training loop, ONNX export and the bundle runtime treat it like the
others; its family adapter (`models.families.Bag`) has no layers, so shape, size, FLOPs and the
latency model see a model of zero layers.
"""

from __future__ import annotations

import torch
from huggingface_hub.dataclasses import strict
from torch import nn
from transformers import AutoConfig, AutoModelForSequenceClassification, PreTrainedConfig, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput

MODEL_TYPE = "slimtune-bag"
BAG_LR = 5e-3
"""Default peak learning rate of a zero-layer student: only embeddings and a head learn, and they
want far larger steps than an encoder; search_spaces/full.py samples 3e-3 to 1e-2 for it."""


@strict
class BagConfig(PreTrainedConfig):
    """The zero-layer student's sizes; the layer fields are zero so code that reads a shape from a
    config (TeacherInfo, the graph optimiser's head count) reads a model without layers."""

    model_type = MODEL_TYPE

    vocab_size: int = 30522
    hidden_size: int = 384
    """Width of the token embeddings, the pooled vector and the head's inner layer."""
    embedding_norm: bool = True
    """LayerNorm each token's embedding (the base's own embedding norm, copied)."""
    norm_bias: bool = True
    """Whether that LayerNorm has a bias (ModernBERT's has none)."""
    layer_norm_eps: float = 1e-12
    classifier_dropout: float = 0.1
    initializer_range: float = 0.02
    max_position_embeddings: int = 512
    """The base's: no position table here, but tokenizers and callers bound texts by it."""
    num_hidden_layers: int = 0
    num_attention_heads: int = 0
    intermediate_size: int = 0
    pad_token_id: int | None = 0


class BagForSequenceClassification(PreTrainedModel):
    """Embeddings, masked mean, head; returns logits like any sequence classifier."""

    config_class = BagConfig
    config: BagConfig
    base_model_prefix = "bag"  # no base model inside: `model.base_model` is the model itself
    main_input_name = "input_ids"
    _input_embed_layer = "word_embeddings"

    def __init__(self, config: BagConfig):
        super().__init__(config)
        width = config.hidden_size
        self.word_embeddings = nn.Embedding(config.vocab_size, width, padding_idx=config.pad_token_id)
        self.norm = (nn.LayerNorm(width, eps=config.layer_norm_eps, bias=config.norm_bias)
                     if config.embedding_norm else nn.Identity())
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.dense = nn.Linear(width, width)
        self.activation = nn.GELU()
        self.classifier = nn.Linear(width, config.num_labels)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.word_embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.word_embeddings = value

    def forward(self, input_ids, attention_mask=None, labels=None, output_hidden_states: bool = False,
                **_) -> SequenceClassifierOutput:
        # token_type_ids, output_attentions and the like mean nothing without layers
        tokens = self.norm(self.word_embeddings(input_ids))
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        weight = attention_mask.unsqueeze(-1).to(tokens.dtype)
        pooled = (tokens * weight).sum(1) / weight.sum(1).clamp_min(1.0)  # an all-padding row gives zeros
        hidden = self.activation(self.dense(self.dropout(pooled)))
        logits = self.classifier(self.dropout(hidden))
        loss = None
        if labels is not None:
            loss = (nn.functional.mse_loss(logits.squeeze(-1), labels.float()) if self.config.num_labels == 1
                    else nn.functional.cross_entropy(logits, labels))
        # hidden_states[0] is the embeddings, as in every HF encoder; there are no layer outputs after it
        return SequenceClassifierOutput(loss=loss, logits=logits,
                                        hidden_states=(tokens,) if output_hidden_states else None)


AutoConfig.register(MODEL_TYPE, BagConfig, exist_ok=True)
AutoModelForSequenceClassification.register(BagConfig, BagForSequenceClassification, exist_ok=True)


def bag_from(model, seed: int | None = None) -> BagForSequenceClassification:
    """A zero-layer student from a loaded classifier (the teacher or another base): a copy of its
    word embeddings and, where it has one of the embeddings' width, of its embedding LayerNorm;
    labels and special token ids kept; a new head (seeded by `seed` when given)."""
    from slimtune.models.families import family_of

    source = model.config
    table = model.get_input_embeddings()
    width = table.embedding_dim
    norm = family_of(model).embedding_norm_of(model)
    # a norm over another width sits after a projection (ELECTRA, DeBERTa with embedding_size): skip it
    norm = norm if isinstance(norm, nn.LayerNorm) and tuple(norm.normalized_shape) == (width,) else None
    config = BagConfig(
        vocab_size=table.num_embeddings, hidden_size=width, embedding_norm=norm is not None,
        norm_bias=norm is None or norm.bias is not None, layer_norm_eps=norm.eps if norm is not None else 1e-12,
        initializer_range=getattr(source, "initializer_range", 0.02),
        max_position_embeddings=getattr(source, "max_position_embeddings", 512),
        pad_token_id=source.pad_token_id, id2label=dict(source.id2label), label2id=dict(source.label2id),
        **{k: getattr(source, k) for k in ("bos_token_id", "eos_token_id", "sep_token_id", "cls_token_id")
           if isinstance(getattr(source, k, None), int)},
    )
    if seed is not None:
        torch.manual_seed(seed)
    bag = BagForSequenceClassification(config)
    with torch.no_grad():
        bag.word_embeddings.weight.copy_(table.weight)
        if norm is not None:
            bag.norm.load_state_dict(norm.state_dict())
    return bag.to(table.weight.device)
