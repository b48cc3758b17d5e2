"""Distillation targets from the teacher and the linear TF-IDF model together.

Where a linear model is as accurate as the transformer teacher (long documents, 2,000 labelled
rows), the two err on different texts: words and character n-grams against a contextual reading.
A product of the two (the teacher's log-probabilities plus `weight` times the linear model's) is
then a better teacher than either, and the students learn it from every labelled row and transfer
text like the teacher's logits. The weight is picked on the validation split, where the linear
model never trained (its regularisation was picked there, a slight lean toward it); 0, the
teacher alone, is one of the candidates. Hidden-state and attention targets stay the transformer teacher's.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from slimtune import log
from slimtune.errors import SlimtuneError

WEIGHTS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)
"""The linear model's weights tried against the teacher's (log-probabilities, so 1.0 is a plain
product of the two); the smallest of the best on validation accuracy is kept."""


def check_linear_teacher(path: str | None, flag: str = "--linear-teacher") -> None:
    """Refuse a folder that is not a linear bundle before any data or model is loaded."""
    if path is None:
        return
    from slimtune.exporting.linear_runtime import FORMAT

    manifest = Path(path) / "manifest.json"
    if not manifest.exists() or json.loads(manifest.read_text()).get("format") != FORMAT:
        raise SlimtuneError(f"{flag}: {path} is not a linear TF-IDF bundle (a job writes one to "
                            "OUT/alternatives/linear); give that folder or drop the flag")


def _log_probs(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(1, keepdims=True))


def linear_log_probs(path: str, texts: list[str], label_names: list[str]) -> np.ndarray:
    """(texts, labels) log-probabilities of the linear bundle, its columns in `label_names` order."""
    from slimtune.exporting.linear_runtime import LinearBundle

    bundle = LinearBundle(path)
    missing = sorted(set(label_names) - set(bundle.labels))
    if missing:
        raise SlimtuneError(f"--linear-teacher: {path} does not know the labels {missing[:5]}; fit it on this data")
    order = [bundle.labels.index(name) for name in label_names]
    return _log_probs(bundle.logits(texts))[:, order]


TEACH_MARGIN = 0.01
"""A job's `alternatives.teach: auto` blends the linear model in when the best weight beats the
teacher alone on validation by at least this much: above what picking the best of six weights on
a few hundred rows gains by chance. Measured (teacher and linear bundle of each job, validation
split): the tweets 0.19-0.78 points (1-4 of 516 rows; the blend added nothing on test, README), the
five computer newsgroups 2.05 and 2.56 (8 and 10 of 390), 20news 9.1."""


def scores(val_logits: torch.Tensor, path: str, val_texts: list[str], val_labels: list[int],
           label_names: list[str]) -> dict[float, float]:
    """Validation accuracy of the teacher's log-probabilities plus each weight times the linear model's."""
    labels = np.asarray(val_labels)
    teacher_val = _log_probs(val_logits.double().numpy())
    linear_val = linear_log_probs(path, val_texts, label_names)
    return {w: float(((teacher_val + w * linear_val).argmax(1) == labels).mean()) for w in WEIGHTS}


def best_weight(validation: dict[float, float]) -> float:
    """The weight best on validation; the smallest of equals (0: the teacher alone)."""
    return max(validation, key=lambda w: (validation[w], -w))


def teaches(validation: dict[float, float]) -> bool:
    """Whether the linear model is worth a place beside the teacher (`TEACH_MARGIN`)."""
    return max(validation.values()) - validation[0.0] >= TEACH_MARGIN - 1e-9


def validation_scores(teacher_dir: str, path: str, data, max_length: int | None,
                      on_gpu: bool = False) -> dict[float, float]:
    """`scores` of a fine-tuned teacher folder on `data`'s validation split, read as it was trained
    (`max_length` None: the length it records, else one picked from the data as for `on_gpu`)."""
    from slimtune.data.length import inherit_truncation, resolve_max_length
    from slimtune.data.tokenize import encode_data
    from slimtune.distillation.cache import teacher_logits
    from slimtune.models import load_classifier, load_config, load_tokenizer, resolve_model

    teacher_dir = resolve_model(teacher_dir, "--teacher")
    data = inherit_truncation(data, teacher_dir)
    tokenizer = load_tokenizer(teacher_dir, "--teacher")
    if max_length is None:
        max_length = resolve_max_length(None, teacher_dir, data, tokenizer, load_config(teacher_dir), on_gpu)
    teacher = load_classifier(teacher_dir, data.label_names).eval()
    val = encode_data(data, tokenizer, max_length)["validation"]
    return scores(teacher_logits(teacher, teacher_dir, val, tokenizer.pad_token_id), path,
                  list(data.validation["text"]), val.labels, data.label_names)


def blend(teacher_logits: torch.Tensor, path: str, train_texts: list[str], label_names: list[str],
          val_logits: torch.Tensor, val_texts: list[str], val_labels: list[int]) -> tuple[torch.Tensor, dict]:
    """(targets in the teacher's logits' place, what was picked): the teacher's log-probabilities
    plus the weight best on validation times the linear model's."""
    scores_ = scores(val_logits, path, val_texts, val_labels, label_names)
    weight = best_weight(scores_)
    log.info("teacher + linear model on validation: " + ", ".join(f"weight {w:g}: {a:.4f}" for w, a in scores_.items())
             + f"; distilling from weight {weight:g}")
    report = {"linear_teacher": str(path), "weight": weight, "validation_accuracy": scores_}
    if weight == 0:
        return teacher_logits, report
    targets = _log_probs(teacher_logits.double().numpy()) + weight * linear_log_probs(path, train_texts, label_names)
    return torch.from_numpy(targets).float(), report


def blend_for(train_logits: torch.Tensor, path: str, teacher, teacher_dir: str, data, encoded: dict,
              pad_token_id: int):
    """`blend` for a distillation run: `encoded` is `encode_data(data, ..., transfer=True)` of the
    teacher's tokenizer, whose training rows `train_logits` hold; the teacher's validation logits
    come through the logits cache (the job's auto decision, its trials and its winners score the
    same validation texts: for MPNet a pass over 20news's 1,000 takes 2-3 minutes on 2 cores)."""
    from slimtune.data.tokenize import training_texts
    from slimtune.distillation.cache import teacher_logits

    return blend(train_logits, path, training_texts(data, transfer=True), data.label_names,
                 teacher_logits(teacher, teacher_dir, encoded["validation"], pad_token_id),
                 list(data.validation["text"]), encoded["validation"].labels)
