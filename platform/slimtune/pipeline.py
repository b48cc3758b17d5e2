"""`slimtune run JOB.yaml`: check the whole job file first, then run the stages in order.

Today the stages are: fine-tune the teacher. Later stages (search, distil winners, export,
report) plug in after it. A stage whose outputs exist is skipped under `--resume`.
"""

from __future__ import annotations

import dataclasses
import json
import time
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from slimtune import log
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
class JobSpec:
    """A whole job, as read from YAML plus `key=value` overrides."""

    model: str = "builtin:minilm-l6"
    out: str = "runs/job"
    teacher: str | None = None
    """An already fine-tuned teacher folder: the fine-tune stage is skipped."""
    data: DataSection = field(default_factory=DataSection)
    finetune: FinetuneSection = field(default_factory=FinetuneSection)


def _check_type(value, annotation, path: str):
    origin = typing.get_origin(annotation)
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
    return _build(JobSpec, raw)


def _finetune_stage(job: JobSpec, folder: Path, resume: bool) -> dict:
    from slimtune.data import DataSpec
    from slimtune.train.finetune import FinetuneSpec, run_finetune
    from slimtune.train.loop import TrainSpec

    if resume and (folder / "metrics.json").exists() and (folder / "model" / "config.json").exists():
        log.info(f"stage finetune: already finished in {folder}, skipped (--resume)")
        return json.loads((folder / "metrics.json").read_text())
    d, f = job.data, job.finetune
    spec = FinetuneSpec(
        model=job.model,
        data=DataSpec(d.source, d.text_column, d.label_column, test_fraction=d.test_fraction,
                      max_train_samples=d.max_train_samples, seed=d.seed),
        out=str(folder),
        train=TrainSpec(epochs=f.epochs, batch_size=f.batch_size, lr=f.lr, seed=d.seed),
        max_length=f.max_length,
        workers=f.workers,
        use_gpu=f.use_gpu,
    )
    return run_finetune(spec)


def run_job(job: JobSpec, resume: bool = False) -> dict:
    out = Path(job.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    summary: dict = {"job": dataclasses.asdict(job), "stages": {}}
    if job.teacher:
        teacher_dir = Path(job.teacher)
        teacher = json.loads((teacher_dir / "metrics.json").read_text()) if (teacher_dir / "metrics.json").exists() else {}
    else:
        log.info("stage finetune: fine-tuning the teacher")
        teacher_dir = out / "teacher"
        teacher = _finetune_stage(job, teacher_dir, resume)
    summary["stages"]["finetune"] = {"dir": str(teacher_dir), **{k: teacher.get(k) for k in
                                     ("accuracy", "f1_macro", "num_parameters", "train_seconds")}}
    summary["seconds"] = time.perf_counter() - started
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    log.info(f"job done in {log.format_seconds(summary['seconds'])}: {out / 'summary.json'}")
    return summary["stages"]["finetune"]
