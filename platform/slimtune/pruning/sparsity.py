"""Unstructured magnitude sparsity: zero the smallest weights of each encoder matrix.

Reported honestly as a size effect. Dense kernels (PyTorch, ONNX Runtime) run zeros at full
cost: 50% or 90% zeros gave no speed-up on our CPU, in PyTorch or ONNX Runtime. A sparse or compressed format
on the device is what turns zeros into fewer bytes.
"""

from __future__ import annotations

import torch

from slimtune.models.surgery import encoder_layers


def sparsify(model, ratio: float) -> dict:
    """Zero `ratio` of each encoder Linear weight by magnitude; return counts for the report."""
    if not 0 <= ratio < 1:
        raise ValueError(f"sparsity must be in [0, 1), got {ratio}")
    zeroed = total = 0
    with torch.no_grad():
        for layer in encoder_layers(model):
            for module in layer.modules():
                if isinstance(module, torch.nn.Linear) and ratio > 0:
                    w = module.weight
                    k = int(w.numel() * ratio)
                    if k:
                        threshold = w.abs().flatten().kthvalue(k).values
                        w[w.abs() <= threshold] = 0
                    zeroed += int((w == 0).sum())
                    total += w.numel()
    nonzero = sum(int((p != 0).sum()) for p in model.parameters())
    return {
        "sparsity": zeroed / total if total else 0.0,
        "nonzero_parameters": nonzero,
        # values plus 32-bit indices: what a sparse format would store (no speed-up in dense runtimes)
        "size_mb_sparse_estimate": nonzero * 8 / 1e6,
        "note": "unstructured zeros shrink a compressed or sparse file, not latency in dense runtimes",
    }
