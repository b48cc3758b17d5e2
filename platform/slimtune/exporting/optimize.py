"""ONNX Runtime's transformer graph optimiser: fuse what it can, report what fired, keep the
faster graph as measured (on transformers-5 exports LayerNorm and GELU fuse, Attention often not)."""

from __future__ import annotations

import warnings
from pathlib import Path


def optimize_graph(src: Path, dst: Path, num_heads: int, hidden_size: int, model_type: str = "bert") -> dict:
    """Write the optimised graph to `dst`; return the fusions that fired (op name -> count).
    `model_type`: the optimiser's, from the family adapter (`Family.ort_model_type`)."""
    from onnxruntime.transformers.optimizer import optimize_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # num_heads 0 lets the fuser read heads from the graph: pruned layers differ per layer
        optimized = optimize_model(str(src), model_type=model_type, num_heads=num_heads, hidden_size=hidden_size,
                                   opt_level=1)
    optimized.save_model_to_file(str(dst))
    stats = optimized.get_fused_operator_statistics()
    return {op: int(n) for op, n in stats.items() if n}
