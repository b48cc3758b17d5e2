"""head_tail truncation: one function cuts long texts in training and in the torch-free runtime, for a
BERT-style ([CLS] ... [SEP]) and an MPNet-style (<s> ... </s>) tokenizer; a bundle records it and
gives PyTorch's predictions on texts longer than its limit."""

import json

import numpy as np
import pytest
import torch

from slimtune.data.tokenize import encode
from slimtune.data.truncation import encode_ids, head_tail_ids
from tests.helpers import build_family_model, build_family_tokenizer, make_texts

LIMIT = 12


def _long_texts():
    frame = make_texts(24, seed=4)
    # texts of 2 to 4 of the task's texts end to end: 20 to 40 words, well past LIMIT tokens
    return [" ".join(frame["text"][i : i + 2 + i % 3]) for i in range(0, 24, 2)] + ["sunny day"]


def test_head_tail_keeps_a_quarter_from_the_start_and_the_rest_from_the_end():
    body = list(range(100))
    assert head_tail_ids(body, 20) == list(range(5)) + list(range(85, 100))
    assert head_tail_ids(body[:15], 20) == body[:15]


@pytest.mark.parametrize("family", ["bert", "mpnet"])
def test_training_and_runtime_cut_alike_and_the_bundle_matches_pytorch(family, tmp_path):
    from tokenizers import Tokenizer

    from slimtune.data import DataSpec
    from slimtune.exporting.bundle import ExportSpec, run_export
    from slimtune.exporting.runtime import Bundle
    from slimtune.models.load import provenance, save_model

    tok = build_family_tokenizer(family)
    texts = _long_texts()
    head = encode(texts, [0] * len(texts), tok, LIMIT).input_ids
    cut = encode(texts, [0] * len(texts), tok, LIMIT, "head_tail").input_ids
    whole = tok(texts)["input_ids"]
    for h, c, w in zip(head, cut, whole):
        assert len(c) == min(LIMIT, len(w)) and c[0] == w[0] and c[-1] == w[-1]  # the family's specials
        if len(w) > LIMIT:
            body = LIMIT - 2
            assert c[1:-1] == w[1 : 1 + body // 4] + w[len(w) - 1 - (body - body // 4) : -1]
            assert c != h  # not what head truncation gives
        else:
            assert c == w
    assert encode_ids(tok, texts, LIMIT, "head") == head
    # a tokenizer as the runtime loads it, from the bundle's tokenizer.json
    tok.save_pretrained(tmp_path / "tok")
    runtime_tok = Tokenizer.from_file(str(tmp_path / "tok" / "tokenizer.json"))
    assert encode_ids(runtime_tok, texts, LIMIT, "head_tail") == cut

    model = build_family_model(family, vocab_size=len(tok), pad_token_id=tok.pad_token_id).eval()
    model.config.id2label, model.config.label2id = {0: "neg", 1: "pos"}, {"neg": 0, "pos": 1}
    data = type("D", (), {"label_names": ("neg", "pos"), "fingerprint": "", "truncation": "head_tail"})()
    save_model(model, tok, tmp_path / "model", provenance("tiny", data, LIMIT))
    run_export(ExportSpec(str(tmp_path / "model"), str(tmp_path / "bundle"), seq=LIMIT, optimize=False, int8=False))
    bundle = Bundle(tmp_path / "bundle")
    assert json.loads((tmp_path / "bundle" / "manifest.json").read_text())["truncation"] == "head_tail"
    with torch.no_grad():
        expected = np.stack([model(input_ids=torch.tensor([ids])).logits[0].numpy() for ids in cut])
    np.testing.assert_allclose(bundle.logits(texts), expected, atol=1e-4)
    assert [bundle.classify(t) for t in texts] == list(expected.argmax(-1))
    assert DataSpec("builtin:tweets", truncation="head_tail").truncation == "head_tail"
