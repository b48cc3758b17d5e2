# slimtune search --teacher runs/quickstart/teacher --data builtin:tweets --space search_spaces/prune_ratios.py --trials 12 --out runs/search-prune
"""Prune the teacher only: how many layers, heads and FFN neurons can go, with a short
distillation to recover."""

from slimtune.search.space import Constraints

CONSTRAINTS = Constraints(min_accuracy=0.80)


def space(trial):
    return {
        "layers": trial.suggest_int("layers", 2, 6),
        "heads": trial.suggest_float("heads", 0.0, 0.75, step=0.25),
        "ffn": trial.suggest_float("ffn", 0.0, 0.75, step=0.25),
        "importance": trial.suggest_categorical("importance", ["magnitude", "taylor"]),
        "epochs": 1,
    }
