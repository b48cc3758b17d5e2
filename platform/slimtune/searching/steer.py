"""Constraints that steer the sampler, not only filter the front afterwards.

Optuna's TPE and NSGA-II samplers rank a trial that breaks a constraint below every trial that
meets them all, so later trials are drawn where the constraints hold (a user's "at least 5x faster
than my teacher" then gets more of the search's budget). Tune's OptunaSearch tells Optuna only the
objectives; the searcher below also sets each finished trial's constraint values on its Optuna
trial (`Trial.set_constraint`, Optuna 5's way), before telling Optuna the result.
"""

from __future__ import annotations

import math

from ray.tune.search.optuna import OptunaSearch


def violations(metrics: dict, limits: dict[str, tuple[str, float]]) -> dict[str, float]:
    """One value per limit (`Constraints.limits`: name -> (metric, bound)), relative to its bound,
    at most 0 when met: accuracy under its floor, latency or size over its bound. A metric the
    trial did not report (or a NaN) is not held against it."""
    values = {}
    for name, (metric, bound) in limits.items():
        value = metrics.get(metric)
        if value is None or not math.isfinite(value):  # Optuna refuses NaN; the objectives' own check reports it
            values[name] = 0.0
        else:
            values[name] = (bound - value) / bound if metric == "accuracy" else (value - bound) / bound
    return values


class SteeredOptunaSearch(OptunaSearch):
    """OptunaSearch that hands the sampler each finished trial's constraint values."""

    def __init__(self, *args, limits: dict[str, tuple[str, float]], **kwargs):
        super().__init__(*args, **kwargs)
        self._limits = dict(limits)  # saved and restored with the searcher's __dict__ on --resume

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False):
        trial = self._ot_trials.get(trial_id)
        if result and trial is not None and trial_id not in self._completed_trials:
            for name, value in violations(result, self._limits).items():
                trial.set_constraint(name, value)
        super().on_trial_complete(trial_id, result, error)
