# slimtune search --teacher runs/quickstart/teacher --data builtin:tweets --space search_spaces/full.py --trials 12 --concurrency 2 --out runs/search-full
"""Architecture, pruning ratios and distillation settings together."""

from slimtune.search.space import Constraints

CONSTRAINTS = Constraints(min_accuracy=0.80)


def space(trial):
    values = {
        "layers": trial.suggest_int("layers", 1, 5),
        "heads": trial.suggest_float("heads", 0.0, 0.75, step=0.25),
        "ffn": trial.suggest_float("ffn", 0.0, 0.75, step=0.25),
        "temperature": trial.suggest_float("temperature", 1.0, 4.0),
        "alpha": trial.suggest_float("alpha", 0.3, 0.9),
        "lr": trial.suggest_float("lr", 1e-4, 4e-4, log=True),
        "epochs": trial.suggest_int("epochs", 1, 2),
    }
    if trial.suggest_categorical("use_hidden", [False, True]):
        values["hidden_weight"] = trial.suggest_float("hidden_weight", 0.1, 1.0)
    return values
