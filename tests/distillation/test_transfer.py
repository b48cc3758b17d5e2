"""The transfer set: unlabelled texts that students learn from through the teacher's logits alone.

Loading (rows beyond the cap, `--unlabeled` files, leaks into validation/test dropped), the loss
(no hard term for an unlabelled row), the sharded logits cache (a killed pass resumes, a grown set
computes only its new texts) and a distillation run that learns from it."""

import json

import pandas as pd
import pytest
import torch

from slimtune.data import DataSpec, load_data, subsample_train
from slimtune.data.tokenize import UNLABELED, encode, encode_data
from slimtune.distillation.cache import compute_logits, teacher_logits
from slimtune.distillation.losses import DistillLoss, DistillModule, LossSpec, logit_loss
from slimtune.errors import SlimtuneError
from tests.helpers import build_tiny_bert, build_tokenizer, make_texts


def test_unlabelled_rows_get_the_soft_loss_only():
    torch.manual_seed(0)
    s, t = torch.randn(4, 3), torch.randn(4, 3)
    hidden = torch.full((4,), UNLABELED)
    soft_only = logit_loss(s, t, torch.tensor([0, 2, 1, 1]), 2.0, 1.0)
    # every row unlabelled: the KL term alone, whatever alpha (a hard loss would raise it or make it nan)
    assert torch.allclose(logit_loss(s, t, hidden, 2.0, 0.5), soft_only)
    assert torch.allclose(logit_loss(s, t, hidden, 2.0, 0.0), soft_only)
    # mixed: each row as if alone, averaged
    labels = torch.tensor([0, UNLABELED, 1, UNLABELED])
    rows = [logit_loss(s[i : i + 1], t[i : i + 1], labels[i : i + 1], 2.0, 0.3) for i in range(4)]
    assert torch.allclose(logit_loss(s, t, labels, 2.0, 0.3), torch.stack(rows).mean())
    assert not torch.allclose(logit_loss(s, t, torch.tensor([0, 0, 1, 0]), 2.0, 0.3), torch.stack(rows).mean())


def test_rows_beyond_the_cap_and_unlabeled_files_form_the_transfer_set(texts_csv, tmp_path):
    full = load_data(DataSpec(str(texts_csv), max_unlabeled_samples=0))
    test_text = full.test["text"].iloc[0]
    (tmp_path / "more.txt").write_text("a brand new text\n\n" + test_text + "\nanother new one\n")
    pd.DataFrame({"body": ["from a table", "a brand new text"]}).to_csv(tmp_path / "more.csv", index=False)
    capped = load_data(DataSpec(str(texts_csv), max_train_samples=40, unlabeled=str(tmp_path / "more.txt")))
    assert len(capped.train) == 40
    held_out = set(capped.validation["text"]) | set(capped.test["text"])
    beyond = set(full.train["text"]) - set(capped.train["text"]) - held_out
    assert beyond and beyond <= set(capped.unlabeled)  # the rows left out, labels hidden
    assert {"a brand new text", "another new one"} <= set(capped.unlabeled)
    assert test_text not in capped.unlabeled  # equal to a test text: dropped
    assert not set(capped.unlabeled) & (held_out | set(capped.train["text"]))
    assert len(set(capped.unlabeled)) == len(capped.unlabeled)
    assert capped.split_info["unlabeled"]["from_unlabeled"] == 3
    # a folder: every .txt and table in it, a table's text column named as the labelled data's is
    with pytest.raises(SlimtuneError, match="--unlabeled: column 'text' not found.*--text-column"):
        load_data(DataSpec(str(texts_csv), unlabeled=str(tmp_path)))
    pd.DataFrame({"text": ["from a table", "a brand new text"]}).to_csv(tmp_path / "more.csv", index=False)
    both = load_data(DataSpec(str(texts_csv), unlabeled=str(tmp_path)))
    assert {"from a table", "a brand new text", "another new one"} <= set(both.unlabeled)
    assert len(load_data(DataSpec(str(texts_csv), unlabeled=str(tmp_path), max_unlabeled_samples=3)).unlabeled) == 3
    with pytest.raises(SlimtuneError, match="--unlabeled: .* does not exist"):
        DataSpec(str(texts_csv), unlabeled=str(tmp_path / "nope.txt"))
    # a search trial samples the transfer set within its budget; the labelled rows it leaves out stay out
    trial = subsample_train(capped, 20, 1, 5)
    assert len(trial.train) == 20 and len(trial.unlabeled) == 5


def test_encoded_training_split_puts_the_transfer_set_last(texts_csv):
    data = load_data(DataSpec(str(texts_csv), max_train_samples=40))
    tok = build_tokenizer()
    plain = encode_data(data, tok, 32)["train"]
    with_transfer = encode_data(data, tok, 32, transfer=True)["train"]
    assert len(plain) == plain.labelled() == 40
    assert with_transfer.labelled() == 40 and len(with_transfer) == 40 + len(data.unlabeled)
    assert with_transfer.input_ids[:40] == plain.input_ids
    assert set(with_transfer.labels[40:]) == {UNLABELED}


class _Counting:
    """Counts the teacher's forward passes and, when told, fails after some of them (a kill)."""

    def __init__(self, teacher, fail_after=None):
        self.calls, self.fail_after = 0, fail_after
        teacher.register_forward_pre_hook(self)

    def __call__(self, module, args):
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise KeyboardInterrupt("killed")


def test_logits_cache_resumes_a_killed_pass_and_computes_only_new_texts(tmp_path, monkeypatch, capfd):
    import slimtune.distillation.cache as cache

    monkeypatch.setattr(cache, "SHARD_ROWS", 64)  # several shards from a small set
    tok = build_tokenizer()
    frame = make_texts(300, seed=5)
    split = encode(frame["text"], [UNLABELED] * len(frame), tok, 32)
    teacher_dir = tmp_path / "teacher"
    teacher_dir.mkdir()
    teacher = build_tiny_bert(vocab_size=len(tok)).eval()
    expected = compute_logits(teacher, split, tok.pad_token_id)
    kill = _Counting(teacher, fail_after=2)  # 64 rows a shard, 64 a batch: dies in the third shard
    with pytest.raises(KeyboardInterrupt):
        teacher_logits(teacher, str(teacher_dir), split, tok.pad_token_id)
    kill.fail_after = None
    kill.calls = 0
    capfd.readouterr()
    logits = teacher_logits(teacher, str(teacher_dir), split, tok.pad_token_id)
    assert torch.allclose(logits, expected, atol=1e-5)
    unique = len(set(map(tuple, split.input_ids)))
    assert f"over {unique - 2 * 64:,} texts (128 from the cache)" in capfd.readouterr().err
    assert kill.calls == -(-(unique - 2 * 64) // 64)  # only what the killed pass had not written
    kill.calls = 0
    again = teacher_logits(teacher, str(teacher_dir), split, tok.pad_token_id)
    assert kill.calls == 0 and torch.equal(again, logits)  # resumed: nothing recomputed
    grown = encode(list(frame["text"]) + ["sunny sunny storm brand", "bitter calm"], [UNLABELED] * 302, tok, 32)
    teacher_logits(teacher, str(teacher_dir), grown, tok.pad_token_id)
    assert kill.calls == 1  # the two new texts only
    twice = encode(list(frame["text"][:5]) * 2 + ["storm calm brand"], [UNLABELED] * 11, tok, 32)
    capfd.readouterr()
    teacher_logits(teacher, str(teacher_dir), twice, tok.pad_token_id)
    assert "over 1 texts (5 from the cache)" in capfd.readouterr().err  # texts, not rows


def test_distillation_learns_from_the_transfer_set(trained_tiny_dir, tiny_model_dir, texts_csv, tmp_path):
    """`slimtune distill` of an untrained student from 12 labelled rows: with the other training texts
    as a transfer set (every row gets the teacher's logits; the hidden-state loss reads the labelled
    rows' cache only) it learns the task; on the 12 rows alone it does not get as far."""
    from slimtune.distillation.run import DistillSpec, run_distill
    from slimtune.train.loop import TrainSpec

    def run(name, transfer):
        spec = DistillSpec(teacher=str(trained_tiny_dir / "model"), student=str(tiny_model_dir),
                           data=DataSpec(str(texts_csv), max_train_samples=12, max_unlabeled_samples=transfer),
                           out=str(tmp_path / name), loss=LossSpec(hidden_weight=1.0),
                           train=TrainSpec(epochs=4, batch_size=16, lr=3e-3), workers=0)
        return run_distill(spec)

    with_transfer, alone = run("with", None), run("alone", 0)
    assert with_transfer["labelled_rows"] == alone["labelled_rows"] == 12
    assert with_transfer["transfer_rows"] > 100 and alone["transfer_rows"] == 0
    saved = json.loads((tmp_path / "with" / "metrics.json").read_text())
    assert saved["transfer_rows"] == with_transfer["transfer_rows"]
    assert with_transfer["accuracy"] >= 0.9 and with_transfer["accuracy"] > alone["accuracy"] + 0.1


def test_the_teachers_test_pass_goes_through_the_logits_cache(trained_tiny_dir, tiny_model_dir, texts_csv, tmp_path):
    """Distillation scores its teacher on the test split through the logits cache: the report holds
    a plain evaluation's figures, and the test rows' logits are cached, where the next distillation
    from this teacher (a bench's next arm, a second student) finds them instead of running a big
    teacher over every test text again."""
    import shutil

    from slimtune.distillation.cache import _read_shards, row_keys, teacher_key
    from slimtune.distillation.run import DistillSpec, run_distill
    from slimtune.models import load_classifier, load_tokenizer
    from slimtune.models.builtin import cache_dir
    from slimtune.train.loop import TrainSpec, evaluate

    teacher_dir = str(shutil.copytree(trained_tiny_dir / "model", tmp_path / "teacher"))  # its own cache key
    data_spec = DataSpec(str(texts_csv), max_train_samples=12, max_unlabeled_samples=0)
    metrics = run_distill(DistillSpec(teacher=teacher_dir, student=str(tiny_model_dir), data=data_spec,
                                      out=str(tmp_path / "student"), train=TrainSpec(epochs=1, batch_size=16, lr=3e-3),
                                      workers=0))
    data, tok = load_data(data_spec), load_tokenizer(teacher_dir)
    test = encode_data(data, tok, 32)["test"]  # the length the teacher was fine-tuned at
    cached = _read_shards(cache_dir() / "teacher_logits" / teacher_key(teacher_dir))
    assert set(row_keys(test).tolist()) <= cached.keys()
    plain = evaluate(load_classifier(teacher_dir, data.label_names).eval(), test, data.num_labels, tok.pad_token_id)
    assert metrics["teacher"]["accuracy"] == plain["accuracy"] and metrics["teacher"]["f1_macro"] == plain["f1_macro"]


def test_an_all_transfer_batch_still_reaches_every_projection():
    """Under DDP every parameter needs a gradient each step: a batch of transfer rows alone (no
    hidden-state term) must still reach the hidden-state projections, with zero gradient."""
    from transformers import BertConfig, BertForSequenceClassification

    tok = build_tokenizer()
    frame = make_texts(8, seed=1)
    split = encode(frame["text"], [UNLABELED] * 8, tok, 32)
    teacher = build_tiny_bert(vocab_size=len(tok)).eval()
    narrow = BertForSequenceClassification(BertConfig(vocab_size=len(tok), hidden_size=16, num_hidden_layers=2,
                                                      num_attention_heads=2, intermediate_size=32,
                                                      max_position_embeddings=64, num_labels=2))
    spec = LossSpec(hidden_weight=1.0)
    module = DistillModule(narrow, 32, spec, [0, 1])
    loss = DistillLoss(spec, [0, 1], teacher_logits=compute_logits(teacher, split, tok.pad_token_id), teacher=teacher)
    from slimtune.data.tokenize import PadCollator

    loss(module, PadCollator(tok.pad_token_id)([split[i] for i in range(8)])).backward()
    grads = [p.grad for p in module.projections.parameters()]
    assert len(grads) == 4 and all(g is not None and not g.any() for g in grads)
