"""Vocabulary pruning: a text whose pieces were all kept tokenizes to the same pieces and gets the
same logits; the embedding table and the tokenizer shrink together; for WordLevel (the tiny test
tokenizer) here, and for Unigram and BPE tokenizers trained on the built-in 20news texts."""

import pytest
import torch

from slimtune.models.vocab import coverage, kept_ids, prune_vocab, used_ids
from tests.helpers import build_tiny_bert, build_tokenizer, make_texts


def _encode(tok, texts):
    from slimtune.data.tokenize import encode

    return encode(texts, [0] * len(texts), tok, 64)


def _logits(model, tok, texts):
    batch = tok(texts, padding=True, truncation=True, max_length=64, return_tensors="pt", return_token_type_ids=False)
    with torch.no_grad():
        return model.eval()(**batch).logits


def _check_same(model, tok, new_model, new_tok, texts):
    """Texts whose pieces were all kept: the same pieces, the same logits (to float rounding)."""
    for text in texts:
        assert new_tok.tokenize(text) == tok.tokenize(text), text
    assert torch.allclose(_logits(model, tok, texts), _logits(new_model, new_tok, texts), atol=1e-5, rtol=1e-5)


def test_wordlevel_prune_keeps_tokenization_and_logits():
    import copy

    tok = build_tokenizer()
    model = build_tiny_bert(vocab_size=len(tok))
    frame = make_texts(60, seed=3)
    seen = [t for t in frame["text"] if "golden" not in t and "storm" not in t]  # two words never seen
    keep = kept_ids(tok, used_ids([_encode(tok, seen)]))
    assert tok.convert_tokens_to_ids("golden") not in keep and tok.pad_token_id in keep
    new_model, new_tok = prune_vocab(copy.deepcopy(model), tok, keep)
    assert len(new_tok) == len(keep) == new_model.config.vocab_size < len(tok)
    assert new_model.get_input_embeddings().weight.shape[0] == len(keep)
    _check_same(model, tok, new_model, new_tok, seen[:20])
    other = coverage(new_tok, ["a golden storm today"], 64)  # unseen words become the unknown piece
    assert other["unknown_share"] == pytest.approx(2 / 4)


@pytest.fixture(scope="module")
def news_and_tweets():
    from slimtune.data import DataSpec, load_data

    news = load_data(DataSpec("builtin:20news"))
    tweets = load_data(DataSpec("builtin:tweets", max_train_samples=2000))
    return list(news.train["text"]), tweets


def _trained(kind: str, texts: list[str]):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    if kind == "unigram":
        tok = Tokenizer(models.Unigram())
        trainer = trainers.UnigramTrainer(vocab_size=30000, special_tokens=specials, unk_token="[UNK]")
    else:
        tok = Tokenizer(models.BPE(unk_token="[UNK]"))
        trainer = trainers.BpeTrainer(vocab_size=30000, special_tokens=specials)
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(texts, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))])
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]")


@pytest.mark.assets
@pytest.mark.slow
@pytest.mark.parametrize("kind", ["unigram", "bpe"])
def test_unigram_and_bpe_shrink_and_predict_as_before(news_and_tweets, kind):
    import copy

    from slimtune.models.load import num_parameters

    news, tweets = news_and_tweets
    tok = _trained(kind, news)
    assert len(tok) >= 25000
    model = build_tiny_bert(vocab_size=len(tok))
    train = _encode(tok, list(tweets.train["text"]))
    keep = kept_ids(tok, used_ids([train]))
    new_model, new_tok = prune_vocab(copy.deepcopy(model), tok, keep)
    assert len(tok) / len(new_tok) >= 3 and num_parameters(model) / num_parameters(new_model) >= 3
    kept = set(keep)  # by id: a character outside the vocabulary is the unknown piece, kept
    covered = [t for t in tweets.test["text"] if set(tok(t)["input_ids"]) <= kept]
    print(f"\n{kind}: {len(tok):,} -> {len(new_tok):,} pieces ({len(tok) / len(new_tok):.1f}x), model parameters "
          f"{num_parameters(model) / num_parameters(new_model):.1f}x fewer; {len(covered)} of {len(tweets.test['text'])} "
          "test tweets keep all their pieces")  # README, Measured here: `pytest -s ... -k unigram_and_bpe`
    assert len(covered) >= 100
    covered = covered[:200]
    _check_same(model, tok, new_model, new_tok, covered)


def test_the_pad_id_keeps_ids_below_it_only_where_positions_count_from_it():
    """ModernBERT's pad id sits at the end of its table (50283 of 50368) and its positions do not
    count from it: the cut keeps what the data uses plus the specials, not every id below the pad."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    from slimtune.models.vocab import prune_to_data
    from tests.helpers import build_family_model

    words = [f"w{i}" for i in range(200)]
    vocab = {"[UNK]": 0, "[CLS]": 1, "[SEP]": 2, **{w: i + 3 for i, w in enumerate(words)}, "[MASK]": 203, "[PAD]": 204}
    raw = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    raw.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    raw.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 1), ("[SEP]", 2)])
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, cls_token="[CLS]", sep_token="[SEP]", pad_token="[PAD]",
                                  unk_token="[UNK]", mask_token="[MASK]")
    texts = ["w1 w2 w3", "w3 w4 w5"]
    train = _encode(tok, texts)
    specials = 5  # [UNK] [CLS] [SEP] [MASK] [PAD]
    model = build_family_model("modernbert", vocab_size=len(tok), pad_token_id=tok.pad_token_id)
    _, new_tok, record = prune_to_data(model, tok, train)
    assert record["vocab_size"] == 5 + specials and new_tok(texts[1])["input_ids"] == [1, 5, 6, 7, 2]
    # where positions count from the pad id (RoBERTa, XLM-R, MPNet) every id up to it stays
    assert len(kept_ids(tok, used_ids([train]), positions_from_pad=True)) == 205
