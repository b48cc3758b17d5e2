# slimtune search --teacher runs/quickstart/teacher --data builtin:tweets --space search_spaces/student_arch.py --trials 12 --out runs/search-arch
"""Architecture search with distillation: depth and width of a student taken from the teacher."""

from slimtune import Constraints

CONSTRAINTS = Constraints(min_accuracy_ratio=0.9, min_speedup=2.0)


def space(trial, teacher):
    layers = trial.suggest_int("layers", 1, max(1, teacher.num_layers - 2))
    return {
        "layers": layers,
        "heads": trial.suggest_categorical("heads", [0.0, 0.5, 0.75]),
        "ffn": trial.suggest_categorical("ffn", [0.0, 0.5, 0.75]),
        # shallow students get a second epoch: they start further from the teacher
        "epochs": 2 if layers <= 2 else 1,
    }
