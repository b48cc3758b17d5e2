# slimtune search --teacher runs/quickstart/teacher --data builtin:tweets --space search_spaces/prune_ratios.py --trials 12 --out runs/search-prune
"""Prune the teacher only: how many layers, heads and FFN neurons can go, with a short
distillation to recover. The layer range follows the teacher's depth."""

from slimtune import Constraints

CONSTRAINTS = Constraints(min_accuracy_ratio=0.9)


def space(trial, teacher):
    return {
        "layers": trial.suggest_int("layers", max(1, teacher.num_layers // 3), teacher.num_layers),
        "heads": trial.suggest_float("heads", 0.0, 0.75, step=0.25),
        "ffn": trial.suggest_float("ffn", 0.0, 0.75, step=0.25),
        "importance": trial.suggest_categorical("importance", ["magnitude", "taylor"]),
        "epochs": 1,
    }
