# slimtune search --teacher runs/quickstart/teacher --data builtin:tweets --space search_spaces/full.py --trials 12 --concurrency 2 --out runs/search-full
"""Architecture, pruning ratios and distillation settings together; ranges and limits follow the
teacher, so the same file fits a 6-layer MiniLM and a 12-layer MPNet on any data set.

A teacher wider than the built-in MiniLM (hidden 384) also gets the moves that pay on big models:
narrowing the hidden width, and starting the student from MiniLM itself instead of the teacher."""

from slimtune import Constraints

# Relative to the teacher as the search measures it: a floor in absolute accuracy would fit one
# data set only. Students under 2x faster are not worth a place on the front.
CONSTRAINTS = Constraints(min_accuracy_ratio=0.9, min_speedup=2.0)
SMALL_BASE, SMALL_LAYERS, SMALL_WIDTH = "builtin:minilm-l6", 6, 384


def space(trial, teacher):
    wide = teacher.hidden_size > SMALL_WIDTH
    base = trial.suggest_categorical("base", ["teacher", SMALL_BASE]) if wide else "teacher"
    if base == "teacher":
        values = {"layers": trial.suggest_int("layers", 1, max(1, min(teacher.num_layers - 1, 8)))}
        if wide:  # down to about MiniLM's width
            values["hidden"] = trial.suggest_float("hidden", 0.0, 0.5, step=0.25)
    else:
        values = {"base": base, "layers": trial.suggest_int("small_layers", 1, SMALL_LAYERS)}
    values.update({
        "heads": trial.suggest_float("heads", 0.0, 0.75, step=0.25),
        "ffn": trial.suggest_float("ffn", 0.0, 0.75, step=0.25),
        "temperature": trial.suggest_float("temperature", 1.0, 4.0),
        "alpha": trial.suggest_float("alpha", 0.3, 0.9),
        "lr": trial.suggest_float("lr", 1e-4, 4e-4, log=True),
        "epochs": trial.suggest_int("epochs", 1, 2),
    })
    if trial.suggest_categorical("use_hidden", [False, True]):
        values["hidden_weight"] = trial.suggest_float("hidden_weight", 0.1, 1.0)
    return values
