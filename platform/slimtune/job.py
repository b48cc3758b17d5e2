"""Job files for `slimtune run`: frozen sections, every key and type checked before any work.

An unknown key or a wrong type fails with one line naming the key path (`finetune.epohcs`);
`key=value` overrides from the command line are applied before the check.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from slimtune.errors import SlimtuneError


@dataclass(frozen=True)
class DataSection:
    """The job's `data:` section (see DataSpec for each field's meaning)."""

    source: str = "builtin:tweets"
    text_column: str | None = None
    label_column: str | None = None
    max_train_samples: int | None = None
    test_fraction: float = 0.2
    seed: int = 42


@dataclass(frozen=True)
class FinetuneSection:
    """The job's `finetune:` section; `teacher:` set to a model folder skips fine-tuning."""

    epochs: int = 3
    batch_size: int = 32
    lr: float | None = None
    max_length: int = 128
    workers: int | None = None
    use_gpu: bool = False


@dataclass(frozen=True)
class SearchSection:
    """The job's `search:` section: Ray Tune + Optuna over a space file (see `slimtune search`)."""

    space: str = "search_spaces/full.py"
    """A space file: relative to the working folder, else to the job file's folder or its parent."""
    trials: int = 12
    concurrency: int = 2
    """Trials at once; each gets CPUs / concurrency threads."""
    sampler: str = "tpe"
    """tpe, nsga2 or random (Optuna's samplers)."""
    objectives: tuple[str, ...] = ("accuracy", "latency_ms")
    """Some of accuracy (up), latency_ms (down), size_mb (down)."""
    max_train_samples: int | None = None
    """Training rows each trial distils on (default: the data section's)."""
    max_steps: int | None = None
    """Cap on each trial's optimizer steps (None: the candidate's epochs)."""
    retries: int = 1
    """Times a failing trial is retried before it is recorded as failed."""
    latency_threads: int = 1
    """ONNX Runtime threads when timing trials (the same for the teacher)."""
    keep_all: bool = False
    """Keep every trial's model, not only the front's."""
    gpus_per_trial: float = 0.0
    """GPU share per trial (0.25: four trials share a GPU); 0 trains trials on CPUs."""
    trial_workers: int = 0
    """0: a trial trains in its own process; N: as a Ray Train job on N workers (big students, GPU nodes)."""

    def __post_init__(self):
        from slimtune.search.driver import OBJECTIVES, SAMPLERS  # no Ray import there at module level

        if self.sampler not in SAMPLERS:
            raise SlimtuneError(f"job: search.sampler must be one of {', '.join(SAMPLERS)}, got {self.sampler!r}")
        bad = [o for o in self.objectives if o not in OBJECTIVES]
        if bad or not self.objectives:
            raise SlimtuneError(f"job: search.objectives must be some of {', '.join(OBJECTIVES)}, got {list(self.objectives)}")
        for name in ("trials", "concurrency", "latency_threads"):
            if getattr(self, name) < 1:
                raise SlimtuneError(f"job: search.{name} must be at least 1, got {getattr(self, name)}")


@dataclass(frozen=True)
class WinnersSection:
    """The job's `winners:` section: front members distilled again with the full budget."""

    count: int = 2
    """How many: the chosen one first, then the most accurate others on the front."""
    min_accuracy_ratio: float = 0.97
    """The chosen winner is the fastest front member whose validation accuracy is at least this
    share of the teacher's (the most accurate front member when none is)."""
    epochs: int = 3
    """Distillation epochs of the final run, on all training rows of the data section."""

    def __post_init__(self):
        if self.count < 1 or self.epochs < 1:
            raise SlimtuneError(f"job: winners.count and winners.epochs must be at least 1, got {self.count}, {self.epochs}")
        if not 0 < self.min_accuracy_ratio <= 1:
            raise SlimtuneError(f"job: winners.min_accuracy_ratio must be in (0, 1], got {self.min_accuracy_ratio}")


@dataclass(frozen=True)
class ExportSection:
    """The job's `export:` section: ONNX bundles of the teacher and every winner."""

    int8: bool = True
    """Also write model.int8.onnx (ONNX Runtime dynamic quantization)."""
    seq: int = 128
    """Sequence length of the latency measurements."""
    threads: int = 1
    """ONNX Runtime threads of the latency measurements (1: what a small device gives one model)."""
    rounds: int = 9
    """Interleaved timing rounds of the final teacher-against-winners comparison (medians)."""


@dataclass(frozen=True)
class JobSpec:
    """A whole job, as read from YAML plus `key=value` overrides."""

    model: str = "builtin:minilm-l6"
    out: str = "runs/job"
    teacher: str | None = None
    """An already fine-tuned teacher folder: the fine-tune stage is skipped."""
    storage: str | None = None
    """Shared storage (a folder every node reaches, or s3:// / gs://) for Ray Train checkpoints and
    Tune trials; the report, summary and bundles are copied there at the end. None: under `out`."""
    data: DataSection = field(default_factory=DataSection)
    finetune: FinetuneSection = field(default_factory=FinetuneSection)
    search: SearchSection = field(default_factory=SearchSection)
    winners: WinnersSection = field(default_factory=WinnersSection)
    export: ExportSection = field(default_factory=ExportSection)


def _check_type(value, annotation, path: str):
    origin = typing.get_origin(annotation)
    if origin is tuple:  # YAML lists; a tuple keeps the frozen section immutable
        if not isinstance(value, (list, tuple)):
            raise SlimtuneError(f"job: {path} must be a list, got {value!r}")
        item = typing.get_args(annotation)[0]
        return tuple(_check_type(v, item, f"{path}[{i}]") for i, v in enumerate(value))
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        annotation = next(a for a in options if a is not type(None))
    if dataclasses.is_dataclass(annotation):
        return _build(annotation, value, path)
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if annotation is bool and not isinstance(value, bool) or annotation is int and isinstance(value, bool):
        raise SlimtuneError(f"job: {path} must be {annotation.__name__}, got {value!r}")
    if not isinstance(value, annotation):
        raise SlimtuneError(f"job: {path} must be {annotation.__name__}, got {value!r}")
    return value


def _build(cls, raw, path: str = ""):
    if not isinstance(raw, dict):
        raise SlimtuneError(f"job: {path or 'the file'} must be a mapping of keys, got {raw!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in known:
            where = f"{path}.{key}" if path else str(key)
            raise SlimtuneError(f"job: unknown key '{where}'; known keys here: {', '.join(sorted(known))}")
    values = {k: _check_type(v, hints[k], f"{path}.{k}" if path else k) for k, v in raw.items()}
    return cls(**values)


def _apply_override(raw: dict, item: str) -> None:
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise SlimtuneError(f"override '{item}': write it as key=value, e.g. finetune.epochs=2")
    node = raw
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise SlimtuneError(f"override '{item}': {part} is not a section")
    node[parts[-1]] = yaml.safe_load(value)


def load_job(path: str, overrides: list[str] | None = None, out: str | None = None) -> JobSpec:
    """Read and check a job file; every key and type is checked before any work starts."""
    file = Path(path)
    if not file.exists():
        raise SlimtuneError(f"job file {path} does not exist; see jobs/quickstart.yaml for an example")
    try:
        raw = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as exc:
        raise SlimtuneError(f"job file {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    for item in overrides or []:
        _apply_override(raw, item)
    if out:
        raw["out"] = out
    job = _build(JobSpec, raw)
    if job.storage:
        from slimtune.storage import resolve

        resolve(job.storage, Path(job.out), "job: storage")
    space = _find_space(job.search.space, file.parent)
    return dataclasses.replace(job, search=dataclasses.replace(job.search, space=space))


def _find_space(space: str, job_dir: Path) -> str:
    """The space file: as given, else beside the job file, else beside its folder (jobs/../search_spaces)."""
    for base in (Path.cwd(), job_dir, job_dir.parent):
        candidate = base / space
        if candidate.is_file():
            return str(candidate.resolve())
    raise SlimtuneError(f"job: search.space {space!r} is not a file (looked in the working folder and beside the job file)")


