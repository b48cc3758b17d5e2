"""The distillation path with an MPNet teacher (tiny config): into a BERT student and into a
random MPNet student, logits plus hidden states."""

import dataclasses

import pytest
import torch
from safetensors.torch import load_file

from slimtune.data import DataSpec
from slimtune.distillation import DistillSpec, LossSpec, run_distill
from slimtune.train.loop import TrainSpec
from tests.helpers import build_tokenizer


@pytest.fixture(scope="module")
def mpnet_teacher(tmp_path_factory):
    from transformers import MPNetConfig, MPNetForSequenceClassification

    torch.manual_seed(0)
    tok = build_tokenizer()
    config = MPNetConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                         intermediate_size=64, max_position_embeddings=80, relative_attention_num_buckets=32,
                         num_labels=2, id2label={0: "neg", 1: "pos"}, label2id={"neg": 0, "pos": 1},
                         pad_token_id=tok.pad_token_id)
    folder = tmp_path_factory.mktemp("mpnet")
    MPNetForSequenceClassification(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("student", ["bert-folder", "random:layers=1,hidden=16,heads=2,ffn=32"])
def test_mpnet_teacher(mpnet_teacher, tiny_model_dir, texts_csv, tmp_path, student, monkeypatch):
    monkeypatch.setenv("SLIMTUNE_CACHE", str(tmp_path / "cache"))
    spec = DistillSpec(
        teacher=str(mpnet_teacher),
        student=str(tiny_model_dir) if student == "bert-folder" else student,
        data=DataSpec(str(texts_csv)), out=str(tmp_path / "out"),
        loss=LossSpec(hidden_weight=1.0), train=TrainSpec(epochs=1, batch_size=16, lr=1e-3), max_length=32, workers=0,
    )
    metrics = run_distill(spec)
    assert {"accuracy", "f1_macro", "num_parameters", "encoder_flops", "size_mb"} <= set(metrics)
    assert metrics["teacher"]["num_parameters"] > 0
    assert (tmp_path / "out" / "model" / "model.safetensors").exists()
    assert list((tmp_path / "cache" / "teacher_logits").glob("*/shard-*.safetensors"))
    # the hidden-state term took part: the same run with logits only has a smaller loss and
    # ends at other weights
    plain = run_distill(dataclasses.replace(spec, out=str(tmp_path / "plain"), loss=LossSpec(hidden_weight=0.0)))
    assert metrics["history"][0]["train_loss"] > plain["history"][0]["train_loss"] + 1e-3
    a = load_file(tmp_path / "out" / "model" / "model.safetensors")
    b = load_file(tmp_path / "plain" / "model" / "model.safetensors")
    assert any(not torch.equal(a[k], b[k]) for k in a)
