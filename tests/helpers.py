"""Tiny, offline building blocks for tests: a learnable two-class text task, a word-level
tokenizer over its vocabulary, and a BERT of 2 layers and hidden 32 built from a config."""

from __future__ import annotations

import random

import pandas as pd

POSITIVE = ["sunny", "bright", "warm", "happy", "calm", "clear", "gentle", "golden"]
NEGATIVE = ["storm", "dark", "cold", "angry", "wild", "grey", "harsh", "bitter"]
FILLER = ["the", "a", "day", "was", "and", "very", "today", "it", "sky", "morning"]
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def make_texts(n: int, seed: int = 0) -> pd.DataFrame:
    """`n` short texts; label `pos` or `neg` is decided by which word list most words come from."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = "pos" if i % 2 == 0 else "neg"
        words = POSITIVE if label == "pos" else NEGATIVE
        text = [rng.choice(words) for _ in range(3)] + [rng.choice(FILLER) for _ in range(rng.randint(2, 6))]
        rng.shuffle(text)
        rows.append({"text": " ".join(text), "label": label})
    return pd.DataFrame(rows)


def build_tokenizer():
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIAL + POSITIVE + NEGATIVE + FILLER)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
        sep_token="[SEP]", mask_token="[MASK]",
    )


def build_tiny_bert(num_labels: int = 2, vocab_size: int = 64):
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, max_position_embeddings=64, num_labels=num_labels,
    )
    return BertForSequenceClassification(config)


def tiny_splits(n: int, n_train: int, seed: int = 0):
    """(tokenizer, train split, validation split) of `make_texts(n)`, encoded at 32 tokens."""
    from slimtune.data.tokenize import encode

    tok = build_tokenizer()
    frame = make_texts(n, seed=seed)
    labels = (frame["label"] == "pos").astype(int)
    train = encode(frame["text"][:n_train], labels[:n_train], tok, 32)
    val = encode(frame["text"][n_train:], labels[n_train:], tok, 32)
    return tok, train, val
