# slimtune search --teacher runs/quickstart/teacher --data builtin:tweets --space search_spaces/per_layer.py --trials 16 --out runs/search-per-layer
"""Per-layer shapes: each kept layer gets its own share of heads and FFN neurons removed, and the
distillation may add hidden-state and attention-map losses."""

from slimtune import Constraints

CONSTRAINTS = Constraints(min_accuracy_ratio=0.9, min_speedup=2.0)


def space(trial, teacher):
    layers = trial.suggest_int("layers", 1, max(1, min(teacher.num_layers - 1, 4)))
    return {
        "layers": layers,
        "heads": [trial.suggest_float(f"heads_{i}", 0.0, 0.75, step=0.25) for i in range(layers)],
        "ffn": [trial.suggest_float(f"ffn_{i}", 0.0, 0.75, step=0.25) for i in range(layers)],
        "hidden_weight": trial.suggest_categorical("hidden_weight", [0.0, 0.5]),
        "attention_weight": trial.suggest_categorical("attention_weight", [0.0, 0.5]),
        "epochs": 2 if layers <= 2 else 1,
    }
