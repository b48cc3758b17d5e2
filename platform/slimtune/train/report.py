"""The figures every stage reports for a model: quality on the test split, size and cost."""

from __future__ import annotations

from slimtune.models.load import num_parameters, size_mb
from slimtune.models.surgery import encoder_flops
from slimtune.train.loop import evaluate
from slimtune.train.metrics import metrics_from_logits


def model_metrics(model, test_split, num_labels: int, pad_token_id: int, seq_len: int = 128,
                  batch_size: int = 64, logits=None) -> dict:
    """accuracy, f1_macro, confusion (test split), num_parameters, encoder_flops at `seq_len`, size_mb.
    `logits`: the model's logits over `test_split` when already known (a teacher's, from the logits
    cache), so a big model is not run over the test texts again."""
    if logits is None:
        test = evaluate(model, test_split, num_labels, pad_token_id, batch_size=batch_size)
    else:
        test = metrics_from_logits(test_split.labels, logits.numpy(), num_labels)
    return {
        "accuracy": test["accuracy"],
        "f1_macro": test["f1_macro"],
        "confusion": test["confusion"],
        "num_parameters": num_parameters(model),
        "num_labels": num_labels,
        "encoder_flops": encoder_flops(model, seq_len),
        "flops_seq_len": seq_len,
        "size_mb": size_mb(model),
    }
