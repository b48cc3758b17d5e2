"""Search spaces as ordinary Python: a define-by-run function over named knobs.

A space file defines `space(trial)`, which calls Optuna's `trial.suggest_*` (conditionals are
plain `if`s) and returns a dict of knob values; optionally `CONSTRAINTS = Constraints(...)`.
The dict is checked into a typed `Candidate`, so a typo or an out-of-range value fails with the
knob's name before any trial trains. Replay one point with `optuna.trial.FixedTrial`.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from slimtune.errors import SlimtuneError


@dataclass(frozen=True)
class Candidate:
    """One student, as a trial samples it: taken from the teacher, then distilled."""

    layers: int | None = None
    """Teacher layers kept, evenly spaced, the last always kept; None keeps all."""
    heads: float = 0.0
    """Fraction of attention heads removed per layer."""
    ffn: float = 0.0
    """Fraction of FFN neurons removed per layer."""
    importance: str = "magnitude"
    """How units are ranked before removal: magnitude or taylor."""
    temperature: float = 2.0
    alpha: float = 0.5
    """Weight of the teacher's soft targets (1 - alpha on hard labels)."""
    hidden_weight: float = 0.0
    """Hidden-state distillation weight (0: logits only)."""
    lr: float | None = None
    """Peak learning rate; None chooses by width."""
    epochs: int = 1
    """Distillation epochs of the trial."""

    def __post_init__(self):
        checks = {
            "layers": self.layers is None or self.layers >= 1,
            "heads": 0 <= self.heads < 1,
            "ffn": 0 <= self.ffn < 1,
            "importance": self.importance in ("magnitude", "taylor"),
            "temperature": self.temperature > 0,
            "alpha": 0 <= self.alpha <= 1,
            "hidden_weight": self.hidden_weight >= 0,
            "lr": self.lr is None or 0 < self.lr < 1,
            "epochs": self.epochs >= 1,
        }
        for knob, ok in checks.items():
            if not ok:
                raise SlimtuneError(f"space: knob {knob}={getattr(self, knob)!r} is out of range (see Candidate.{knob})")


@dataclass(frozen=True)
class Constraints:
    """Limits declared beside a space; trials outside them never reach the front."""

    max_latency_ms: float | None = None
    max_size_mb: float | None = None
    min_accuracy: float | None = None

    def satisfied(self, metrics: dict) -> bool:
        return not (
            (self.max_latency_ms is not None and metrics["latency_ms"] > self.max_latency_ms)
            or (self.max_size_mb is not None and metrics["size_mb"] > self.max_size_mb)
            or (self.min_accuracy is not None and metrics["accuracy"] < self.min_accuracy)
        )


KNOBS = tuple(f.name for f in dataclasses.fields(Candidate))


def candidate_from(values: dict) -> Candidate:
    unknown = sorted(set(values) - set(KNOBS))
    if unknown:
        raise SlimtuneError(f"space: unknown knob '{unknown[0]}'; knobs are {', '.join(KNOBS)}")
    return Candidate(**values)


@dataclass(frozen=True)
class SearchSpace:
    """A loaded space file."""

    space: Callable
    constraints: Constraints
    path: str

    def sample(self, trial) -> Candidate:
        values = self.space(trial)
        if not isinstance(values, dict):
            raise SlimtuneError(f"--space: space(trial) in {self.path} must return a dict of knob values")
        return candidate_from(values)


def load_space(path: str) -> SearchSpace:
    file = Path(path)
    if not file.exists():
        raise SlimtuneError(f"--space: {path} does not exist; see search_spaces/ for examples")
    spec = importlib.util.spec_from_file_location(f"slimtune_space_{file.stem}", file)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise SlimtuneError(f"--space: {path} failed to load: {type(exc).__name__}: {exc}") from None
    if not callable(getattr(module, "space", None)):
        raise SlimtuneError(f"--space: {path} must define space(trial) returning a dict of knob values")
    constraints = getattr(module, "CONSTRAINTS", Constraints())
    if not isinstance(constraints, Constraints):
        raise SlimtuneError(f"--space: CONSTRAINTS in {path} must be a slimtune.search.space.Constraints")
    return SearchSpace(module.space, constraints, str(file))
