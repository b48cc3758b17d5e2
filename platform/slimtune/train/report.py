"""The figures every stage reports for a model: quality on the test split, size and cost."""

from __future__ import annotations

from slimtune.models.load import num_parameters, size_mb
from slimtune.models.surgery import encoder_flops
from slimtune.train.loop import evaluate


def model_metrics(model, test_split, num_labels: int, pad_token_id: int, seq_len: int = 128,
                  batch_size: int = 64) -> dict:
    """accuracy, f1_macro, confusion (test split), num_parameters, encoder_flops at `seq_len`, size_mb."""
    test = evaluate(model, test_split, num_labels, pad_token_id, batch_size=batch_size)
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
