"""Prune stage: importance scores (`importance`), how much to cut (`policy`), structured removal
(via `slimtune.models.surgery`), unstructured sparsity (`sparsity`), the command (`run`).
Names are imported on first use (see slimtune.data)."""

__all__ = ["PruneSpec", "apply_pruning", "run_prune"]
IMPORTANCE = ("magnitude", "taylor")
"""How units can be ranked (`importance`): here so that checking a flag imports no torch."""


def __getattr__(name):
    if name in __all__:
        from slimtune.pruning import run

        return getattr(run, name)
    raise AttributeError(name)
