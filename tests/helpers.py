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


# ---- one tiny model and tokenizer per family (tests/models/test_families.py, the CLI chain) ----

FAMILY_TOKENIZER = {  # the tokenizer kind each family ships with, and its special tokens
    "bert": ("wordpiece", "[CLS]", "[SEP]", "[PAD]", "[UNK]", "[MASK]"),
    "electra": ("wordpiece", "[CLS]", "[SEP]", "[PAD]", "[UNK]", "[MASK]"),
    "distilbert": ("wordpiece", "[CLS]", "[SEP]", "[PAD]", "[UNK]", "[MASK]"),
    "mpnet": ("wordpiece", "<s>", "</s>", "<pad>", "[UNK]", "<mask>"),
    "roberta": ("bpe", "<s>", "</s>", "<pad>", "<unk>", "<mask>"),
    "modernbert": ("bpe", "[CLS]", "[SEP]", "[PAD]", "[UNK]", "[MASK]"),
    "xlm-roberta": ("unigram", "<s>", "</s>", "<pad>", "<unk>", "<mask>"),
    "deberta-v2": ("unigram", "[CLS]", "[SEP]", "[PAD]", "[UNK]", "[MASK]"),
}
FAMILIES = tuple(FAMILY_TOKENIZER)


def build_family_tokenizer(family: str):
    """A fast tokenizer of the family's kind (WordPiece, byte-level BPE or Unigram), trained here on
    the task's words, with the family's special tokens; the pad token gets id 0... except where the
    family puts it elsewhere (RoBERTa, XLM-R: <s>=0, <pad>=1), as their real tokenizers do."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    kind, cls, sep, pad, unk, mask = FAMILY_TOKENIZER[family]
    specials = [cls, pad, sep, unk, mask] if cls == "<s>" else [pad, unk, cls, sep, mask]
    words = POSITIVE + NEGATIVE + FILLER
    corpus = [" ".join(random.Random(i).sample(words, 6)) for i in range(300)]
    if kind == "wordpiece":
        tok = Tokenizer(models.WordPiece(unk_token=unk))
        tok.normalizer = normalizers.BertNormalizer(lowercase=True)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        trainer = trainers.WordPieceTrainer(vocab_size=120, special_tokens=specials)
        tok.decoder = decoders.WordPiece()
    elif kind == "bpe":
        tok = Tokenizer(models.BPE(unk_token=None))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=specials,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        tok.decoder = decoders.ByteLevel()
    else:
        tok = Tokenizer(models.Unigram())
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        trainer = trainers.UnigramTrainer(vocab_size=120, special_tokens=specials, unk_token=unk)
        tok.decoder = decoders.Metaspace()
    tok.train_from_iterator(corpus, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{cls} $A {sep}", special_tokens=[(cls, tok.token_to_id(cls)), (sep, tok.token_to_id(sep))])
    return PreTrainedTokenizerFast(tokenizer_object=tok, cls_token=cls, sep_token=sep, pad_token=pad,
                                   unk_token=unk, mask_token=mask, bos_token=cls, eos_token=sep)


def family_config(family: str, vocab_size: int, num_labels: int = 2, pad_token_id: int = 0, layers: int = 3,
                  share_att_key: bool = True):
    """A tiny config (hidden 32, 4 heads, FFN 64, `layers` layers); initialised wide enough that
    logits are of order 1, so differences measured against them mean something."""
    import transformers as t

    common = dict(vocab_size=vocab_size, num_labels=num_labels, pad_token_id=pad_token_id, initializer_range=0.2)
    bert_like = dict(hidden_size=32, num_hidden_layers=layers, num_attention_heads=4, intermediate_size=64,
                     max_position_embeddings=80, **common)
    if family == "bert":
        return t.BertConfig(**bert_like)
    if family == "roberta":
        return t.RobertaConfig(**bert_like)
    if family == "xlm-roberta":
        return t.XLMRobertaConfig(**bert_like)
    if family == "electra":
        return t.ElectraConfig(embedding_size=16, **bert_like)  # embeddings narrower, projected up
    if family == "mpnet":
        return t.MPNetConfig(relative_attention_num_buckets=32, **bert_like)
    if family == "distilbert":
        return t.DistilBertConfig(dim=32, n_layers=layers, n_heads=4, hidden_dim=64, max_position_embeddings=80,
                                  seq_classif_dropout=0.1, **common)
    if family == "deberta-v2":
        return t.DebertaV2Config(relative_attention=True, pos_att_type=["p2c", "c2p"], position_buckets=16,
                                 max_relative_positions=-1, norm_rel_ebd="layer_norm", share_att_key=share_att_key,
                                 position_biased_input=False, type_vocab_size=0, **bert_like)
    if family == "modernbert":
        return t.ModernBertConfig(hidden_size=32, num_hidden_layers=layers, num_attention_heads=4,
                                  intermediate_size=64, max_position_embeddings=80, global_attn_every_n_layers=2,
                                  local_attention=8, classifier_pooling="mean", bos_token_id=None, eos_token_id=None,
                                  cls_token_id=None, sep_token_id=None, **common)
    raise ValueError(family)


def build_family_model(family: str, vocab_size: int = 120, seed: int = 0, **kwargs):
    import torch
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(seed)
    return AutoModelForSequenceClassification.from_config(family_config(family, vocab_size, **kwargs)).eval()


def prune_uneven(model, heads: dict[int, list[int]], ffn: dict[int, list[int]]):
    """A pruned copy: layer i keeps heads[i] and FFN neurons ffn[i] (uneven shapes on purpose)."""
    import copy

    from slimtune.models.surgery import prune_ffn, prune_heads

    pruned = copy.deepcopy(model)
    for i in heads:
        prune_heads(pruned, i, heads[i])
        prune_ffn(pruned, i, ffn[i])
    return pruned
