"""Prune stage: importance scores (`importance`), how much to cut (`policy`), structured removal
(via `slimtune.models.surgery`), unstructured sparsity (`sparsity`), the command (`run`)."""

from slimtune.prune.run import PruneSpec, apply_pruning, run_prune

__all__ = ["PruneSpec", "apply_pruning", "run_prune"]
