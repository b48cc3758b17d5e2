# slimtune search --teacher runs/quickstart/teacher --data builtin:tweets --space search_spaces/learned.py --latency-model runs/latency.json --trials 8 --out runs/search-learned
"""One-shot cuts against learned ones, side by side on one front. A one-shot student loses the same
fraction of heads and FFN neurons in every layer; a learned one trains gates towards a speed-up
and finds its own uneven shape (pruning.learned). Learned trials need the search's latency model
(`slimtune bench --profile --model TEACHER --out FILE.json`, then `--latency-model FILE.json`)."""

from slimtune import Constraints

CONSTRAINTS = Constraints(min_accuracy_ratio=0.9, min_speedup=2.0)


def space(trial, teacher):
    values = {"temperature": trial.suggest_float("temperature", 1.0, 3.0),
              "alpha": trial.suggest_float("alpha", 0.3, 0.9),
              "epochs": 2}  # a learned trial gives half to its gates: both methods train 2 epochs
    if trial.suggest_categorical("method", ["oneshot", "learned"]) == "learned":
        values.update(method="learned", target_speedup=trial.suggest_float("target_speedup", 2.0, 12.0, log=True))
    else:
        values.update(layers=trial.suggest_int("layers", 1, teacher.num_layers),
                      heads=trial.suggest_float("heads", 0.0, 0.75, step=0.25),
                      ffn=trial.suggest_float("ffn", 0.0, 0.75, step=0.25))
    return values
