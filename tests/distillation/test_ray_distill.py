"""Distillation runs on Ray Train unchanged: the loss hook and the cached logits travel along."""

import pytest

from slimtune.distillation.cache import compute_logits
from slimtune.distillation.losses import DistillLoss, DistillModule, LossSpec
from slimtune.train.loop import TrainSpec
from tests.helpers import build_tiny_bert, tiny_splits

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def test_distill_on_two_workers(ray_cluster, tmp_path):
    from slimtune.train.ray_train import fit_on_ray

    tok, train_split, val_split = tiny_splits(160, 128, seed=3)
    teacher = build_tiny_bert(vocab_size=len(tok)).eval()
    logits = compute_logits(teacher, train_split, tok.pad_token_id)
    module = DistillModule(build_tiny_bert(vocab_size=len(tok)), 32, LossSpec(), [0, 1])
    loss_fn = DistillLoss(LossSpec(alpha=0.2), [0, 1], teacher_logits=logits)
    module, record, _ = fit_on_ray(module, train_split, val_split, TrainSpec(epochs=4, batch_size=16, lr=3e-3),
                                   num_labels=2, pad_token_id=tok.pad_token_id, workers=2, use_gpu=False,
                                   storage=tmp_path, loss_fn=loss_fn, name="distill")
    assert len(record.history) == 4 and record.steps == 32
    assert record.best_metrics["accuracy"] >= 0.8
