"""Search spaces as ordinary Python: a define-by-run function over named knobs.

A space is `space(trial)` or `space(trial, teacher)`: it calls Optuna's `trial.suggest_*`
(conditionals are plain `if`s) and returns a dict of knob values. `teacher` is a `TeacherInfo`
(its shape, measured latency and validation accuracy), so ranges can follow the model at hand.
It comes from a file (`space` and optionally `CONSTRAINTS = Constraints(...)` in it) or is any
callable, a lambda or closure included, with `constraints=` beside it. The dict is checked into
a typed `Candidate`, so a typo or an out-of-range value fails with the knob's name before any
trial trains. Replay one point with `optuna.trial.FixedTrial`.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.util
import inspect
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from slimtune.errors import SlimtuneError

Ratio = float | tuple[float, ...]


@dataclass(frozen=True)
class TeacherInfo:
    """What a space sees of the teacher: its shape from the config, its figures as the search
    measures every trial (validation accuracy; ONNX Runtime fp32 latency at the search's threads)."""

    family: str
    """The config's model_type: bert, mpnet, ..."""
    num_layers: int
    num_heads: int
    ffn: int
    """FFN (intermediate) width of a layer."""
    hidden_size: int
    vocab_size: int
    latency_ms: float | None = None
    """None only while the teacher is not measured yet (the early check of a job's space)."""
    accuracy: float | None = None
    """Validation accuracy; None as for latency_ms."""
    size_mb: float | None = None
    path: str | None = None
    """The model's folder or name: what a `base` knob takes."""
    reference: "TeacherInfo | None" = None
    """A small model already fine-tuned directly on this data (a job's `reference:`, the search's
    `--reference`), shape and path, or None. It knows the task, so students cut from it start far
    ahead of a model fresh from pre-training; spaces may offer it as a `base`."""

    @classmethod
    def from_config(cls, config, **figures) -> "TeacherInfo":
        from slimtune.models.families import family_of

        return cls(family=config.model_type, num_layers=config.num_hidden_layers,
                   num_heads=config.num_attention_heads, ffn=family_of(config).ffn_size(config),
                   hidden_size=config.hidden_size, vocab_size=config.vocab_size, **figures)


@dataclass(frozen=True)
class Candidate:
    """One student, as a trial samples it: taken from the teacher, then distilled."""

    layers: int | None = None
    """Layers of the base kept, evenly spaced, the last always kept; None keeps all; 0: the
    zero-layer student (models.bag: the base's embeddings, a masked mean, a small head)."""
    heads: Ratio = 0.0
    """Fraction of attention heads removed: one ratio for every layer, or one per kept layer."""
    ffn: Ratio = 0.0
    """Fraction of FFN neurons removed: one ratio, or one per kept layer."""
    hidden: float = 0.0
    """Fraction of the hidden size removed (the residual stream, embeddings and every projection)."""
    base: str = "teacher"
    """What the student is cut from: "teacher" (a copy of it), or another pretrained model (a name
    such as builtin:minilm-l6, or a folder) that gets a new head and learns from the teacher's
    logits (and hidden states where its tokens line up with the teacher's)."""
    importance: str = "magnitude"
    """How units are ranked before removal: magnitude or taylor."""
    method: str = "oneshot"
    """oneshot: cut by the ratios above; learned: after `layers`, gates over heads, FFN neurons and
    layers are trained towards `target_speedup` (pruning.learned; needs the search's latency
    model), then the kept shape is distilled as any student. A learned trial splits its `epochs`:
    half (at least one) train the gates (which distil the weights too), the rest the kept shape, so
    it costs what a one-shot trial of the same epochs costs; with `epochs` 1 it trains two."""
    target_speedup: float | None = None
    """learned: the teacher's predicted latency over the student's, to reach."""
    temperature: float = 2.0
    standardize: bool = True
    """Z-score the logits before softening (slimtune.distillation.losses.LossSpec.standardize)."""
    alpha: float = 0.5
    """Weight of the teacher's soft targets (1 - alpha on hard labels)."""
    hidden_weight: float = 0.0
    """Hidden-state distillation weight (0: logits only)."""
    attention_weight: float = 0.0
    """Attention-map distillation weight (0: off)."""
    lr: float | None = None
    """Peak learning rate; None chooses by width (slimtune.train.loop.auto_lr)."""
    epochs: int = 1
    """Training epochs of the trial (a learned trial's gates take half: `method`)."""
    vocab: str | None = None
    """full, or data: keep only the pieces the training rows use (a smaller embedding table and
    tokenizer); None: the search's `vocab` setting."""
    seq: int | None = None
    """Tokens the student reads, fewer than its teacher's max_length: its export length, where its
    latency is measured; it still learns the logits the teacher gave the whole text. None: the
    teacher's length. Hidden-state and attention losses need equal lengths: refused with seq."""

    def __post_init__(self):
        for knob in ("heads", "ffn"):  # YAML and JSON give lists: keep the frozen value hashable
            if isinstance(getattr(self, knob), list):
                object.__setattr__(self, knob, tuple(getattr(self, knob)))
        checks = {
            "layers": self.layers is None or self.layers >= 0,
            "heads": all(0 <= r < 1 for r in _ratios(self.heads)),
            "ffn": all(0 <= r < 1 for r in _ratios(self.ffn)),
            "hidden": 0 <= self.hidden < 1,
            "base": isinstance(self.base, str) and bool(self.base),
            "importance": self.importance in ("magnitude", "taylor"),
            "method": self.method in ("oneshot", "learned"),
            "target_speedup": (self.target_speedup is None if self.method == "oneshot"
                               else self.target_speedup is not None and self.target_speedup > 1),
            "temperature": self.temperature > 0,
            "standardize": isinstance(self.standardize, bool),
            "alpha": 0 <= self.alpha <= 1,
            "hidden_weight": self.hidden_weight >= 0,
            "attention_weight": self.attention_weight >= 0,
            "lr": self.lr is None or 0 < self.lr < 1,
            "epochs": self.epochs >= 1,
            "vocab": self.vocab in (None, "full", "data"),
            "seq": self.seq is None or (isinstance(self.seq, int) and self.seq >= 8),
        }
        for knob, ok in checks.items():
            if not ok:
                raise SlimtuneError(f"space: knob {knob}={getattr(self, knob)!r} is out of range (see Candidate.{knob})")
        if self.seq is not None and (self.hidden_weight or self.attention_weight):
            raise SlimtuneError(f"space: knob seq={self.seq} gives the student other positions than its teacher, "
                                "and hidden-state and attention losses need them equal; leave seq out where "
                                "hidden_weight or attention_weight is above 0")
        if self.layers == 0:
            self._check_zero_layers()
        if self.method == "learned" and (any(_ratios(self.heads)) or any(_ratios(self.ffn))):
            raise SlimtuneError("space: knobs heads and ffn go with method oneshot; with method learned the "
                                "gates decide them (layers and hidden still cut first)")
        for knob in ("heads", "ffn"):
            value = getattr(self, knob)
            if isinstance(value, tuple) and self.layers is not None and len(value) != self.layers:
                raise SlimtuneError(f"space: knob {knob} lists {len(value)} ratios for {self.layers} kept layers; "
                                    "give one ratio, or one per kept layer")

    def _check_zero_layers(self) -> None:
        """A zero-layer student has no heads, FFN, layer states or attention maps: a knob that
        acts on them is refused rather than ignored."""
        needs_layers = {
            "heads": self.heads != 0.0, "ffn": self.ffn != 0.0, "hidden": self.hidden != 0.0,
            "method": self.method != "oneshot", "target_speedup": self.target_speedup is not None,
            "hidden_weight": self.hidden_weight != 0.0, "attention_weight": self.attention_weight != 0.0,
        }
        for knob, set_ in needs_layers.items():
            if set_:
                raise SlimtuneError(f"space: knob {knob}={getattr(self, knob)!r} needs layers, but layers=0 (the "
                                    f"zero-layer student: embeddings, pooling, head); leave {knob} out when layers is 0")

    def check_against(self, teacher: TeacherInfo) -> None:
        """Fail now, with the knob's name, on what only the teacher's (or the base's) shape can rule out."""
        total, what = teacher.num_layers, "the teacher"
        if self.base != "teacher":
            total, what = base_layers(self.base), f"base {self.base}"
        if self.layers is not None and self.layers > total:
            raise SlimtuneError(f"space: knob layers={self.layers} but {what} has {total} layers; "
                                "take the range from teacher.num_layers (or the base's own count)")
        kept = total if self.layers is None else self.layers
        for knob in ("heads", "ffn"):
            value = getattr(self, knob)
            if isinstance(value, tuple) and len(value) != kept:
                raise SlimtuneError(f"space: knob {knob} lists {len(value)} ratios for {kept} kept layers")

    def as_dict(self) -> dict:
        """JSON-ready knob values (per-layer ratios as lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


@functools.lru_cache(maxsize=None)
def base_layers(base: str) -> int:
    """Encoder layers of a base model, from its config alone (a bad name fails with the knob's)."""
    from slimtune.models import load_config, resolve_model

    return load_config(resolve_model(base, "space: knob base"), "space: knob base").num_hidden_layers


def _ratios(value: Ratio) -> tuple[float, ...]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)


@dataclass(frozen=True)
class Constraints:
    """Limits declared beside a space; trials outside them never reach the front. Relative ones
    are against the teacher as the search measures it (validation accuracy, the same latency)."""

    min_accuracy_ratio: float | None = None
    """Validation accuracy at least this share of the teacher's (0.97: within 3%)."""
    min_speedup: float | None = None
    """At least this many times faster than the teacher (measured latency); winners slower than
    this are not distilled again."""
    max_size_mb: float | None = None
    """ONNX fp32 file size at most this."""
    max_latency_ms: float | None = None
    """Measured latency at most this."""
    min_accuracy: float | None = None
    """Absolute validation accuracy floor: it fits one data set only; prefer min_accuracy_ratio."""

    def __post_init__(self):
        ranges = {"min_accuracy_ratio": (0, 2), "min_accuracy": (0, 1)}
        for name, value in dataclasses.asdict(self).items():
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise SlimtuneError(f"constraints: {name} must be a positive number or None, got {value!r}")
            low, high = ranges.get(name, (0, float("inf")))
            if not low < value <= high:
                raise SlimtuneError(f"constraints: {name}={value} is out of range ({low}, {high}]")

    def limits(self, teacher: dict) -> dict[str, tuple[str, float]]:
        """name -> (metric, bound) in absolute terms for this teacher; '>=' metrics are accuracy."""
        out = {}
        if self.min_accuracy_ratio is not None:
            out["min_accuracy_ratio"] = ("accuracy", self.min_accuracy_ratio * teacher["accuracy"])
        if self.min_accuracy is not None:
            out["min_accuracy"] = ("accuracy", self.min_accuracy)
        if self.min_speedup is not None:
            out["min_speedup"] = ("latency_ms", teacher["latency_ms"] / self.min_speedup)
        if self.max_latency_ms is not None:
            out["max_latency_ms"] = ("latency_ms", self.max_latency_ms)
        if self.max_size_mb is not None:
            out["max_size_mb"] = ("size_mb", self.max_size_mb)
        return out

    def failures(self, metrics: dict, teacher: dict) -> list[str]:
        """Names of the constraints a trial's metrics break."""
        broken = []
        for name, (metric, bound) in self.limits(teacher).items():
            value = metrics[metric]
            if (value < bound) if metric == "accuracy" else (value > bound):
                broken.append(name)
        return broken

    def satisfied(self, metrics: dict, teacher: dict) -> bool:
        return not self.failures(metrics, teacher)

    def check_teacher(self, teacher: dict) -> None:
        """An absolute floor the teacher itself misses cannot succeed: refuse it before any trial."""
        if self.min_accuracy is not None and teacher.get("accuracy") is not None and teacher["accuracy"] < self.min_accuracy:
            raise SlimtuneError(
                f"constraints: min_accuracy={self.min_accuracy} but the teacher itself reaches {teacher['accuracy']:.4f} "
                f"validation accuracy; use min_accuracy_ratio (e.g. 0.97) instead")

    def as_dict(self) -> dict:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


KNOBS = tuple(f.name for f in dataclasses.fields(Candidate))


def candidate_from(values: dict) -> Candidate:
    unknown = sorted(set(values) - set(KNOBS))
    if unknown:
        raise SlimtuneError(f"space: unknown knob '{unknown[0]}'; knobs are {', '.join(KNOBS)}")
    return Candidate(**values)


def candidate_of(record: dict) -> Candidate:
    """The candidate a trial's config, a search row or a winner's record names: its knobs; other
    keys (origin, metrics) and knobs it leaves unset (None) are left out."""
    return candidate_from({k: record[k] for k in KNOBS if record.get(k) is not None})


@dataclass(frozen=True)
class SearchSpace:
    """A space ready to sample: the function, its constraints, and a name for messages."""

    space: Callable
    constraints: Constraints
    name: str

    @property
    def takes_teacher(self) -> bool:
        try:
            params = [p for p in inspect.signature(self.space).parameters.values()
                      if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)]
        except (TypeError, ValueError):  # a builtin or an odd callable: the one-argument form
            return False
        return len(params) >= 2 or any(p.kind is p.VAR_POSITIONAL for p in params)

    def sample(self, trial, teacher: TeacherInfo | None) -> Candidate:
        try:
            values = self.space(trial, teacher) if self.takes_teacher else self.space(trial)
        except SlimtuneError:
            raise
        except Exception as exc:  # the user's code: one line, the cause kept for the caller
            raise SlimtuneError(f"space: {self.name} raised {type(exc).__name__}: {exc}") from exc
        if not isinstance(values, dict):
            raise SlimtuneError(f"space: {self.name} must return a dict of knob values, got {type(values).__name__}")
        candidate = candidate_from(values)
        if teacher is not None:
            candidate.check_against(teacher)
        return candidate

    def fingerprint(self, teacher: TeacherInfo, samples: int = 12) -> str:
        """What the space does, not how it is written: its answers to a fixed, seeded sequence of
        trials. A resume with a space that answers differently is refused (see the driver)."""
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        seen = []
        for _ in range(samples):
            trial = study.ask()
            candidate = self.sample(trial, teacher)
            dists = {k: repr(v) for k, v in sorted(trial.distributions.items())}
            seen.append([candidate.as_dict(), dists])
            study.tell(trial, 0.0)
        return hashlib.sha256(json.dumps(seen, sort_keys=True, default=str).encode()).hexdigest()[:16]


def load_space(space, constraints: Constraints | None = None) -> SearchSpace:
    """A space file's path, or any callable (constraints beside it; a file's own CONSTRAINTS
    unless `constraints` is given)."""
    if callable(space):
        if constraints is not None and not isinstance(constraints, Constraints):
            raise SlimtuneError("constraints: give a slimtune.Constraints(...)")
        name = getattr(space, "__qualname__", None) or type(space).__name__
        return SearchSpace(space, constraints or Constraints(), f"space function {name}")
    if not isinstance(space, (str, Path)):
        raise SlimtuneError(f"--space: give a space file's path or a function, not {type(space).__name__}")
    file = Path(space)
    if not file.is_file():
        raise SlimtuneError(f"--space: {space} is not a file; see search_spaces/ for examples")
    spec = importlib.util.spec_from_file_location(f"slimtune_space_{file.stem}", file)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise SlimtuneError(f"--space: {space} failed to load: {type(exc).__name__}: {exc}") from None
    if not callable(getattr(module, "space", None)):
        raise SlimtuneError(f"--space: {space} must define space(trial) or space(trial, teacher) returning a dict of knobs")
    found = getattr(module, "CONSTRAINTS", Constraints())
    if not isinstance(found, Constraints):
        raise SlimtuneError(f"--space: CONSTRAINTS in {space} must be a slimtune.Constraints")
    return SearchSpace(module.space, constraints or found, str(file))
