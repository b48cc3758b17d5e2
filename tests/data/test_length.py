"""The length a model reads when the user does not say: its own when it was fine-tuned here, else
the one covering 95% of the training texts, capped by the model's positions and on a CPU by 256."""

import json

import pandas as pd
from transformers import BertConfig

from slimtune.data.length import CPU_CAP, resolve_max_length
from tests.helpers import build_tokenizer, make_texts


class _Data:
    def __init__(self, texts):
        self.train = pd.DataFrame({"text": texts})
        self.truncation = "head"


def test_picked_from_the_data_capped_and_inherited(tmp_path):
    tok = build_tokenizer()
    short = _Data(list(make_texts(200)["text"]))  # 5 to 9 words: 7 to 11 tokens with [CLS] and [SEP]
    config = BertConfig(max_position_embeddings=512)
    assert resolve_max_length(None, str(tmp_path), short, tok, config) == 16  # 11, to a multiple of 8
    assert resolve_max_length(24, str(tmp_path), short, tok, config) == 24  # as set
    long = _Data([" ".join(make_texts(60, seed=i)["text"]) for i in range(40)])  # ~440 tokens each
    assert resolve_max_length(None, str(tmp_path), long, tok, config) == CPU_CAP
    assert resolve_max_length(None, str(tmp_path), long, tok, config, on_gpu=True) == 440  # no CPU cap on a GPU
    narrow = BertConfig(max_position_embeddings=300)
    assert resolve_max_length(None, str(tmp_path), long, tok, narrow, on_gpu=True) == 300  # the model's positions
    (tmp_path / "slimtune.json").write_text(json.dumps({"max_length": 96}))
    assert resolve_max_length(None, str(tmp_path), long, tok, config) == 96  # a fine-tuned model keeps its own
