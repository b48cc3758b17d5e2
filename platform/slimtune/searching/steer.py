"""Constraints that steer the sampler, not only filter the front afterwards.

Optuna's TPE and NSGA-II samplers rank a trial that breaks a constraint below every trial that
meets them all, so later trials are drawn where the constraints hold (a user's "at least 5x faster
than my teacher" then gets more of the search's budget). Tune's OptunaSearch tells Optuna only the
objectives; the searcher below also sets each finished trial's constraint values on its Optuna
trial (`Trial.set_constraint`, Optuna 5's way), before telling Optuna the result.

It also records why each trial was tried (`ORIGIN` in the trial's config): a point the search
enqueued on purpose, or the sampler's draw, so a report can say why a poor student was trained.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import optuna
from ray.tune.search.optuna import OptunaSearch

from slimtune import log
from slimtune.searching.space import candidate_of

if TYPE_CHECKING:
    from slimtune.searching.anchor import TooSlow


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


ORIGIN = "origin"
"""The config key that says how a trial came to be tried: the reason a `points` entry gives, else
the sampler's name. The trainable reads only the knobs; the search's outputs read this."""
ZERO_LAYER, BUDGET = "zero-layer", "budget"
_WHY = {ZERO_LAYER: "the zero-layer student, tried first wherever the space holds one: the fastest model there, "
                    "which every slower student must beat to earn its latency",
        BUDGET: "the deepest student of the space timed within the speed-up the search steers to (search.steer_speedup, "
                "or winners.min_speedup), tried early so that band of the front is not left empty"}


def why_tried(origin: str | None) -> str:
    """A trial's origin in words, for the search's log and the job's report."""
    if origin in _WHY:
        return _WHY[origin]
    return f"drawn by the {origin} sampler, exploring the space" if origin else "not recorded (the search began before slimtune recorded why a trial was tried)"


REDRAWS = 50
"""Draws ruled out in a row for one trial before the next draw is trained unchecked: a space with
few students within the constraints then still runs its trials (each draw costs milliseconds, a
trial minutes)."""


class SteeredOptunaSearch(OptunaSearch):
    """OptunaSearch that hands the sampler each finished trial's constraint values, and tells each
    trial why it was tried: `points` (params, reason) are enqueued first, with their reason.

    `too_slow` (`searching.anchor.TooSlow`): a drawn trial it rules out is not given to Tune; Optuna
    is told it as pruned, with the constraint values of its FLOPs latency (a lower bound), and the
    draw is made again. TPE ranks such a trial below every one that meets the constraints, so it
    draws elsewhere; NSGA-II and the random sampler read only completed trials: for them it is a
    plain redraw. The enqueued points are tried as they are (they are there on purpose)."""

    def __init__(self, *args, limits: dict[str, tuple[str, float]], points: list[tuple[dict, str]] = (),
                 drawn_by: str | None = None, too_slow: TooSlow | None = None, **kwargs):
        self._points = list(points)  # before super(): it sets the study up, which enqueues them
        self._drawn_by = drawn_by
        super().__init__(*args, **kwargs)
        self._limits = dict(limits)  # saved and restored with the searcher's __dict__ on --resume
        self._too_slow = too_slow

    def _setup_study(self, mode):
        super()._setup_study(mode)
        for params, reason in self._points:  # Tune's points_to_evaluate would drop the reason
            self._ot_study.enqueue_trial(params, user_attrs={ORIGIN: reason})

    def suggest(self, trial_id: str):
        config = super().suggest(trial_id)
        for _ in range(REDRAWS):
            ruled_out = self._rule_out(trial_id, config)
            if ruled_out is None:
                break
            ms, why = ruled_out
            trial = self._ot_trials.pop(trial_id)
            for name, value in violations({"latency_ms": ms}, self._limits).items():
                trial.set_constraint(name, value)
            self._ot_study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            log.info(f"a draw not trained, it cannot meet the constraints: {why}")
            config = super().suggest(trial_id)
        else:
            log.info(f"{REDRAWS} draws in a row could not meet the constraints by their FLOPs; the next one is "
                     "trained unchecked (few students of the space are fast enough)")
        trial = self._ot_trials.get(trial_id)
        if isinstance(config, dict) and trial is not None:
            config[ORIGIN] = trial.user_attrs.get(ORIGIN, getattr(self, "_drawn_by", None))  # None: pickled before
        return config

    def _rule_out(self, trial_id: str, config) -> tuple[float, str] | None:
        too_slow = getattr(self, "_too_slow", None)  # None: pickled before it existed
        trial = self._ot_trials.get(trial_id)
        if too_slow is None or not isinstance(config, dict) or trial is None or ORIGIN in trial.user_attrs:
            return None
        return too_slow.check(candidate_of(config))

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False):
        trial = self._ot_trials.get(trial_id)
        if result and trial is not None and trial_id not in self._completed_trials:
            for name, value in violations(result, self._limits).items():
                trial.set_constraint(name, value)
        super().on_trial_complete(trial_id, result, error)
