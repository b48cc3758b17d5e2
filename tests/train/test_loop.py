"""The plain loop learns a real (tiny) task, keeps the best epoch, and is seeded."""

import pytest

from tests.helpers import build_tiny_bert, tiny_splits
from slimtune.data.tokenize import PadCollator
from slimtune.errors import SlimtuneError
from slimtune.train.loop import LOSS_TIE_MARGIN, TrainSpec, auto_lr, evaluate, improved, train


@pytest.fixture(scope="module")
def splits():
    return tiny_splits(200, 160, seed=1)


def _fit(splits, **kw):
    tok, train_split, val_split = splits
    model = build_tiny_bert(vocab_size=len(tok))
    spec = TrainSpec(**{"epochs": 4, "batch_size": 16, "lr": 3e-3, "log_every": 100, **kw})
    result = train(model, train_split, val_split, spec, num_labels=2, pad_token_id=tok.pad_token_id)
    return model, result


def test_learns_and_keeps_best_epoch(splits):
    tok, _, val_split = splits
    model, result = _fit(splits)
    assert result.best_metrics["accuracy"] >= 0.9
    assert len(result.history) == 4 and result.steps == 40
    best = result.history[result.best_epoch - 1]
    assert best["val_accuracy"] == max(row["val_accuracy"] for row in result.history)
    # the returned model holds the best epoch's weights, not the last epoch's
    again = evaluate(model, val_split, 2, tok.pad_token_id)
    assert again["accuracy"] == result.best_metrics["accuracy"]
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


def test_seeded(splits):
    _, a = _fit(splits, epochs=1)
    _, b = _fit(splits, epochs=1)
    assert a.history[0]["train_loss"] == b.history[0]["train_loss"]


def test_max_steps_stops_early(splits):
    _, result = _fit(splits, epochs=3, max_steps=5, log_every=1)
    assert result.steps == 5 and len(result.step_seconds) == 5


def test_dynamic_padding_pads_to_batch_longest():
    batch = PadCollator(0)([([5, 6, 7], 1, 0), ([5], 0, 1)])
    assert batch["input_ids"].tolist() == [[5, 6, 7], [5, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["index"].tolist() == [0, 1]


def test_a_tie_at_a_lower_validation_loss_is_progress(splits):
    """Validation accuracy ties at 1.0 from epoch 3 while the loss keeps falling: patience goes on
    and keeps the epoch of the lowest loss; counted as no progress it stopped at epoch 4, keeping 3."""
    _, result = _fit(splits, epochs=6, patience=1)
    top = [row for row in result.history if row["val_accuracy"] == 1.0]
    assert len(top) >= 3 and len(result.history) == 6 and not result.stopped_early
    assert result.best_epoch == 6 and result.best_metrics["loss"] == min(row["val_loss"] for row in top)
    assert improved(0.9, 0.5, 0.8, 0.1) and not improved(0.8, 0.01, 0.9, 0.5)  # the metric comes first
    assert improved(0.9, 0.5 * (1 - 2 * LOSS_TIE_MARGIN), 0.9, 0.5)
    assert not improved(0.9, 0.5 * (1 - LOSS_TIE_MARGIN / 2), 0.9, 0.5)  # lower by noise: a tie stays a tie
    assert improved(0.5, 1.0, float("-inf"), None)


def test_validation_loss_is_the_mean_cross_entropy(splits):
    import torch
    import torch.nn.functional as F

    tok, _, val_split = splits
    model = build_tiny_bert(vocab_size=len(tok)).eval()
    scored = evaluate(model, val_split, 2, tok.pad_token_id, batch_size=7)
    with torch.no_grad():
        each = [F.cross_entropy(model(input_ids=torch.tensor([ids])).logits, torch.tensor([label])).item()
                for ids, label, _ in (val_split[i] for i in range(len(val_split)))]
    assert scored["loss"] == pytest.approx(sum(each) / len(each), rel=1e-5)


def test_auto_lr_by_width_and_recorded(splits):
    assert auto_lr(384) == 2e-4 and auto_lr(768) == 5e-5
    _, result = _fit(splits, epochs=1, lr=None)  # hidden 32: the small-model rate, and the record says so
    assert result.lr == auto_lr(32) == 2e-4


def test_spec_checks_name_the_flag():
    with pytest.raises(SlimtuneError, match="--epochs"):
        TrainSpec(epochs=0)
    with pytest.raises(SlimtuneError, match="--lr"):
        TrainSpec(lr=5.0)


def test_eval_is_padding_invariant(splits):
    """Length-sorted evaluation batches must score exactly like one example at a time."""
    tok, _, val_split = splits
    model = build_tiny_bert(vocab_size=len(tok)).eval()
    batched = evaluate(model, val_split, 2, tok.pad_token_id, batch_size=64)
    single = evaluate(model, val_split, 2, tok.pad_token_id, batch_size=1)
    assert batched["confusion"] == single["confusion"]
    assert sum(map(sum, batched["confusion"])) == len(val_split)  # every example scored once


def test_patience_stops_at_the_plateau_and_keeps_the_best_epoch(splits):
    """At a learning rate too small to move validation accuracy, epoch 1 stays the best: patience p
    stops after epoch 1 + p, while the same run without patience takes every epoch."""
    _, full = _fit(splits, epochs=4, lr=1e-9)
    assert len(full.history) == 4 and not full.stopped_early
    for patience in (1, 2):
        _, result = _fit(splits, epochs=4, lr=1e-9, patience=patience)
        assert result.stopped_early and result.best_epoch == 1
        assert len(result.history) == 1 + patience
        assert [r["val_accuracy"] for r in result.history] == [r["val_accuracy"] for r in full.history[: 1 + patience]]
    _, learning = _fit(splits, epochs=2, patience=1)  # improving runs are not cut short
    assert len(learning.history) == 2 and not learning.stopped_early
    with pytest.raises(SlimtuneError, match="--patience"):
        TrainSpec(patience=0)


def test_the_loop_trains_in_bf16_on_a_cpu_with_amx(splits, monkeypatch):
    """bf16 autocast where the CPU multiplies bf16 (AMX); fp32 where it does not, when the spec or
    SLIMTUNE_CPU_BF16=0 switches it off; the teacher's cached logits are keyed by that precision."""
    import torch
    import torch.nn.functional as F

    import slimtune.train.loop as loop
    from slimtune.distillation.cache import teacher_key

    tok, train_split, val_split = splits
    seen = []

    def loss_fn(model, batch):
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        seen.append(logits.dtype)
        return F.cross_entropy(logits.float(), batch["labels"])

    def dtypes(bf16: bool = True) -> set:
        seen.clear()
        spec = TrainSpec(epochs=1, batch_size=16, lr=3e-3, log_every=100, max_steps=2, bf16=bf16)
        train(build_tiny_bert(vocab_size=len(tok)), train_split, val_split, spec, num_labels=2,
              pad_token_id=tok.pad_token_id, loss_fn=loss_fn)
        return set(seen)

    monkeypatch.setenv(loop.CPU_BF16_ENV, "1")
    monkeypatch.setattr(loop, "cpu_has_amx", lambda: False)
    assert dtypes() == {torch.float32}
    fp32_key = teacher_key("some/teacher")
    monkeypatch.setattr(loop, "cpu_has_amx", lambda: True)  # what this machine's CPU has
    assert dtypes() == {torch.bfloat16}
    assert dtypes(bf16=False) == {torch.float32}
    assert teacher_key("some/teacher") != fp32_key
    with loop.autocast("cpu"):
        assert torch.nn.Linear(4, 4)(torch.ones(1, 4)).dtype == torch.bfloat16
    monkeypatch.setenv(loop.CPU_BF16_ENV, "0")
    assert dtypes() == {torch.float32} and teacher_key("some/teacher") == fp32_key
