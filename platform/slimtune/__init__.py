"""slimtune: make transformer text classifiers small and fast for the edge, on Ray.

The Python API mirrors the command line: each stage takes keyword arguments named like its
flags (`data=`, `out=`, `epochs=`, `text_column=`, ...) and returns a `Result` with `.path`
and `.metrics` (the dict it wrote to metrics.json, pareto.json, manifest.json or summary.json)::

    import slimtune
    t = slimtune.finetune(model="builtin:minilm-l6", data="builtin:tweets", out="runs/t", epochs=1)
    r = slimtune.search(teacher=t.path, data="builtin:tweets", space=my_space, trials=8, out="runs/s")
    b = slimtune.export(model=r.front[0]["model_path"], data="builtin:tweets", out="runs/b")
    slimtune.run("jobs/quickstart.yaml", out="runs/q", overrides={"search.trials": 4})

The root stays light (nothing heavy is imported until a stage runs), so `slimtune --help`, input
checks and the torch-free bundle runtime answer quickly.
"""

from __future__ import annotations

from slimtune.version import __version__

from slimtune.errors import SlimtuneError
from slimtune.results import Result, SearchResult

__all__ = ["Candidate", "Constraints", "Result", "SearchResult", "SlimtuneError", "TeacherInfo", "__version__",
           "distill", "export", "finetune", "prune", "run", "search"]


def finetune(**settings) -> Result:
    """Fine-tune a teacher: `model=`, `data=`, `out=`, and optionally `epochs=`, `batch_size=`,
    `lr=`, `max_length=`, `max_train_samples=`, `workers=`, `use_gpu=`, `seed=`, `storage=`,
    `text_column=`, `label_column=` (as `slimtune finetune --help` describes them)."""
    from slimtune.settings import build_spec
    from slimtune.train.finetune import FinetuneSpec, run_finetune

    spec = build_spec(FinetuneSpec, settings)
    return Result(spec.out, run_finetune(spec))


def prune(**settings) -> Result:
    """Remove heads, FFN neurons and layers: `model=`, `data=`, `out=`, `heads=`, `ffn=`, `layers=`
    (a count or indices), `importance=`, ... (see `slimtune prune --help`)."""
    from slimtune.pruning.run import PruneSpec, run_prune
    from slimtune.settings import build_spec

    spec = build_spec(PruneSpec, settings)
    return Result(spec.out, run_prune(spec))


def distill(**settings) -> Result:
    """Distil `teacher=` into `student=` on `data=`, writing `out=`; plus `epochs=`,
    `temperature=`, `alpha=`, `hidden_weight=`, `attention_weight=`, ... (see `slimtune distill --help`)."""
    from slimtune.distillation.run import DistillSpec, run_distill
    from slimtune.settings import build_spec

    spec = build_spec(DistillSpec, settings)
    return Result(spec.out, run_distill(spec))


def search(**settings) -> SearchResult:
    """Search students of `teacher=` on `data=` over `space=` (a space file's path, or a function
    `space(trial)` / `space(trial, teacher)`, a lambda or closure too), with `constraints=`
    (a `slimtune.Constraints`), `trials=`, `out=`, `resume=`, ... (see `slimtune search --help`).
    The result's `.front` and `.teacher` hold pareto.json's keys."""
    from slimtune.searching.driver import SearchSpec, run_search
    from slimtune.settings import build_spec

    return run_search(build_spec(SearchSpec, settings))


def export(**settings) -> Result:
    """Export `model=` to an ONNX bundle at `out=` (fp32 + int8), checked against PyTorch, with
    accuracy on `data=`'s test split; `.metrics` is the bundle's manifest.json."""
    from slimtune.exporting.bundle import ExportSpec, run_export
    from slimtune.settings import build_spec

    spec = build_spec(ExportSpec, settings)
    return Result(spec.out, run_export(spec))


def run(job: str, out: str | None = None, overrides: dict | list | None = None, resume: bool = False,
        storage: str | None = None) -> Result:
    """Run a job file (the whole pipeline); `overrides` as {"search.trials": 4} or ["search.trials=4"].
    `.metrics` is summary.json's dict."""
    from slimtune.pipeline import load_job, run_job

    if isinstance(overrides, dict):
        overrides = [f"{key}={_yaml_value(value)}" for key, value in overrides.items()]
    overrides = list(overrides or []) + ([f"storage={storage}"] if storage else [])
    return run_job(load_job(job, overrides, out=out), resume=resume)


def _yaml_value(value) -> str:
    import json

    return value if isinstance(value, str) else json.dumps(value)  # JSON is YAML


def __getattr__(name):
    if name in ("Constraints", "TeacherInfo", "Candidate"):
        from slimtune.searching import space

        return getattr(space, name)
    raise AttributeError(f"module 'slimtune' has no attribute {name!r}")
