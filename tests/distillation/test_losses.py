"""Distillation losses on tiny models: the cache matches the live teacher; every loss trains."""

import pytest
import torch

from slimtune.data.tokenize import PadCollator, encode
from slimtune.distillation.cache import compute_logits
from slimtune.distillation.losses import DistillLoss, DistillModule, LossSpec, attention_loss, logit_loss
from slimtune.train.loop import TrainSpec, train
from tests.helpers import build_tiny_bert, build_tokenizer, make_texts


@pytest.fixture(scope="module")
def setup():
    tok = build_tokenizer()
    frame = make_texts(96, seed=2)
    labels = (frame["label"] == "pos").astype(int)
    split = encode(frame["text"], labels, tok, 32)
    teacher = build_tiny_bert(vocab_size=len(tok)).eval()
    return tok, split, teacher


def _batch(tok, split, rows):
    return PadCollator(tok.pad_token_id)([split[i] for i in rows])


def test_cached_logits_give_the_live_teachers_loss(setup):
    tok, split, teacher = setup
    cached = compute_logits(teacher, split, tok.pad_token_id, batch_size=7)  # other padding than training
    torch.manual_seed(0)
    student = DistillModule(build_tiny_bert(vocab_size=len(tok)), 32, LossSpec(), [0, 1]).eval()  # no dropout
    spec = LossSpec(temperature=3.0, alpha=0.7)
    batch = _batch(tok, split, [5, 17, 2, 40, 33])
    with_cache = DistillLoss(spec, [0, 1], teacher_logits=cached)(student, batch)
    live = DistillLoss(spec, [0, 1], teacher=teacher)(student, batch)
    assert torch.allclose(with_cache, live, atol=1e-5)


def test_cached_hidden_states_give_the_live_teachers_loss(setup):
    """fp16 ragged targets, gathered per batch: the loss matches the live teacher's to fp16 precision,
    and the hidden part is not vacuous (a student far from the teacher has a large hidden loss)."""
    from slimtune.distillation.cache import teacher_hidden

    tok, split, teacher = setup
    scale = 10.0  # states of order 1 or more, so a relative tolerance means something
    cache = teacher_hidden(teacher, "/nonexistent/tiny-teacher", split, tok.pad_token_id, [1, 0])
    assert cache.lengths_match(split) and set(cache.layers) == {0, 1}
    again = teacher_hidden(teacher, "/nonexistent/tiny-teacher", split, tok.pad_token_id, [1])
    assert torch.equal(again.layers[1], cache.layers[1])  # read back from disk, not recomputed differently
    torch.manual_seed(0)
    spec = LossSpec(alpha=1.0, hidden_weight=scale)
    student = DistillModule(build_tiny_bert(vocab_size=len(tok)), 32, spec, [1, 0]).eval()
    with torch.no_grad():  # the tiny BERT is built seeded: move the student away from the teacher
        for p in student.parameters():
            p.add_(0.5 * torch.randn_like(p))
    batch = _batch(tok, split, [5, 17, 2, 40, 33, 60])
    logits_only = DistillLoss(LossSpec(alpha=1.0), [1, 0], teacher_logits=compute_logits(teacher, split, tok.pad_token_id))
    cached = DistillLoss(spec, [1, 0], teacher_logits=logits_only.teacher_logits, teacher_hidden=cache)
    live = DistillLoss(spec, [1, 0], teacher_logits=logits_only.teacher_logits, teacher=teacher)
    assert not cached.needs_live and live.needs_live
    a, b = cached(student, batch), live(student, batch)
    assert a - logits_only(student, batch) > 1.0  # the hidden term carries weight
    assert torch.allclose(a, b, rtol=2e-3)


def test_logit_loss_is_cross_entropy_at_alpha_zero_and_zero_for_a_copy():
    s = torch.randn(4, 3)
    labels = torch.tensor([0, 2, 1, 1])
    assert torch.allclose(logit_loss(s, s + 5.0, labels, 2.0, 0.0), torch.nn.functional.cross_entropy(s, labels))
    assert logit_loss(s, s, labels, 2.0, 1.0).abs() < 1e-6  # KL of a distribution with itself


def test_standardized_logits_learn_the_ranking_not_the_confidence():
    torch.manual_seed(0)
    s, t = torch.randn(6, 5), torch.randn(6, 5)
    labels = torch.tensor([0, 1, 2, 3, 4, 0])
    unsure, sure = 0.3 * t - 1.0, 4.0 * t + 2.0  # one teacher, two confidences: the same targets
    assert torch.allclose(logit_loss(s, unsure, labels, 2.0, 1.0, True), logit_loss(s, sure, labels, 2.0, 1.0, True))
    assert not torch.allclose(logit_loss(s, unsure, labels, 2.0, 1.0), logit_loss(s, sure, labels, 2.0, 1.0))
    assert logit_loss(2.0 * t, t, labels, 1.0, 1.0, True).abs() < 1e-5  # a student with the ranking is done
    two = torch.randn(6, 2)  # with two classes a z-score keeps only the sign: left as they are
    assert torch.equal(logit_loss(two, 3 * two, labels % 2, 2.0, 0.5, True), logit_loss(two, 3 * two, labels % 2, 2.0, 0.5))


def test_attention_loss_zero_for_equal_maps_and_handles_head_mismatch():
    maps = torch.softmax(torch.randn(2, 4, 5, 5), -1)
    mask = torch.ones(2, 5, dtype=torch.long)
    assert attention_loss([maps], [maps], mask).abs() < 1e-6
    assert attention_loss([maps[:, :2]], [maps], mask) >= 0


def test_hidden_and_attention_distillation_train_a_narrower_student(setup):
    from transformers import BertConfig, BertForSequenceClassification

    tok, split, teacher = setup
    teacher = build_tiny_bert(vocab_size=len(tok))
    teacher.config._attn_implementation = "eager"  # attention maps need the eager kernel
    teacher.eval()
    torch.manual_seed(0)
    student = BertForSequenceClassification(BertConfig(
        vocab_size=len(tok), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=64, attn_implementation="eager"))
    spec = LossSpec(hidden_weight=1.0, attention_weight=1.0)
    module = DistillModule(student, 32, spec, [1])
    assert len(module.projections) == 1  # 16 -> 32
    loss_fn = DistillLoss(spec, [1], teacher_logits=compute_logits(teacher, split, tok.pad_token_id), teacher=teacher)
    before = loss_fn(module, _batch(tok, split, range(32))).item()
    record = train(module, split, split, TrainSpec(epochs=3, batch_size=16, lr=3e-3, log_every=100),
                   num_labels=2, pad_token_id=tok.pad_token_id, loss_fn=loss_fn)
    after = loss_fn(module.eval(), _batch(tok, split, range(32))).item()
    assert after < before and len(record.history) == 3
