"""The same loop on Ray Train: 2 workers with DDP over gloo, checkpoints, summed metrics."""

import pytest

from tests.helpers import build_tiny_bert, tiny_splits
from slimtune.train.loop import TrainSpec, evaluate

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def test_two_workers_learn_and_return_best_weights(ray_cluster, tmp_path):
    from slimtune.train.ray_train import fit_on_ray

    tok, train_split, val_split = tiny_splits(200, 160, seed=1)
    model = build_tiny_bert(vocab_size=len(tok))
    spec = TrainSpec(epochs=3, batch_size=16, lr=3e-3, log_every=100)
    model, record, startup = fit_on_ray(model, train_split, val_split, spec, num_labels=2,
                                        pad_token_id=tok.pad_token_id, workers=2, use_gpu=False,
                                        storage=tmp_path)
    assert len(record.history) == 3 and record.steps == 30  # global batch 16 = 2 x 8
    assert record.best_metrics["accuracy"] >= 0.9
    # metrics were summed over both workers' shards: they match a single-process evaluation
    assert evaluate(model, val_split, 2, tok.pad_token_id)["accuracy"] == record.best_metrics["accuracy"]
    assert startup > 0
    checkpoints = [p for p in tmp_path.glob("finetune-*/checkpoint_*") if p.is_dir()]
    assert len(checkpoints) == 1  # num_to_keep=1
    assert {p.name for p in checkpoints[0].iterdir()} >= {"model.safetensors", "best.safetensors", "optimizer.pt", "state.json"}
