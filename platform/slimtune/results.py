"""Typed results between stages and of the Python API: where the output went, and the dict the
stage wrote (metrics.json, pareto.json, a bundle's manifest.json or a job's summary.json)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Result:
    """A finished stage: `path` (its output folder or bundle) and `metrics` (what it wrote)."""

    path: str
    metrics: dict = field(default_factory=dict)


@dataclass
class SearchResult(Result):
    """A search: `metrics` is pareto.json's dict; `front` and `teacher` carry its keys."""

    @property
    def front(self) -> list[dict]:
        """Non-dominated finished trials that meet the constraints, each with `model_path`."""
        return self.metrics["front"]

    @property
    def teacher(self) -> dict:
        """The teacher measured as every trial is (validation accuracy, latency_ms, size_mb, ...)."""
        return self.metrics["teacher"]


def stage_metrics(model_dir: str) -> dict:
    """metrics.json of the stage that wrote a model: `model_dir` is its out folder or, as a model
    path resolves to, the `model/` folder inside it; {} where neither holds a readable one."""
    folder = Path(model_dir)
    # the parent only of a stage's `model/`: an unfinished out folder's parent may be another stage's
    for path in [folder / "metrics.json"] + ([folder.parent / "metrics.json"] if folder.name == "model" else []):
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            continue
    return {}


def stage_test_metrics(model_dir: str, fingerprint: str, max_length: int, truncation: str) -> dict | None:
    """The test `accuracy`, `f1_macro`, `confusion` and `test_precision` (bf16, fp32; None where not
    recorded) that `slimtune finetune` measured of the model in `model_dir`, when of this data at
    this length and cut; else None. Other stages' `accuracy` is validation: their metrics have no
    `data.test_rows`."""
    metrics = stage_metrics(model_dir)
    data = metrics.get("data", {})
    same = (data.get("fingerprint") == fingerprint and data.get("test_rows") and metrics.get("max_length") == max_length
            and metrics.get("truncation", "head") == truncation
            and all(metrics.get(k) is not None for k in ("accuracy", "f1_macro", "confusion")))
    return {k: metrics.get(k) for k in ("accuracy", "f1_macro", "confusion", "test_precision")} if same else None
