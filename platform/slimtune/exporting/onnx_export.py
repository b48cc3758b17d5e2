"""PyTorch -> ONNX with dynamic batch and sequence axes, then a parity gate on real texts."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from slimtune.errors import SlimtuneError
from slimtune.exporting.runtime import make_session

OPSET = 17
PARITY_ATOL = 1e-4

# Real sentences for the parity gate when no dataset is given: varied lengths, punctuation, case.


class _LogitsOnly(torch.nn.Module):
    """ONNX graphs take tensors and return tensors: strip the HF output object."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask):
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits


def export_onnx(model, path: Path, opset: int = OPSET) -> Path:
    """Write `path` with inputs input_ids, attention_mask (batch, sequence) and output logits."""
    model.eval()
    ids = torch.tensor([[1, 2, 3, 4, 5, 6], [1, 2, 3, 0, 0, 0]]) % model.config.vocab_size  # any valid ids
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]])
    axes = {0: "batch", 1: "sequence"}
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about Python bools in HF masking code
        torch.onnx.export(
            _LogitsOnly(model), (ids, mask), str(path), input_names=["input_ids", "attention_mask"],
            output_names=["logits"], dynamic_axes={"input_ids": axes, "attention_mask": axes, "logits": {0: "batch"}},
            opset_version=opset, dynamo=False,
        )
    model.eval()  # export can leave modules in training mode (dropout on)
    return path


def parity(model, onnx_path: Path, batches: list[dict[str, np.ndarray]]) -> dict:
    """Max |logit difference| and whether the predicted class agrees, PyTorch vs ONNX Runtime."""
    session = make_session(onnx_path)
    worst, agree, n = 0.0, True, 0
    model.eval()
    with torch.no_grad():
        for feed in batches:
            ref = model(input_ids=torch.from_numpy(feed["input_ids"]),
                        attention_mask=torch.from_numpy(feed["attention_mask"])).logits.numpy()
            got = session.run(["logits"], feed)[0]
            worst = max(worst, float(np.abs(ref - got).max()))
            agree = agree and bool((ref.argmax(-1) == got.argmax(-1)).all())
            n += len(ref)
    return {"max_abs_diff": worst, "same_predictions": agree, "samples": n}


def check_parity(report: dict, atol: float = PARITY_ATOL) -> None:
    if report["max_abs_diff"] > atol or not report["same_predictions"]:
        raise SlimtuneError(
            f"export: ONNX parity failed on {report['samples']} texts (max |logit diff| "
            f"{report['max_abs_diff']:.2e}, limit {atol:.0e}; same predictions: {report['same_predictions']}); "
            "no bundle written"
        )
